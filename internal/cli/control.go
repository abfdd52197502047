package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/baton-dev/baton/internal/service"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
)

// parseArgs parses flags that may come before, between or after the
// positional arguments, which it returns.
func parseArgs(fs *flag.FlagSet, args []string, stderr io.Writer) ([]string, error) {
	fs.SetOutput(stderr)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// workflowCmd parses a command line of flags (added by flags) and at most
// one workflow id (required or not), and connects a client. done must be
// called when err is nil.
func workflowCmd(name, usage string, args []string, stderr io.Writer, required bool, flags func(*flag.FlagSet)) (wf string, cl *client.Client, done func(), err error) {
	fs := flag.NewFlagSet("baton "+name, flag.ContinueOnError)
	var c service.Common
	c.Register(fs)
	if flags != nil {
		flags(fs)
	}
	pos, err := parseArgs(fs, args, stderr)
	if err != nil {
		return "", nil, nil, err
	}
	if wf, err = oneWorkflow(usage, pos, required); err != nil {
		return "", nil, nil, err
	}
	cl, done, err = connectClient(&c)
	return wf, cl, done, err
}

// controlCmd sends one control request and prints the reply as JSON.
func controlCmd(ctx context.Context, cl *client.Client, verb string, req *events.ControlRequest, out any, stdout io.Writer) error {
	if err := cl.Control(ctx, verb, req, out); err != nil {
		return err
	}
	return printJSON(stdout, out)
}

func oneWorkflow(name string, pos []string, required bool) (string, error) {
	switch {
	case len(pos) == 1:
		return pos[0], nil
	case len(pos) == 0 && !required:
		return "", nil
	}
	return "", fmt.Errorf("%w: %s", ErrUsage, name)
}

// pauseResume is `baton pause` and `baton resume`: a workflow, or lanes.
func pauseResume(verb string) func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		var req events.ControlRequest
		var until time.Duration
		usage := fmt.Sprintf("baton %s WORKFLOW | baton %s --type TYPE [--priority N]", verb, verb)
		wf, cl, closeConn, err := workflowCmd(verb, usage, args, stderr, !namesLane(args), func(fs *flag.FlagSet) {
			fs.StringVar(&req.Type, "type", "", verb+" the lanes of this task type instead of a workflow")
			fs.IntVar(&req.Priority, "priority", 0, "with --type: only the lane of this priority (default all)")
			if verb == events.VerbPause {
				fs.DurationVar(&until, "until", 0, "with --type: resume by itself after this long (default: until resumed)")
				fs.BoolVar(&req.Now, "now", false, "cancel the workflow's running tasks and hand them back instead of letting them finish")
			}
		})
		if err != nil {
			return err
		}
		defer closeConn()
		req.Workflow, req.Until = wf, events.Duration(until)
		switch {
		case req.Type != "":
			return controlCmd(ctx, cl, verb, &req, &events.LaneReply{}, stdout)
		case verb == events.VerbPause:
			return controlCmd(ctx, cl, verb, &req, &events.Checkpoint{}, stdout)
		}
		return controlCmd(ctx, cl, verb, &req, &events.ResumeReply{}, stdout)
	}
}

// namesLane reports whether a pause or resume names a lane (--type), so
// that it needs no workflow.
func namesLane(args []string) bool {
	for _, a := range args {
		if a == "--type" || a == "-type" || strings.HasPrefix(a, "--type=") || strings.HasPrefix(a, "-type=") {
			return true
		}
	}
	return false
}

func stop(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	wf, cl, closeConn, err := workflowCmd("stop", "baton stop WORKFLOW", args, stderr, true, nil)
	if err != nil {
		return err
	}
	defer closeConn()
	return controlCmd(ctx, cl, events.VerbStop, &events.ControlRequest{Workflow: wf}, &events.Checkpoint{}, stdout)
}

func restart(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var retry bool
	wf, cl, closeConn, err := workflowCmd("restart", "baton restart WORKFLOW [--retry-failed]", args, stderr, true, func(fs *flag.FlagSet) {
		fs.BoolVar(&retry, "retry-failed", false, "run the failed tasks again too")
	})
	if err != nil {
		return err
	}
	defer closeConn()
	return controlCmd(ctx, cl, events.VerbRestart, &events.ControlRequest{Workflow: wf, RetryFailed: retry}, &events.ResumeReply{}, stdout)
}

// listFlag collects a repeatable or comma separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, service.SplitList(v)...)
	return nil
}

func cancel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var req events.ControlRequest
	var tasks listFlag
	usage := "baton cancel [WORKFLOW] (--all | --task ID | --agent ID | --type T | --min-priority N --max-priority M)"
	wf, cl, closeConn, err := workflowCmd("cancel", usage, args, stderr, false, func(fs *flag.FlagSet) {
		fs.Var(&tasks, "task", "task id to cancel (repeat, or comma separated)")
		fs.BoolVar(&req.All, "all", false, "cancel every unfinished task of the workflow")
		fs.StringVar(&req.Agent, "agent", "", "cancel what this agent runs now")
		fs.StringVar(&req.Type, "type", "", "cancel the tasks of this type")
		fs.IntVar(&req.MinPriority, "min-priority", 0, "cancel tasks with priority from this one...")
		fs.IntVar(&req.MaxPriority, "max-priority", 0, "...to this one")
		fs.BoolVar(&req.ReleaseDependents, "release-dependents", false, "let dependents run with the cancelled input marked missing (default: cancel them too)")
	})
	if err != nil {
		return err
	}
	defer closeConn()
	req.Workflow, req.Tasks = wf, tasks
	return controlCmd(ctx, cl, events.VerbCancel, &req, &events.CancelReply{}, stdout)
}

func reprioritize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var req events.ControlRequest
	wf, cl, closeConn, err := workflowCmd("reprioritize", "baton reprioritize WORKFLOW --to N [--task ID]", args, stderr, true, func(fs *flag.FlagSet) {
		fs.IntVar(&req.To, "to", 0, "the new priority, 1 (first) to 5")
		fs.StringVar(&req.Task, "task", "", "only this task (default every unfinished task)")
	})
	if err != nil {
		return err
	}
	defer closeConn()
	req.Workflow = wf
	return controlCmd(ctx, cl, events.VerbReprioritize, &req, &events.ReprioritizeReply{}, stdout)
}

func agents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var asJSON bool
	_, cl, closeConn, err := workflowCmd("agents", "baton agents [--json]", args, stderr, false, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	defer closeConn()
	var list []events.AgentInfo
	if err := cl.Control(ctx, events.VerbAgents, &events.ControlRequest{}, &list); err != nil {
		return err
	}
	if asJSON {
		return printJSON(stdout, list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tSTATUS\tTYPES\tSLOTS\tRUNNING\tDONE\tFAILURES\tHEARTBEAT")
	for _, a := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s ago\n", a.ID, a.Status, strings.Join(a.Types, ","), a.Concurrency,
			a.Running, a.Done, a.Failures, time.Since(a.Heartbeat).Round(100*time.Millisecond))
	}
	return tw.Flush()
}

func status(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var asJSON bool
	wf, cl, closeConn, err := workflowCmd("status", "baton status [WORKFLOW] [--json]", args, stderr, false, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	defer closeConn()
	var snap events.Snapshot
	if err := cl.Control(ctx, events.VerbStatus, &events.ControlRequest{Workflow: wf}, &snap); err != nil {
		return err
	}
	if asJSON {
		return printJSON(stdout, snap)
	}
	return printStatus(stdout, &snap)
}

// printStatus writes a snapshot as tables.
func printStatus(w io.Writer, s *events.Snapshot) error {
	t := s.Tasks
	fmt.Fprintf(w, "progress %.1f%%  active %d  completed %d  |  tasks: %d pending, %d running, %d failed, %d cancelled\n",
		s.Progress, s.Active, s.Completed, t.Pending, t.Running, t.Failed, t.Cancelled)
	fmt.Fprintf(w, "last %.0fs: %.1f tasks/s, error rate %.1f%%, task time avg %.3fs p50 %.3fs p95 %.3fs\n",
		t.ThroughputSeconds, t.Throughput, 100*t.ErrorRate, t.AvgSeconds, t.P50Seconds, t.P95Seconds)
	a := s.Agents
	fmt.Fprintf(w, "agents: %d active (%d busy, %d idle, %d draining), %d failed, utilization %.0f%%, failure rate %.1f%%\n",
		a.Active, a.Busy, a.Idle, a.Draining, a.Failed, 100*a.Utilization, 100*a.FailureRate)
	if s.Bottleneck != nil {
		fmt.Fprintf(w, "bottleneck: lane %s: %s\n", s.Bottleneck.Lane, s.Bottleneck.Why)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nWORKFLOW\tSTATUS\tPROGRESS\tDONE\tACTIVE\tFAILED\tETA\tCRITICAL PATH")
	for _, v := range s.Workflows {
		n := v.Counts
		eta := v.ETA
		if v.ETASeconds != nil {
			eta = fmt.Sprintf("%.1fs", *v.ETASeconds)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f%%\t%d/%d\t%d\t%d\t%s\t%d/%d left\n", v.ID, v.Status, v.Progress,
			n.Completed+n.Failed+n.Cancelled, n.Total, v.Active, n.Failed, eta, v.CriticalPath.Remaining, v.CriticalPath.Total)
	}
	fmt.Fprintln(tw, "\nLANE\tBACKLOG\tIN FLIGHT\tREDELIVERED\tPAUSED")
	for _, l := range s.Lanes {
		if l.Backlog == 0 && l.InFlight == 0 && !l.Paused {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", l.Lane, l.Backlog, l.InFlight, l.Redelivered, pausedText(l))
	}
	return tw.Flush()
}

func pausedText(l events.LaneState) string {
	switch {
	case !l.Paused:
		return "no"
	case l.PausedUntil != nil && time.Until(*l.PausedUntil) < 50*365*24*time.Hour:
		return "until " + l.PausedUntil.Local().Format(time.TimeOnly)
	}
	return "yes"
}
