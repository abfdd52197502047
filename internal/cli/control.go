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

// controlCmd sends one control request and prints the reply as JSON.
func controlCmd(ctx context.Context, c *service.Common, verb string, req *events.ControlRequest, out any, stdout io.Writer) error {
	cl, closeConn, err := connectClient(c)
	if err != nil {
		return err
	}
	defer closeConn()
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
		fs := flag.NewFlagSet("baton "+verb, flag.ContinueOnError)
		var c service.Common
		c.Register(fs)
		var req events.ControlRequest
		fs.StringVar(&req.Type, "type", "", verb+" the lanes of this task type instead of a workflow")
		fs.IntVar(&req.Priority, "priority", 0, "with --type: only the lane of this priority (default all)")
		var until time.Duration
		if verb == events.VerbPause {
			fs.DurationVar(&until, "until", 0, "with --type: resume by itself after this long (default: until resumed)")
			fs.BoolVar(&req.Now, "now", false, "cancel the workflow's running tasks and hand them back instead of letting them finish")
		}
		pos, err := parseArgs(fs, args, stderr)
		if err != nil {
			return err
		}
		usage := fmt.Sprintf("baton %s WORKFLOW | baton %s --type TYPE [--priority N]", verb, verb)
		if req.Workflow, err = oneWorkflow(usage, pos, req.Type == ""); err != nil {
			return err
		}
		req.Until = events.Duration(until)
		if req.Type != "" {
			return controlCmd(ctx, &c, verb, &req, &events.LaneReply{}, stdout)
		}
		if verb == events.VerbPause {
			return controlCmd(ctx, &c, verb, &req, &events.Checkpoint{}, stdout)
		}
		return controlCmd(ctx, &c, verb, &req, &events.ResumeReply{}, stdout)
	}
}

func stop(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("baton stop", flag.ContinueOnError)
	var c service.Common
	c.Register(fs)
	pos, err := parseArgs(fs, args, stderr)
	if err != nil {
		return err
	}
	wf, err := oneWorkflow("baton stop WORKFLOW", pos, true)
	if err != nil {
		return err
	}
	return controlCmd(ctx, &c, events.VerbStop, &events.ControlRequest{Workflow: wf}, &events.Checkpoint{}, stdout)
}

func restart(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("baton restart", flag.ContinueOnError)
	var c service.Common
	c.Register(fs)
	retry := fs.Bool("retry-failed", false, "run the failed tasks again too")
	pos, err := parseArgs(fs, args, stderr)
	if err != nil {
		return err
	}
	wf, err := oneWorkflow("baton restart WORKFLOW [--retry-failed]", pos, true)
	if err != nil {
		return err
	}
	return controlCmd(ctx, &c, events.VerbRestart, &events.ControlRequest{Workflow: wf, RetryFailed: *retry}, &events.ResumeReply{}, stdout)
}

// listFlag collects a repeatable or comma separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, service.SplitList(v)...)
	return nil
}

func cancel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("baton cancel", flag.ContinueOnError)
	var c service.Common
	c.Register(fs)
	var req events.ControlRequest
	var tasks listFlag
	fs.Var(&tasks, "task", "task id to cancel (repeat, or comma separated)")
	fs.BoolVar(&req.All, "all", false, "cancel every unfinished task of the workflow")
	fs.StringVar(&req.Agent, "agent", "", "cancel what this agent runs now")
	fs.StringVar(&req.Type, "type", "", "cancel the tasks of this type")
	fs.IntVar(&req.MinPriority, "min-priority", 0, "cancel tasks with priority from this one...")
	fs.IntVar(&req.MaxPriority, "max-priority", 0, "...to this one")
	fs.BoolVar(&req.ReleaseDependents, "release-dependents", false, "let dependents run with the cancelled input marked missing (default: cancel them too)")
	pos, err := parseArgs(fs, args, stderr)
	if err != nil {
		return err
	}
	if req.Workflow, err = oneWorkflow("baton cancel [WORKFLOW] (--all | --task ID | --agent ID | --type T | --min-priority N --max-priority M)", pos, false); err != nil {
		return err
	}
	req.Tasks = tasks
	return controlCmd(ctx, &c, events.VerbCancel, &req, &events.CancelReply{}, stdout)
}

func reprioritize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("baton reprioritize", flag.ContinueOnError)
	var c service.Common
	c.Register(fs)
	var req events.ControlRequest
	fs.IntVar(&req.To, "to", 0, "the new priority, 1 (first) to 5")
	fs.StringVar(&req.Task, "task", "", "only this task (default every unfinished task)")
	pos, err := parseArgs(fs, args, stderr)
	if err != nil {
		return err
	}
	if req.Workflow, err = oneWorkflow("baton reprioritize WORKFLOW --to N [--task ID]", pos, true); err != nil {
		return err
	}
	return controlCmd(ctx, &c, events.VerbReprioritize, &req, &events.ReprioritizeReply{}, stdout)
}

func agents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("baton agents", flag.ContinueOnError)
	var c service.Common
	c.Register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseArgs(fs, args, stderr); err != nil {
		return err
	}
	cl, closeConn, err := connectClient(&c)
	if err != nil {
		return err
	}
	defer closeConn()
	var list []events.AgentInfo
	if err := cl.Control(ctx, events.VerbAgents, &events.ControlRequest{}, &list); err != nil {
		return err
	}
	if *asJSON {
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
	fs := flag.NewFlagSet("baton status", flag.ContinueOnError)
	var c service.Common
	c.Register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseArgs(fs, args, stderr)
	if err != nil {
		return err
	}
	wf, err := oneWorkflow("baton status [WORKFLOW] [--json]", pos, false)
	if err != nil {
		return err
	}
	cl, closeConn, err := connectClient(&c)
	if err != nil {
		return err
	}
	defer closeConn()
	var snap events.Snapshot
	if err := cl.Control(ctx, events.VerbStatus, &events.ControlRequest{Workflow: wf}, &snap); err != nil {
		return err
	}
	if *asJSON {
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
