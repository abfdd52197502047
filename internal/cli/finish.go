package cli

import (
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/spf13/cobra"
)

// newResolveCmd is `baton resolve`: the decision on an escalated workflow.
func newResolveCmd(c *conn) *cobra.Command {
	var accept, retry, fail bool
	cmd := &cobra.Command{
		Use:   "resolve WORKFLOW (--accept | --retry-failed | --fail)",
		Short: "Decide on a workflow that needs attention (escalated)",
		Long: `Decide on a workflow that missed its success threshold and escalated
(status needs_attention): --accept finishes it as partial with what there is,
--retry-failed runs its failed tasks again (it escalates again if it still
misses the threshold), --fail finishes it as failed. Prints the reply as JSON.
Resolving a workflow that is not waiting is a conflict (exit status 5).`,
		Example: `  baton resolve 01JB7X3M9Q2W --accept
  baton resolve 01JB7X3M9Q2W --retry-failed`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: c.completeWorkflows,
		RunE: func(cmd *cobra.Command, args []string) error {
			var res string
			n := 0
			for _, o := range []struct {
				set bool
				res string
			}{{accept, events.ResolveAccept}, {retry, events.ResolveRetryFailed}, {fail, events.ResolveFail}} {
				if o.set {
					res = o.res
					n++
				}
			}
			if n != 1 {
				return usagef("resolve with one of --accept, --retry-failed or --fail")
			}
			return c.controlRun(cmd, func(cl *client.Client) (any, error) {
				return cl.Resolve(cmd.Context(), args[0], res)
			})
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&accept, "accept", false, "finish it as partial with the results there are")
	fs.BoolVar(&retry, "retry-failed", false, "run its failed tasks again")
	fs.BoolVar(&fail, "fail", false, "finish it as failed")
	return cmd
}
