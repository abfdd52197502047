package agent_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/events"
)

// TestAgent_HandBackCostsNoAttempt stops an agent whose task outlives its
// drain timeout: the task goes back to its lane, and another agent runs it
// as the same attempt, so a task with no retries completes instead of
// failing as lost.
func TestAgent_HandBackCostsNoAttempt(t *testing.T) {
	t.Parallel()
	cfg := streams.Config{Memory: true}
	nc, js := natstest.Ensure(t, natstest.Start(t), cfg)
	ctx := t.Context()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	results, err := nc.SubscribeSync(cfg.Subjects().Result("wf", "t"))
	if err != nil {
		t.Fatal(err)
	}
	start := func(id string, h agent.HandlerFunc) (stop func()) {
		return startAgent(t, nc, agent.Config{ID: id, Streams: cfg, DrainTimeout: 100 * time.Millisecond, Logger: log},
			map[string]agent.Handler{"x": h})
	}
	started := make(chan struct{})
	stopA := start("a", func(ctx context.Context, _ *agent.Task) (any, error) {
		close(started)
		<-ctx.Done() // runs until the drain gives up on it
		return nil, ctx.Err()
	})
	msg, err := cfg.Subjects().TaskMsg(&events.Task{Workflow: "wf", ID: "t", Step: "s", Type: "x", Priority: 3,
		MaxAttempts: 1, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the task did not start")
	}
	stopA()
	start("b", func(context.Context, *agent.Task) (any, error) { return "done", nil })
	m, err := results.NextMsg(30 * time.Second)
	if err != nil {
		t.Fatalf("no result: %v", err)
	}
	r, err := events.DecodeResult(m.Header.Get(events.HeaderContentType), m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != events.StateCompleted || r.Agent != "b" || r.Attempts != 1 {
		t.Fatalf("result %s by %s after %d attempts (%s); want completed by b on attempt 1", r.Status, r.Agent, r.Attempts, r.Error)
	}
}
