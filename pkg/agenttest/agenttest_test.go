package agenttest_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/agenttest"
	"github.com/baton-dev/baton/pkg/events"
)

func double(_ context.Context, t *agent.Task) (any, error) {
	var n int
	if err := t.Bind(&n); err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, agent.Permanent(errors.New("negative input"))
	}
	if n == 13 {
		panic("unlucky")
	}
	return 2 * n, nil
}

func TestHarness_Task(t *testing.T) {
	t.Parallel()
	h := agenttest.New(t, map[string]agent.Handler{"double": agent.HandlerFunc(double)})
	for _, tc := range []struct {
		name   string
		input  int
		status string
		kind   string
		data   string
	}{
		{name: "completes", input: 21, status: events.StateCompleted, data: "42"},
		{name: "permanent error fails at once", input: -1, status: events.StateFailed, kind: events.KindPermanent},
		{name: "panic fails", input: 13, status: events.StateFailed, kind: events.KindPanic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.Task("double", tc.input)
			if r.Status != tc.status || r.ErrorKind != tc.kind || string(r.Data) != tc.data {
				t.Fatalf("result %s %q %s, want %s %q %s", r.Status, r.ErrorKind, r.Data, tc.status, tc.kind, tc.data)
			}
			if r.Agent != "agenttest" || r.Attempts != 1 {
				t.Fatalf("agent %q after %d attempts, want agenttest after 1", r.Agent, r.Attempts)
			}
		})
	}
}

func TestHarness_Run(t *testing.T) {
	t.Parallel()
	// Each chunk of a split list is a list: double its one item.
	chunk := agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) {
		var in []int
		if err := t.Bind(&in); err != nil {
			return nil, err
		}
		return 2 * in[0], nil
	})
	h := agenttest.New(t, map[string]agent.Handler{"double": chunk}, agenttest.Options{Concurrency: 2})
	out := h.Run(map[string]any{
		"steps":     []map[string]any{{"id": "d", "type": "double", "split": 1, "input": []int{1, 2, 3}}},
		"aggregate": map[string]any{"strategy": "reduce", "op": "sum", "field": "."},
	})
	var sum struct{ Value, Count int }
	if err := json.Unmarshal(out.Data, &sum); err != nil || out.Status != events.OutcomeSuccess || sum.Value != 12 || sum.Count != 3 {
		t.Fatalf("output %s %s (%v), want success with value 12 over 3", out.Status, out.Data, err)
	}
	if got := len(h.Results(out.Workflow)); got != 3 {
		t.Fatalf("%d final results, want 3", got)
	}
}
