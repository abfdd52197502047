package cli

import (
	"fmt"
	"path/filepath"
	"strings"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/jetstream/auth"
	"github.com/baton-dev/baton/pkg/builtin"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/spf13/cobra"
)

func newAuthCmd(c *conn) *cobra.Command {
	var (
		dir    string
		agents []string
	)
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Write an nkey per role and the nats-server authorization that confines each",
		Long: `Write, into --dir, an nkey seed per role (admin, planner, aggregator,
submitter, viewer, operator, and agent-NAME for each --agent NAME=TYPES,
where +CAP entries are capabilities whose lanes the agent may consume) and
auth.conf: the nats-server authorization block that admits those keys only,
each with the publish and subscribe allow lists its role needs and nothing
more. roles.json lists the same permissions. Include auth.conf in the
server's configuration ('include auth.conf') and give each service its
role's seed with --nkey and its inbox prefix with --inbox-prefix
(_INBOX_<role>). Seeds already in --dir are kept: run it again after adding
an agent role and no credential handed out changes. 'baton up --auth' does
all of this for the embedded server.`,
		Example: `  baton auth --dir deploy/auth --agent research=research --agent writers=write,data
  baton auth --dir deploy/auth --agent gpu=research,+gpu,+lang:de
  baton planner --nkey deploy/auth/planner.nk --inbox-prefix _INBOX_planner`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			byName := map[string][]string{}
			for _, a := range agents {
				name, types, ok := strings.Cut(a, "=")
				if !ok || !events.ValidToken(name) || types == "" {
					return usagef("--agent %q: want NAME=TYPE[,TYPE…]", a)
				}
				caps := 0
				for _, t := range strings.Split(types, ",") {
					if c, ok := strings.CutPrefix(t, "+"); ok {
						if caps++; !events.ValidCapability(c) || caps > events.MaxCapabilities {
							return usagef("--agent %q: %q: want at most %d capabilities of 1-%d letters, digits, '-', '_', ':' or '.'", a, t, events.MaxCapabilities, events.MaxCapabilityBytes)
						}
					} else if !events.ValidToken(t) {
						return usagef("--agent %q: %q is not a task type", a, t)
					}
					byName[name] = append(byName[name], t)
				}
			}
			if len(byName) == 0 {
				byName["builtin"] = builtin.Types()
			}
			cfg := streams.Config{Prefix: c.prefix}
			users, err := auth.Write(dir, auth.Standard(cfg, byName))
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "wrote %s and %s\n", filepath.Join(dir, auth.ConfFile), filepath.Join(dir, auth.RolesFile))
			for _, u := range users {
				fmt.Fprintf(out, "  %-18s --nkey %s --inbox-prefix %s\n", u.Name, filepath.Join(dir, auth.SeedFile(u.Name)), u.Inbox)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "baton-auth", "directory for the seeds and the server's authorization")
	cmd.Flags().StringArrayVar(&agents, "agent", nil, "an agent role: NAME=TYPE[,TYPE…][,+CAP…] (repeat); default one role, builtin, for the built-in types")
	return cmd
}
