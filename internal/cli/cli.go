package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/baton-dev/baton/internal/service"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Main runs the baton command line with args (without the program name).
// Help and command output go to stdout. A command that fails has its error
// printed on stderr as "baton: <message>" and Main returns it as an
// *ExitError holding the exit status; nil means exit status 0.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// A permission the server refuses ends the command at once (a refused
	// request would otherwise wait for its timeout), with the server's
	// word for it.
	ctx, refuse := context.WithCancelCause(ctx)
	defer refuse(nil)
	root := newRoot(refuse)
	root.SetArgs(append([]string{}, args...)) // never nil: cobra would read os.Args
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return nil
	}
	if cause := context.Cause(ctx); errors.Is(cause, nats.ErrPermissionViolation) {
		err = fmt.Errorf("%w: %w (does this role have the permission? see 'baton auth')", ErrRefused, cause)
	}
	code := ExitCode(err)
	fmt.Fprintf(stderr, "baton: %v\n", err)
	if code == ExitUsage && cmd != nil {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return &ExitError{Code: code, Err: err}
}

const rootLong = `baton runs jobs — graphs of typed tasks — on NATS JetStream: a planner
splits each job into tasks on lanes (one per task type and priority),
agents run them, and an aggregator publishes partial and final outputs.

'baton up' runs all of it in one process on an embedded nats-server; the
other commands talk to the deployment at --server (env NATS_URL), or the
one a nats CLI context names (--context, env NATS_CONTEXT), under the
subject prefix --prefix (env BATON_PREFIX).

Exit status:
  0  success: the workflow ended success, or partial at or above its threshold
  1  the workflow ended failed, or an error not listed here
  2  usage: unknown command, bad flag, wrong number of arguments
  3  not found: unknown workflow, task or agent
  4  rejected: invalid job or bad request, or refused by the server (permissions)
  5  conflict: not possible in the workflow's state, e.g. pausing a finished workflow
  6  unavailable: no server or no planner answered, or it timed out
  7  needs attention: the workflow missed its threshold and waits for 'baton resolve'`

// Command groups, in the order help lists them.
const (
	groupRun     = "run"
	groupWork    = "work"
	groupControl = "control"
)

// newRoot builds the command tree.
func newRoot(refused func(error)) *cobra.Command {
	c := &conn{refused: refused}
	root := &cobra.Command{
		Use:   "baton",
		Short: "A task orchestrator on NATS JetStream",
		Long:  rootLong,
		Example: `  baton up                                # everything in one process
  baton submit --follow examples/report.json
  baton status
  baton results WORKFLOW`,
		Version:           version(),
		SilenceErrors:     true, // Main prints errors, as "baton: ..."
		SilenceUsage:      true,
		Args:              unknownCommand,
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE:              func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SuggestionsMinimumDistance = 2
	root.SetVersionTemplate("{{.Name}} version {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	for _, cf := range c.flags.Flags() {
		pf.StringVar(cf.Value, cf.Name, cf.Default(), cf.Usage+" (env "+cf.Env+")")
	}
	pf.BoolVar(&c.flags.TLSFirst, "tls-first", false, service.TLSFirstUsage)
	pf.StringVar(&c.prefix, "prefix", envOr("BATON_PREFIX", "baton"), "subject prefix (env BATON_PREFIX)")

	root.AddGroup(
		&cobra.Group{ID: groupRun, Title: "Run baton:"},
		&cobra.Group{ID: groupWork, Title: "Jobs and monitoring:"},
		&cobra.Group{ID: groupControl, Title: "Workflow and lane control:"},
	)
	add := func(group string, cmds ...*cobra.Command) {
		for _, cmd := range cmds {
			cmd.GroupID = group
			root.AddCommand(cmd)
		}
	}
	add(groupRun, newUpCmd(c), newDemoCmd(c), newBenchCmd(c))
	add(groupWork, newSubmitCmd(c), newResultsCmd(c), newStatusCmd(c), newWatchCmd(c), newAgentsCmd(c))
	add(groupControl, newPauseCmd(c, true), newPauseCmd(c, false), newStopCmd(c), newRestartCmd(c), newCheckpointCmd(c),
		newCancelCmd(c), newReprioritizeCmd(c), newResolveCmd(c), newLimitCmd(c))
	root.AddCommand(newStreamsCmd(c), newAuthCmd(c), newHealthCmd(), newVersionCmd())
	root.SetHelpCommand(newHelpCmd())
	return root
}

// newHelpCmd is cobra's help command, but a topic that is no command is a
// usage error instead of the root's help.
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		Long:  "Print the help of a command, or with no command the list of commands and the exit statuses.",
		Example: `  baton help
  baton help submit`,
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			parent, _, err := cmd.Root().Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []string
			for _, sub := range parent.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					names = append(names, sub.Name()+"\t"+sub.Short)
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(hc *cobra.Command, args []string) error {
			root := hc.Root()
			cmd, rest, err := root.Find(args)
			if err == nil && cmd == root {
				err = unknownCommand(root, rest)
			}
			if err != nil {
				return err
			}
			return cmd.Help()
		},
	}
}

// unknownCommand is the root's argument check: any argument left is a
// command that does not exist.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageError{errors.New(msg)}
}

// usageArgs makes the errors of an argument check usage errors.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// usagef returns a usage error.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// conn holds the connection flags, which every command takes.
type conn struct {
	flags   service.ConnFlags // --context, --server and the NATS client options
	prefix  string
	refused func(error) // called with a permission violation the server reports
}

// common returns the connection flags as a service.Common.
func (c *conn) common() service.Common {
	return service.Common{ConnFlags: c.flags, Streams: streams.Config{Prefix: c.prefix}}
}

// dial connects to the server as the CLI. A context that cannot be used is
// a usage error, as a bad flag is; a permission the server refuses ends
// the command at once (c.refused).
func (c *conn) dial() (*nats.Conn, error) {
	sc := c.common()
	nc, err := sc.Connect("baton-cli", nil)
	if errors.Is(err, service.ErrContext) {
		return nil, usageError{err}
	}
	if err != nil {
		return nil, err
	}
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) && c.refused != nil {
			c.refused(err)
		}
	})
	return nc, nil
}

// client connects to the server; done closes the connection.
func (c *conn) client() (cl *client.Client, done func(), err error) {
	nc, err := c.dial()
	if err != nil {
		return nil, nil, err
	}
	if cl, err = client.New(nc, c.common().Streams); err != nil {
		nc.Close()
		return nil, nil, err
	}
	return cl, nc.Close, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// listFlag collects a repeatable, comma separated flag. The first value
// given replaces the default.
type listFlag struct {
	items []string
	set   bool
}

var _ pflag.Value = (*listFlag)(nil)

func (l *listFlag) String() string { return strings.Join(l.items, ",") }
func (l *listFlag) Type() string   { return "strings" }

func (l *listFlag) Set(v string) error {
	if !l.set {
		l.items, l.set = nil, true
	}
	l.items = append(l.items, service.SplitList(v)...)
	return nil
}

// optionalArg is a command's one optional positional argument, or "".
func optionalArg(args []string) string {
	if len(args) == 1 {
		return args[0]
	}
	return ""
}
