package service_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	"github.com/baton-dev/baton/internal/service"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/oklog/run"
)

// TestSystem_AgentsDrainBeforeThePlannerStops stops `baton up`'s run group
// while a task runs: the agent drains (the task finishes), and the planner
// and the aggregator are still there to take its result, so the workflow
// closes and its final output is published before the group returns.
func TestSystem_AgentsDrainBeforeThePlannerStops(t *testing.T) {
	t.Parallel()
	cfg := streams.Config{Memory: true}
	nc, _ := natstest.Ensure(t, natstest.Start(t), cfg)
	sys := &service.System{Streams: cfg, Agents: 1, Concurrency: 2, Types: []string{"sleep"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var g run.Group
	g.Add(run.ContextHandler(ctx))
	if _, err := sys.Add(ctx, &g, nc); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Run() }()

	started, err := nc.SubscribeSync(cfg.Subjects().Live("*", events.EventStarted))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	reply, err := cl.Submit(t.Context(), []byte(`{"steps": [{"id": "nap", "type": "sleep", "input": 800}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := started.NextMsg(30 * time.Second); err != nil {
		t.Fatalf("the task did not start: %v", err)
	}
	stop() // as Ctrl-C would, while the task sleeps
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the group did not stop")
	}
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := cl.Final(rctx, reply.Workflow)
	if err != nil {
		t.Fatalf("no final output after the shutdown: %v", err)
	}
	if out.Status != events.OutcomeSuccess {
		t.Fatalf("final output %s", out.Status)
	}
	rec, err := cl.Workflow(rctx, reply.Workflow)
	if err != nil || rec.Status != events.WorkflowCompleted || rec.Outcome != events.OutcomeSuccess {
		t.Fatalf("record %+v, %v; want completed, success", rec, err)
	}
}
