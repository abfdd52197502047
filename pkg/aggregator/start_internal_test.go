package aggregator

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/planner"
)

// TestAggregator_StartMissesNoWorkflow starts the aggregator while a
// workflow is created and finishes: after the aggregator listed the open
// workflows, and before it chose where to follow RESULTS from. Its final
// output must still come.
func TestAggregator_StartMissesNoWorkflow(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	cfg := streams.Config{Memory: true}
	nc, _ := natstest.Ensure(t, srv, cfg)
	cl, err := client.New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := planner.New(nc, planner.Config{Streams: cfg})
	if err != nil {
		t.Fatal(err)
	}
	ag, err := agent.New(nc, agent.Config{ID: "a", Streams: cfg})
	if err != nil {
		t.Fatal(err)
	}
	ag.Handle("echo", agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) { return "done", nil }))
	a, err := New(nc, Config{Streams: cfg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	var services sync.WaitGroup
	t.Cleanup(func() { cancel(); services.Wait() })
	for _, run := range []func(context.Context) error{p.Run, ag.Run} {
		services.Go(func() {
			if err := run(ctx); err != nil {
				t.Error(err)
			}
		})
	}

	type finished struct {
		workflow string
		err      error
	}
	listed := make(chan finished, 1)
	a.listed = func() {
		reply, err := cl.Submit(ctx, []byte(`{"steps":[{"id":"s","type":"echo","input":1}]}`))
		if err != nil {
			listed <- finished{err: err}
			return
		}
		// The planner finishes the workflow once its one result is stored.
		for {
			rec, err := cl.Workflow(ctx, reply.Workflow)
			if err == nil && rec.Status == events.WorkflowCompleted {
				listed <- finished{workflow: reply.Workflow}
				return
			}
			if ctx.Err() != nil {
				listed <- finished{err: errors.Join(ctx.Err(), err)}
				return
			}
			time.Sleep(10 * time.Millisecond) // polls the record, within the test's deadline
		}
	}
	services.Go(func() {
		if err := a.Run(ctx); err != nil {
			t.Error(err)
		}
	})
	f := <-listed
	if f.err != nil {
		t.Fatalf("run the workflow while the aggregator starts: %v", f.err)
	}
	out, err := cl.Follow(ctx, f.workflow, nil)
	if err != nil {
		t.Fatalf("follow %s: %v", f.workflow, err)
	}
	if out.Status != events.OutcomeSuccess {
		t.Fatalf("final output %s %s, want success", out.Status, out.Data)
	}
}
