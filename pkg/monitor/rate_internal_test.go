package monitor

import (
	"testing"
	"time"

	"github.com/baton-dev/baton/pkg/events"
)

// TestETA_RateFromTheFirstStart checks a workflow's drain rate, and the
// ETA it gives, on results whose times are set: the wait before its first
// task started does not count, and a start the agent's clock (or a forged
// result) puts after now or before the submission does not move the span.
func TestETA_RateFromTheFirstStart(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_000_000, 0)
	now := t0.Add(3500 * time.Millisecond)
	const task = 500 * time.Millisecond
	// Six tasks of 500 ms on two slots, the first two started 2 s after
	// the submission: they finished at 2.5, 3.0 and 3.5 s.
	ran := func(shift time.Duration) []obs {
		var out []obs
		for _, end := range []time.Duration{2500, 2500, 3000, 3000, 3500, 3500} {
			out = append(out, obs{at: t0.Add(end*time.Millisecond + shift), wf: "wf", status: events.StateCompleted, dur: task})
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		recent []obs
		span   float64 // seconds the six results are counted over
	}{
		{"waited 2 s before the first start", ran(0), 1.5},
		// An agent's clock 10 s ahead: every start is after now, so the
		// span goes back to the submission.
		{"starts after now", ran(10 * time.Second), 3.5},
		// A result claiming to have run for a minute started before the
		// submission: the span starts no earlier than the submission.
		{"a start before the submission", append(ran(0)[1:], obs{at: t0.Add(2500 * time.Millisecond), wf: "wf", status: events.StateCompleted, dur: time.Minute}), 3.5},
	} {
		m := &Monitor{cfg: Config{RateWindow: 15 * time.Second}, recent: tc.recent}
		rec := &events.Workflow{ID: "wf", Status: events.WorkflowRunning, Submitted: t0, Counts: events.Counts{Total: 20, Pending: 20}}
		v := m.view(rec, now, nil, 0, m.byWorkflow(now)["wf"])
		if v.Completed != 6 || v.ETASeconds == nil {
			t.Fatalf("%s: %d completed, ETA %s", tc.name, v.Completed, v.ETA)
		}
		// 14 tasks left at the rate status shows (rounded to 0.01/s).
		if want := round2(14 / round2(6/tc.span)); *v.ETASeconds != want {
			t.Errorf("%s: ETA %vs, want %vs (%s)", tc.name, *v.ETASeconds, want, v.ETA)
		}
	}
}
