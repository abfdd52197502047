package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/spf13/cobra"
)

// controlRun connects a client, calls fn with it and prints what fn
// returns as JSON.
func (c *conn) controlRun(cmd *cobra.Command, fn func(cl *client.Client) (any, error)) error {
	cl, done, err := c.client()
	if err != nil {
		return err
	}
	defer done()
	out, err := fn(cl)
	if err != nil {
		return err
	}
	return printJSON(cmd.OutOrStdout(), out)
}

// newPauseCmd is `baton pause` (pause true) or `baton resume`: of a
// workflow, or of lanes with --type.
func newPauseCmd(c *conn, pause bool) *cobra.Command {
	var lane client.Lane
	var until time.Duration
	var now bool
	var token string
	verb, short, long, example := "resume", "Resume a paused workflow, or lanes with --type",
		`Resume a paused workflow: its tasks are queued again. With --token (the
token 'baton pause' printed) it resumes only from that checkpoint: if the
workflow was resumed, cancelled in part, reprioritized or paused again
since, the token is stale and the resume is refused (exit status 5); a
token of another workflow is refused as a bad request (exit status 4).
With --type instead of a WORKFLOW, resume the lane consumers of that task
type (every priority, or only --priority). Prints the reply as JSON.`,
		`  baton resume 01JB7X3M9Q2W
  baton resume 01JB7X3M9Q2W --token cp1.hZ0kq3s8V2T4dVHc0y1x9A
  baton resume --type research --priority 1`
	if pause {
		verb, short, long, example = "pause", "Pause a workflow, or lanes with --type",
			`Pause a workflow: none of its tasks starts until 'baton resume'; running
tasks finish, or with --now are cancelled and handed back. Prints the
workflow's checkpoint as JSON, with its resume token ("token"), which
'baton resume --token' accepts. Pausing a finished workflow is a conflict
(exit status 5).

With --type instead of a WORKFLOW, pause the lane consumers of that task type
(every priority, or only --priority), for every workflow; --until lifts the
pause by itself after that long.`,
			`  baton pause 01JB7X3M9Q2W
  baton pause 01JB7X3M9Q2W --now
  baton pause --type http --until 10m`
	}
	cmd := &cobra.Command{
		Use:               verb + " (WORKFLOW | --type TYPE [--priority N])",
		Short:             short,
		Long:              long,
		Example:           example,
		Args:              usageArgs(cobra.MaximumNArgs(1)),
		ValidArgsFunction: c.completeWorkflows,
		RunE: func(cmd *cobra.Command, args []string) error {
			fs := cmd.Flags()
			switch {
			case lane.Type == "" && len(args) == 0:
				return usagef("%s a WORKFLOW, or the lanes of a task type with --type", verb)
			case lane.Type != "" && len(args) > 0:
				return usagef("%s a WORKFLOW or lanes (--type), not both", verb)
			case lane.Type == "" && (fs.Changed("priority") || fs.Changed("until")):
				return usagef("--priority and --until need --type")
			case lane.Type != "" && now:
				return usagef("--now applies to a workflow, not to lanes")
			case lane.Type != "" && token != "":
				return usagef("--token applies to a workflow, not to lanes")
			}
			return c.controlRun(cmd, func(cl *client.Client) (any, error) {
				ctx := cmd.Context()
				switch {
				case lane.Type != "" && pause:
					return cl.PauseLane(ctx, lane, until)
				case lane.Type != "":
					return cl.ResumeLane(ctx, lane)
				case pause:
					return cl.Pause(ctx, args[0], client.PauseOptions{Now: now})
				case token != "":
					return cl.ResumeFrom(ctx, args[0], token)
				}
				return cl.Resume(ctx, args[0])
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&lane.Type, "type", "", verb+" the lanes of this task type instead of a workflow")
	fs.IntVar(&lane.Priority, "priority", 0, "with --type: only the lane of this priority, 1 to 5 (default all)")
	if pause {
		fs.DurationVar(&until, "until", 0, "with --type: resume by itself after this long (default: until resumed)")
		fs.BoolVar(&now, "now", false, "cancel the workflow's running tasks and hand them back instead of letting them finish")
	} else {
		fs.StringVar(&token, "token", "", "resume only from the checkpoint of this token (as pause replied)")
	}
	_ = cmd.RegisterFlagCompletionFunc("type", completeTypes)
	return cmd
}

func newStopCmd(c *conn) *cobra.Command {
	return &cobra.Command{
		Use:   "stop WORKFLOW",
		Short: "Stop a workflow: withdraw pending tasks, let running ones finish",
		Long: `Stop a workflow: its pending tasks are withdrawn from the lanes, running
ones finish. Prints the workflow's checkpoint as JSON, with its resume
token; 'baton restart' continues from it (with --token, only if nothing
changed since).`,
		Example:           "  baton stop 01JB7X3M9Q2W",
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: c.completeWorkflows,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.controlRun(cmd, func(cl *client.Client) (any, error) {
				return cl.Stop(cmd.Context(), args[0])
			})
		},
	}
}

func newRestartCmd(c *conn) *cobra.Command {
	var opts client.RestartOptions
	cmd := &cobra.Command{
		Use:   "restart WORKFLOW",
		Short: "Restart a stopped or paused workflow",
		Long: `Continue a stopped or paused workflow from its checkpoint: its unfinished
tasks are queued again, and with --retry-failed its failed tasks too.
With --token (as stop or pause printed) it restarts only from that
checkpoint, and refuses a stale token (exit status 5). Prints the reply
as JSON.`,
		Example: `  baton restart 01JB7X3M9Q2W
  baton restart 01JB7X3M9Q2W --retry-failed`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: c.completeWorkflows,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.controlRun(cmd, func(cl *client.Client) (any, error) {
				return cl.Restart(cmd.Context(), args[0], opts)
			})
		},
	}
	cmd.Flags().BoolVar(&opts.RetryFailed, "retry-failed", false, "run the failed tasks again too")
	cmd.Flags().StringVar(&opts.Token, "token", "", "restart only from the checkpoint of this token (as stop or pause replied)")
	return cmd
}

func newCheckpointCmd(c *conn) *cobra.Command {
	return &cobra.Command{
		Use:   "checkpoint WORKFLOW",
		Short: "Show a workflow's last checkpoint",
		Long: `Show the last checkpoint a pause or stop took of a workflow, as its record
keeps it: number, status, generation, when, the counts of done, running
and pending tasks, a digest of those sets, the agents and what each ran,
and "stale" once a resume, restart, cancel, reprioritize or another pause
has made its token stale. The token itself is in the pause or stop reply
only. A workflow never paused has none (exit status 3).`,
		Example:           "  baton checkpoint 01JB7X3M9Q2W",
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: c.completeWorkflows,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.controlRun(cmd, func(cl *client.Client) (any, error) {
				cp, err := cl.Checkpoint(cmd.Context(), args[0])
				if err == nil && cp == nil {
					err = fmt.Errorf("workflow %s has no checkpoint: it was never paused or stopped: %w", args[0], events.ErrNotFound)
				}
				return cp, err
			})
		},
	}
}

func newCancelCmd(c *conn) *cobra.Command {
	var sel client.CancelSelector
	tasks := &listFlag{}
	cmd := &cobra.Command{
		Use:   "cancel [WORKFLOW] (--all | --task ID | --agent ID | --type T | --min-priority N --max-priority M)",
		Short: "Cancel tasks by id, agent, type or priority range",
		Long: `Cancel tasks. Selectors combine with "or":
  --all                   every unfinished task of WORKFLOW (needs a WORKFLOW)
  --task ID               these tasks of WORKFLOW
  --agent ID              what this agent runs now
  --type T                the tasks of this type
  --min/--max-priority    the tasks in this priority range (either end alone is open)
Without a WORKFLOW the selectors apply to every unfinished workflow.

The dependents of a cancelled task are cancelled too, unless
--release-dependents lets them run with the cancelled input marked missing.
Prints the cancelled tasks and dependents as JSON.`,
		Example: `  baton cancel 01JB7X3M9Q2W --all
  baton cancel 01JB7X3M9Q2W --task fetch-3,fetch-4 --release-dependents
  baton cancel --agent agent-2
  baton cancel --min-priority 4`,
		Args:              usageArgs(cobra.MaximumNArgs(1)),
		ValidArgsFunction: c.completeWorkflows,
		RunE: func(cmd *cobra.Command, args []string) error {
			sel.Workflow = optionalArg(args)
			sel.Tasks = tasks.items
			return c.controlRun(cmd, func(cl *client.Client) (any, error) {
				return cl.Cancel(cmd.Context(), sel)
			})
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&sel.All, "all", false, "cancel every unfinished task of the workflow")
	fs.Var(tasks, "task", "task id to cancel (repeat, or comma separated)")
	fs.StringVar(&sel.Agent, "agent", "", "cancel what this agent runs now")
	fs.StringVar(&sel.Type, "type", "", "cancel the tasks of this type")
	fs.IntVar(&sel.MinPriority, "min-priority", 0, "cancel tasks with priority from this one...")
	fs.IntVar(&sel.MaxPriority, "max-priority", 0, "...to this one")
	fs.BoolVar(&sel.ReleaseDependents, "release-dependents", false, "let dependents run with the cancelled input marked missing (default: cancel them too)")
	_ = cmd.RegisterFlagCompletionFunc("type", completeTypes)
	return cmd
}

func newReprioritizeCmd(c *conn) *cobra.Command {
	var to int
	var task string
	cmd := &cobra.Command{
		Use:   "reprioritize WORKFLOW --to N",
		Short: "Move a workflow's (or one task's) pending tasks to another priority",
		Long: `Move a workflow's unfinished tasks — or only --task — to priority --to,
1 (first) to 5: queued tasks move to the lanes of that priority. Prints
the moved and updated tasks as JSON.`,
		Example: `  baton reprioritize 01JB7X3M9Q2W --to 1
  baton reprioritize 01JB7X3M9Q2W --to 5 --task summarize`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: c.completeWorkflows,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("to") {
				return usagef("reprioritize needs --to N, the new priority")
			}
			return c.controlRun(cmd, func(cl *client.Client) (any, error) {
				return cl.Reprioritize(cmd.Context(), args[0], task, to)
			})
		},
	}
	cmd.Flags().IntVar(&to, "to", 0, "the new priority, 1 (first) to 5")
	cmd.Flags().StringVar(&task, "task", "", "only this task (default every unfinished task)")
	return cmd
}

func newAgentsCmd(c *conn) *cobra.Command {
	var asJSON bool
	var opts client.ListOptions
	cmd := &cobra.Command{
		Use:   "agents",
		Short: "List the registered agents",
		Long: fmt.Sprintf(`List the registered agents, sorted by id: status, task types, slots,
running and done tasks, failures and the age of the last heartbeat; --json
prints them as JSON. A reply lists at most --limit agents (default %d, at
most %d) and stops before it would outgrow the server's max payload;
--offset and --status (idle, busy, draining, failed) show the others. What
was left out is said after the table (on stderr with --json).`, events.DefaultListLimit, events.MaxListLimit),
		Example: `  baton agents
  baton agents --status failed
  baton agents --offset 100 --json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, done, err := c.client()
			if err != nil {
				return err
			}
			defer done()
			l, err := cl.AgentList(cmd.Context(), opts)
			if err != nil {
				return err
			}
			note := agentsNote(l)
			if asJSON {
				if note != "" {
					fmt.Fprintln(cmd.ErrOrStderr(), note)
				}
				return printJSON(cmd.OutOrStdout(), l.Agents)
			}
			if err := printAgents(cmd.OutOrStdout(), l.Agents); err != nil {
				return err
			}
			if note != "" {
				fmt.Fprintln(cmd.OutOrStdout(), note)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	listFlags(cmd, &opts, "agents", "idle, busy, draining or failed")
	cmd.AddCommand(newAgentsCrashCmd(c))
	return cmd
}

func newAgentsCrashCmd(c *conn) *cobra.Command {
	return &cobra.Command{
		Use:   "crash AGENT",
		Short: "Failure drill: make an agent die abruptly, as SIGKILL would",
		Long: `A failure drill: the agent stops at once, as if killed with SIGKILL. It
acknowledges nothing, publishes no result, drains nothing and keeps its
registry entry, so the recovery runs as for a real crash: the reaper marks
the agent failed within two heartbeats, its entry expires with the agent
TTL, and the tasks it held go back to the other agents once their ack
wait passes. An agent in 'baton up' stops while the process lives on; a
standalone agent process exits with status 137. Prints the agent's answer
(the tasks it abandoned) as JSON. An agent that is not running is not
found (exit status 3). Needs the operator role.`,
		Example: "  baton agents crash agent-3",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.controlRun(cmd, func(cl *client.Client) (any, error) {
				return cl.CrashAgent(cmd.Context(), args[0])
			})
		},
	}
}

// listFlags adds --offset, --limit and --status, which page through a long
// list of what.
func listFlags(cmd *cobra.Command, opts *client.ListOptions, what, statuses string) {
	fs := cmd.Flags()
	fs.IntVar(&opts.Offset, "offset", 0, "skip this many "+what)
	fs.IntVar(&opts.Limit, "limit", 0, fmt.Sprintf("list at most this many %s (default %d, at most %d)", what, events.DefaultListLimit, events.MaxListLimit))
	fs.StringVar(&opts.Status, "status", "", "list only the "+what+" of this status: "+statuses)
}

// agentsNote says what a page of agents left out, and how to see it.
func agentsNote(l *client.AgentList) string {
	p := l.Page
	if p.Omitted == 0 {
		return ""
	}
	note := fmt.Sprintf("… listing %d of %d agents from offset %d; %d left out", len(l.Agents), p.Total, p.Offset, p.Omitted)
	if p.Next > 0 {
		return note + fmt.Sprintf(": baton agents --offset %d for the next", p.Next)
	}
	return note + ": baton agents --offset 0 for the first"
}

func printAgents(w io.Writer, list []events.AgentInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tSTATUS\tTYPES\tCAPABILITIES\tSLOTS\tRUNNING\tDONE\tFAILURES\tCPU\tRSS\tRESERVED\tHEARTBEAT")
	for _, a := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s ago\n", a.ID, a.Status, strings.Join(a.Types, ","),
			orDash(strings.Join(a.Routing, ",")), a.Concurrency, a.Running, a.Done, a.Failures, procCPU(a), procRSS(a), reserved(a),
			time.Since(a.Heartbeat).Round(100*time.Millisecond))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// procCPU and procRSS show an agent process's own use of its machine.
func procCPU(a events.AgentInfo) string {
	if a.Process == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", a.Process.CPUPercent)
}

func procRSS(a events.AgentInfo) string {
	if a.Process == nil {
		return "-"
	}
	return fmt.Sprintf("%.1fMiB", float64(a.Process.RSS)/(1<<20))
}

// reserved shows what running tasks hold of an agent's declared capacity.
func reserved(a events.AgentInfo) string {
	var parts []string
	if a.CPUMilli > 0 {
		parts = append(parts, fmt.Sprintf("%g/%g cpus", float64(a.CPUMilliUsed)/1000, float64(a.CPUMilli)/1000))
	}
	if a.Memory > 0 {
		parts = append(parts, fmt.Sprintf("%.0f/%.0fMiB", float64(a.MemoryUsed)/(1<<20), float64(a.Memory)/(1<<20)))
	}
	return orDash(strings.Join(parts, " "))
}

func newStatusCmd(c *conn) *cobra.Command {
	var asJSON bool
	var opts client.ListOptions
	cmd := &cobra.Command{
		Use:   "status [WORKFLOW]",
		Short: "Show progress, ETA, bottleneck, lanes and agents",
		Long: fmt.Sprintf(`Show where work stands. Without a WORKFLOW the headline sums up every open
(running, paused, stopped or needs_attention) workflow and counts workflows by status, and
the table lists the open ones, latest first, then those finished in the
last minutes, latest first: at most --limit of them (default %d, at most
%d), and fewer if the reply would outgrow the server's max payload. What
was left out is said below the table; --offset pages through the rest and
--status (open, finished, running, paused, stopped, needs_attention,
completed, failed)
lists only some. With a WORKFLOW, that workflow alone, finished long ago
or not. Then throughput, error rate and task times, agents, the bottleneck
lane, and every lane with a backlog, tasks in flight or a pause. --json
prints the whole snapshot as JSON.`, events.DefaultListLimit, events.MaxListLimit),
		Example: `  baton status
  baton status --status paused
  baton status --offset 100 --limit 100
  baton status 01JB7X3M9Q2W
  baton status --json 01JB7X3M9Q2W`,
		Args:              usageArgs(cobra.MaximumNArgs(1)),
		ValidArgsFunction: c.completeWorkflows,
		RunE: func(cmd *cobra.Command, args []string) error {
			wf := optionalArg(args)
			if wf != "" && (opts != client.ListOptions{}) {
				return usagef("--offset, --limit and --status list workflows: give them without a WORKFLOW")
			}
			cl, done, err := c.client()
			if err != nil {
				return err
			}
			defer done()
			var snap *events.Snapshot
			if wf != "" {
				snap, err = cl.Status(cmd.Context(), wf)
			} else {
				snap, err = cl.StatusList(cmd.Context(), opts)
			}
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), snap)
			}
			return printStatus(cmd.OutOrStdout(), snap, wf)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	listFlags(cmd, &opts, "workflows", "open, finished, running, paused, stopped, completed or failed")
	return cmd
}

// scope names what a snapshot's sums cover: the workflow asked about, or
// the open workflows and how many there are.
func scope(s *events.Snapshot, wf string) string {
	if wf != "" && len(s.Workflows) == 1 {
		return fmt.Sprintf("workflow %s (%s)", s.Workflows[0].ID, s.Workflows[0].Status)
	}
	return fmt.Sprintf("open workflows: %d", s.Open)
}

// totalsLine counts every workflow by status.
func totalsLine(t events.WorkflowTotals) string {
	attention := ""
	if t.NeedsAttention > 0 {
		attention = fmt.Sprintf(", %d need attention (baton resolve)", t.NeedsAttention)
	}
	return fmt.Sprintf("workflows: %d — %d running, %d paused, %d stopped%s; %d completed, %d failed (%d of them finished lately)",
		t.Total, t.Running, t.Paused, t.Stopped, attention, t.Completed, t.Failed, t.FinishedRecently)
}

// printStatus writes a snapshot (of workflow wf, or of all with "") as
// tables, and says what its lists left out.
func printStatus(w io.Writer, s *events.Snapshot, wf string) error {
	t := s.Tasks
	fmt.Fprintf(w, "%s — progress %.1f%%  active %d  completed %d  |  tasks: %d pending, %d running, %d failed, %d cancelled\n",
		scope(s, wf), s.Progress, s.Active, s.Completed, t.Pending, t.Running, t.Failed, t.Cancelled)
	if wf == "" {
		fmt.Fprintln(w, totalsLine(s.Totals))
	}
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
		status := v.Status
		if v.Ready && events.WorkflowOpen(v.Status) {
			status += " (ready)" // hybrid: its ready output is out
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f%%\t%d/%d\t%d\t%d\t%s\t%d/%d left\n", v.ID, status, v.Progress,
			n.Completed+n.Failed+n.Cancelled, n.Total, v.Active, n.Failed, eta, v.CriticalPath.Remaining, v.CriticalPath.Total)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if s.Page.Note != "" {
		fmt.Fprintf(w, "… %s\n", s.Page.Note)
	}
	for _, v := range s.Workflows {
		for _, warn := range v.Warnings {
			fmt.Fprintf(w, "warning: %s: %s\n", v.ID, warn)
		}
	}
	if len(a.List) > 0 {
		fmt.Fprintln(tw, "\nAGENT\tRUNNING\tCPU\tRSS\tRESERVED")
		for _, ag := range a.List {
			fmt.Fprintf(tw, "%s\t%d/%d\t%s\t%s\t%s\n", ag.ID, ag.Running, ag.Concurrency, procCPU(ag), procRSS(ag), reserved(ag))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(tw, "\nLANE\tBACKLOG\tIN FLIGHT\tREDELIVERED\tPAUSED")
	for _, l := range s.Lanes {
		if l.Backlog == 0 && l.InFlight == 0 && !l.Paused {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", l.Lane, l.Backlog, l.InFlight, l.Redelivered, pausedText(l))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if s.LanesOmitted > 0 {
		fmt.Fprintf(w, "… %d lanes left out of this reply (the idle ones go last)\n", s.LanesOmitted)
	}
	if a.Omitted > 0 {
		fmt.Fprintf(w, "… %d agents left out of this reply: baton agents lists them all\n", a.Omitted)
	}
	return nil
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
