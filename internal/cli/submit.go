package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/builtin"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/registry"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
)

func newSubmitCmd(c *conn) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "submit FILE|-",
		Short: "Submit a job file (or - for stdin) and print its workflow",
		Long: `Submit a JSON job from FILE, or from standard input with -, wait for the
planner to accept it and print the workflow id, its task count and lanes.
A job the planner rejects prints which field is wrong (exit status 4).

With --follow, print each partial output as it arrives, then the final
output as JSON; the exit status is then 1 if the workflow ended failed.`,
		Example: `  baton submit examples/report.json
  baton submit --follow examples/report.json
  cat job.json | baton submit -`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return submit(cmd, c, args[0], follow)
		},
	}
	cmd.Flags().BoolVar(&follow, "follow", false, "print partial outputs as they arrive, then the final output")
	return cmd
}

func submit(cmd *cobra.Command, c *conn, file string, follow bool) error {
	ctx, stdout := cmd.Context(), cmd.OutOrStdout()
	var job []byte
	var err error
	if file == "-" {
		job, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), events.DefaultMaxJobBytes+1))
	} else {
		job, err = os.ReadFile(file)
	}
	if err != nil {
		return err
	}
	cl, done, err := c.client()
	if err != nil {
		return err
	}
	defer done()
	reply, err := cl.Submit(ctx, job)
	var ve *events.ValidationError
	if errors.As(err, &ve) {
		return fmt.Errorf("rejected (workflow %s): %w", reply.Workflow, err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "workflow %s: %d tasks on lanes %v\n", reply.Workflow, reply.Tasks, reply.Lanes)
	if len(reply.Warnings) > 0 {
		for _, w := range reply.Warnings {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
		}
	} else {
		warnUnserved(ctx, cl, reply.Lanes, cmd.ErrOrStderr())
	}
	if !follow {
		return nil
	}
	return printFinal(followOutputs(ctx, cl, reply.Workflow, client.FollowOptions{}, stdout))
}

// followOutputs prints a workflow's partial outputs as they arrive (with
// the outputs opts picks), then its final output as JSON (or, with
// opts.UntilReady, the ready output), which it returns.
func followOutputs(ctx context.Context, cl *client.Client, wf string, opts client.FollowOptions, stdout io.Writer) (*events.Output, error) {
	last, err := cl.FollowWith(ctx, wf, opts, func(o *events.Output) error {
		switch o.Kind {
		case events.OutputPartial:
			fmt.Fprintf(stdout, "partial: %d/%d tasks (%.1f%%), %d new results\n", o.Progress.Done, o.Progress.Total, o.Progress.Percent, len(o.Results))
		case events.OutputReady:
			fmt.Fprintf(stdout, "ready: %d/%d tasks (%.1f%%), the critical ones done\n", o.Progress.Done, o.Progress.Total, o.Progress.Percent)
			if !opts.UntilReady {
				return printJSON(stdout, o)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return last, printJSON(stdout, last)
}

// printFinal turns a printed final output into the command's outcome:
// ErrWorkflowFailed if the workflow ended failed. Success and partial
// (which the aggregator only reports at or above the job's threshold)
// are nil.
func printFinal(out *events.Output, err error) error {
	if err != nil {
		return err
	}
	if out.Status == events.OutcomeFailed {
		return fmt.Errorf("workflow %s ended %s (%d of %d tasks done): %w",
			out.Workflow, out.Status, out.Progress.Done, out.Progress.Total, ErrWorkflowFailed)
	}
	return nil
}

func newResultsCmd(c *conn) *cobra.Command {
	var follow bool
	var opts client.FollowOptions
	cmd := &cobra.Command{
		Use:   "results WORKFLOW",
		Short: "Print a workflow's final output, or follow its outputs",
		Long: `Print a workflow's final output as JSON. A workflow that has not finished has
no final output yet: results says so, with its status (exit status 1);
with --follow it prints each partial output as it arrives and then the
final one. --collect chooses what --follow prints (default: the job's own
collect mode): stream (partials, final), batch (the final output only) or
hybrid (partials, the ready output once the critical tasks are done, the
final); --ready returns at the ready output. The exit status is 1 if the
workflow ended failed, 3 if there is no such workflow, 7 if it needs
attention (it escalated: see 'baton resolve').`,
		Example: `  baton results 01JB7X3M9Q2W
  baton results 01JB7X3M9Q2W --follow
  baton results 01JB7X3M9Q2W --follow --collect hybrid --ready`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: c.completeWorkflows,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !follow && (opts.Collect != "" || opts.UntilReady) {
				return usagef("--collect and --ready need --follow")
			}
			ctx, stdout := cmd.Context(), cmd.OutOrStdout()
			cl, done, err := c.client()
			if err != nil {
				return err
			}
			defer done()
			if follow {
				return printFinal(followOutputs(ctx, cl, args[0], opts, stdout))
			}
			out, err := cl.Final(ctx, args[0])
			if err != nil {
				return err
			}
			return printFinal(out, printJSON(stdout, out))
		},
	}
	cmd.Flags().BoolVar(&follow, "follow", false, "print partial outputs as they arrive, then the final output")
	cmd.Flags().StringVar(&opts.Collect, "collect", "", "with --follow: stream, batch or hybrid (default: the job's)")
	cmd.Flags().BoolVar(&opts.UntilReady, "ready", false, "with --follow: return at the ready output of a hybrid workflow")
	return cmd
}

func newStreamsCmd(c *conn) *cobra.Command {
	var cfg streams.Config
	types := &listFlag{items: builtin.Types()}
	cmd := &cobra.Command{
		Use:   "streams",
		Short: "Print the stream, bucket, planner and lane definitions as JSON",
		Long: `Print, as JSON, the definitions baton applies with --prefix and the tuning
flags given: every stream, every key-value bucket, the planner's consumer,
and the lane consumer of every task type in --types at every priority
(1, first, to 5). Nothing is sent to a server.`,
		Example: `  baton streams
  baton streams --types research,write --replicas 3`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Prefix = c.prefix
			for _, t := range types.items {
				if !events.ValidToken(t) {
					return usagef("--types: %q is not a task type: use 1-64 letters, digits, '-' or '_'", t)
				}
			}
			return printJSON(cmd.OutOrStdout(), definitions(cfg, types.items))
		},
	}
	fs := cmd.Flags()
	fs.Var(types, "types", "task types whose lanes to print (repeat, or comma separated)")
	registerStreams(fs, &cfg)
	_ = cmd.RegisterFlagCompletionFunc("types", completeTypes)
	return cmd
}

// streamDefinitions is what `baton streams` prints.
type streamDefinitions struct {
	Streams []jetstream.StreamConfig   `json:"streams"`
	Buckets []jetstream.KeyValueConfig `json:"buckets"`
	Planner jetstream.ConsumerConfig   `json:"planner"`
	Lanes   []jetstream.ConsumerConfig `json:"lanes"`
}

// definitions returns cfg's streams, buckets, planner consumer and the
// lanes of types at every priority.
func definitions(cfg streams.Config, types []string) streamDefinitions {
	d := streamDefinitions{Streams: cfg.Streams(), Buckets: cfg.Buckets(), Planner: cfg.Planner(), Lanes: []jetstream.ConsumerConfig{}}
	for _, t := range types {
		for _, p := range events.Priorities {
			d.Lanes = append(d.Lanes, cfg.Lane(t, p))
		}
	}
	return d
}

// warnUnserved says at once, on stderr, which of a new workflow's lanes no
// live agent serves: their tasks wait until one starts. It says nothing if
// the registry cannot be read.
func warnUnserved(ctx context.Context, cl *client.Client, lanes []string, stderr io.Writer) {
	agents, err := cl.Agents(ctx)
	if err != nil {
		return
	}
	served := registry.ServedTypes(agents)
	warned := map[string]bool{}
	for _, lane := range lanes {
		typ, _, _ := strings.Cut(lane, ".")
		if !served[typ] && !warned[typ] {
			warned[typ] = true
			fmt.Fprintf(stderr, "warning: no live agent serves type %q: its tasks wait on their lanes until one starts\n", typ)
		}
	}
}
