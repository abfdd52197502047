package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/spf13/cobra"
)

func newWatchCmd(c *conn) *cobra.Command {
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "watch [WORKFLOW]",
		Short: "Live progress bars per workflow and lane",
		Long: `Draw live progress bars per workflow and per busy lane, with agent counts,
throughput and ETA, refreshed every --every in place. It runs until q or
Ctrl-C, or, given a WORKFLOW, until that workflow ends.`,
		Example: `  baton watch
  baton watch 01JB7X3M9Q2W --every 200ms`,
		Args:              usageArgs(cobra.MaximumNArgs(1)),
		ValidArgsFunction: c.completeWorkflows,
		RunE: func(cmd *cobra.Command, args []string) error {
			if every <= 0 {
				return usagef("--every must be positive")
			}
			wf := optionalArg(args)
			cl, done, err := c.client()
			if err != nil {
				return err
			}
			defer done()
			return watch(cmd.Context(), cl, wf, every, cmd.OutOrStdout())
		},
	}
	cmd.Flags().DurationVar(&every, "every", 500*time.Millisecond, "refresh interval")
	return cmd
}

// watch draws live progress bars per workflow and per lane, agent counts,
// throughput and ETA, refreshing in place, until Ctrl-C (or q), or until
// the workflow it watches ends.
func watch(ctx context.Context, cl *client.Client, wf string, every time.Duration, stdout io.Writer) error {
	m := &watchModel{ctx: ctx, cl: cl, wf: wf, every: every}
	opts := []tea.ProgramOption{tea.WithContext(ctx), tea.WithOutput(stdout)}
	if f, ok := stdout.(*os.File); !ok || f != os.Stdout {
		opts = append(opts, tea.WithInput(nil))
	}
	final, err := tea.NewProgram(m, opts...).Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return err
	}
	if fm, ok := final.(*watchModel); ok && fm.err != nil {
		return fm.err
	}
	return nil
}

type watchModel struct {
	ctx   context.Context
	cl    *client.Client
	wf    string
	every time.Duration
	snap  *events.Snapshot
	err   error
	done  bool
	width int
}

type snapMsg struct {
	snap *events.Snapshot
	err  error
}

func (m *watchModel) fetch() tea.Msg {
	ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
	defer cancel()
	s, err := m.cl.Status(ctx, m.wf)
	return snapMsg{s, err}
}

func (m *watchModel) Init() tea.Cmd { return m.fetch }

func (m *watchModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.KeyMsg:
		if msg.String() == "ctrl+c" || msg.String() == "q" {
			return m, tea.Quit
		}
	case tea.WindowSizeMsg:
		m.width = msg.Width
	case snapMsg:
		if msg.err != nil {
			if errors.Is(msg.err, events.ErrNotFound) {
				m.err = msg.err
				return m, tea.Quit
			}
			m.err = msg.err // shown; try again
		} else {
			m.snap, m.err = msg.snap, nil
			if m.wf != "" && len(m.snap.Workflows) == 1 {
				switch m.snap.Workflows[0].Status {
				case events.WorkflowCompleted, events.WorkflowFailed:
					m.done = true
					return m, tea.Quit
				}
			}
		}
		return m, tea.Tick(m.every, func(time.Time) tea.Msg { return m.fetch() })
	}
	return m, nil
}

func watchBar(pct float64, width int) string {
	n := int(pct / 100 * float64(width))
	n = max(0, min(n, width))
	return "[" + strings.Repeat("█", n) + strings.Repeat("·", width-n) + "]"
}

func (m *watchModel) View() string {
	var b strings.Builder
	s := m.snap
	if s == nil {
		if m.err != nil {
			return "baton watch: " + m.err.Error() + "\n"
		}
		return "baton watch: connecting…\n"
	}
	t, a := s.Tasks, s.Agents
	fmt.Fprintf(&b, "baton  %s  %.1f tasks/s  errors %.1f%%  agents %d (%d busy, %d idle, %d failed)  utilization %.0f%%\n",
		s.Time.Local().Format(time.TimeOnly), t.Throughput, 100*t.ErrorRate, a.Active, a.Busy, a.Idle, a.Failed, 100*a.Utilization)
	fmt.Fprintf(&b, "%s  %s %5.1f%%  active %d  completed %d\n\n", scope(s, m.wf), watchBar(s.Progress, 30), s.Progress, s.Active, s.Completed)
	for _, w := range s.Workflows {
		n := w.Counts
		eta := w.ETA
		if w.ETASeconds != nil {
			eta = fmt.Sprintf("ETA %.1fs", *w.ETASeconds)
		}
		fmt.Fprintf(&b, "%-24s %s %5.1f%%  %d/%d  active %d  failed %d  %s  %s\n", w.ID, watchBar(w.Progress, 30), w.Progress,
			n.Completed+n.Failed+n.Cancelled, n.Total, w.Active, n.Failed, w.Status, eta)
	}
	if s.Page.Omitted > 0 {
		fmt.Fprintf(&b, "… %d more workflows not shown (%d listed of %d): baton status --offset %d lists the next\n",
			s.Page.Omitted, len(s.Workflows), s.Page.Total, s.Page.Next)
	}
	busy := false
	for _, l := range s.Lanes {
		if l.Backlog == 0 && l.InFlight == 0 && !l.Paused {
			continue
		}
		if !busy {
			b.WriteString("\nlanes\n")
			busy = true
		}
		work := float64(l.Backlog) + float64(l.InFlight)
		pct := 0.0
		if work > 0 {
			pct = 100 * float64(l.InFlight) / work
		}
		mark := ""
		if s.Bottleneck != nil && s.Bottleneck.Lane == l.Lane {
			mark = "  ◀ bottleneck: " + s.Bottleneck.Why
		}
		fmt.Fprintf(&b, "%-24s %s backlog %d  in flight %d  paused %s%s\n", l.Lane, watchBar(pct, 20), l.Backlog, l.InFlight, pausedText(l), mark)
	}
	if m.err != nil {
		fmt.Fprintf(&b, "\n(%v; retrying)\n", m.err)
	}
	if m.done {
		b.WriteString("\nworkflow finished.\n")
	} else {
		b.WriteString("\nq or Ctrl-C to quit\n")
	}
	return b.String()
}
