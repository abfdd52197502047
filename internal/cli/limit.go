package cli

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/baton-dev/baton/pkg/permit"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
)

// typeLimit is how `baton limit` prints a cap.
type typeLimit struct {
	Type  string `json:"type"`
	Limit int    `json:"limit"`
}

// jetStream connects for a command that reads or writes a bucket itself.
func (c *conn) jetStream() (js jetstream.JetStream, done func(), err error) {
	nc, err := c.dial()
	if err != nil {
		return nil, nil, err
	}
	if js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, nil, err
	}
	return js, nc.Close, nil
}

// newLimitCmd is `baton limit`: per-type concurrency caps set at run time.
func newLimitCmd(c *conn) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "limit (set|get|ls|clear)",
		Short: "Cap how many tasks of a type run at once, system-wide",
		Long: `Per-type concurrency caps, set at run time: at most N tasks of the type run
at once across every agent and workflow. The cap lives in the limits bucket,
which every agent watches, so it holds at once for tasks that start from
then on (running tasks finish). Tasks waiting for room hold no agent slot
and cost no attempt.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var typ string
	typeFlag := func(sub *cobra.Command) {
		sub.Flags().StringVar(&typ, "type", "", "the task type (required)")
		sub.PreRunE = func(*cobra.Command, []string) error {
			if typ == "" {
				return usagef("name the task type with --type")
			}
			return nil
		}
		_ = sub.RegisterFlagCompletionFunc("type", completeTypes)
	}
	run := func(fn func(cmd *cobra.Command, js jetstream.JetStream) (any, error)) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			js, done, err := c.jetStream()
			if err != nil {
				return err
			}
			defer done()
			out, err := fn(cmd, js)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), out)
		}
	}
	set := &cobra.Command{
		Use:     "set --type TYPE N",
		Short:   "Cap a type at N tasks running at once (1-256)",
		Example: "  baton limit set --type http 3",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[0])
			if err != nil {
				return usagef("limit %q: want a whole number", args[0])
			}
			return run(func(cmd *cobra.Command, js jetstream.JetStream) (any, error) {
				if err := permit.SetTypeLimit(cmd.Context(), js, c.common().Streams, typ, n); err != nil {
					return nil, err
				}
				return typeLimit{typ, n}, nil
			})(cmd, args)
		},
	}
	get := &cobra.Command{
		Use:     "get --type TYPE",
		Short:   "Print a type's cap (exit status 3 if it has none)",
		Example: "  baton limit get --type http",
		Args:    usageArgs(cobra.NoArgs),
		RunE: run(func(cmd *cobra.Command, js jetstream.JetStream) (any, error) {
			n, err := permit.TypeLimit(cmd.Context(), js, c.common().Streams, typ)
			if err != nil {
				return nil, fmt.Errorf("type %s: %w", typ, err)
			}
			return typeLimit{typ, n}, nil
		}),
	}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List every type's cap",
		Args:  usageArgs(cobra.NoArgs),
		RunE: run(func(cmd *cobra.Command, js jetstream.JetStream) (any, error) {
			all, err := permit.TypeLimits(cmd.Context(), js, c.common().Streams)
			if err != nil {
				return nil, err
			}
			out := []typeLimit{}
			for _, t := range slices.Sorted(maps.Keys(all)) {
				out = append(out, typeLimit{t, all[t]})
			}
			return out, nil
		}),
	}
	clr := &cobra.Command{
		Use:     "clear --type TYPE",
		Short:   "Remove a type's cap (exit status 3 if it has none)",
		Example: "  baton limit clear --type http",
		Args:    usageArgs(cobra.NoArgs),
		RunE: run(func(cmd *cobra.Command, js jetstream.JetStream) (any, error) {
			if err := permit.ClearTypeLimit(cmd.Context(), js, c.common().Streams, typ); err != nil {
				return nil, fmt.Errorf("type %s: %w", typ, err)
			}
			return map[string]string{"type": typ, "limit": "none"}, nil
		}),
	}
	for _, sub := range []*cobra.Command{set, get, clr} {
		typeFlag(sub)
	}
	cmd.AddCommand(set, get, ls, clr)
	return cmd
}
