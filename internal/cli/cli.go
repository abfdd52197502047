// Package cli implements the baton command: `baton up`, submit, results,
// demo, bench and streams. cmd/baton only calls Main.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// ErrUsage is returned for a command line that cannot be run.
var ErrUsage = errors.New("usage")

type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"up":      {"run everything in one process on an embedded nats-server", up},
	"submit":  {"submit a job file (or - for stdin) and print its outputs", submit},
	"results": {"print a workflow's final output, or follow its outputs", results},
	"demo":    {"run the example job and a parallel-vs-sequential comparison on a fresh embedded server", demo},
	"bench":   {"measure end-to-end throughput against a bare JetStream pipeline", bench},
	"streams": {"print the stream, bucket and lane definitions as JSON", printStreams},

	"status":       {"show progress, ETA, bottleneck, lanes and agents [--json]", status},
	"watch":        {"live progress bars per workflow and lane, until the workflow ends or Ctrl-C", watch},
	"agents":       {"list the registered agents", agents},
	"pause":        {"pause a workflow, or a lane with --type (consumer pause)", pauseResume("pause")},
	"resume":       {"resume a paused workflow, or a lane with --type", pauseResume("resume")},
	"stop":         {"stop a workflow: withdraw pending tasks, let running ones finish", stop},
	"restart":      {"restart a stopped or paused workflow [--retry-failed]", restart},
	"cancel":       {"cancel tasks by id, agent, type or priority range", cancel},
	"reprioritize": {"move a workflow's (or one task's) pending tasks to another priority", reprioritize},
}

// Main runs the baton command line.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return ErrUsage
		}
		return nil
	}
	cmd, ok := commands[args[0]]
	if !ok {
		usage(stderr)
		return fmt.Errorf("%w: unknown command %q", ErrUsage, args[0])
	}
	err := cmd.run(ctx, args[1:], stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func usage(w io.Writer) {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("baton: a task orchestrator on NATS JetStream\n\nusage: baton <command> [flags]\n\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-13s %s\n", n, commands[n].summary)
	}
	b.WriteString("\n`baton <command> -h` lists a command's flags.\n")
	fmt.Fprint(w, b.String())
}
