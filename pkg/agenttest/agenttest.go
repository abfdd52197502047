package agenttest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/aggregator"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/planner"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Timeout bounds each Run and Task; the test fails when it passes.
const Timeout = time.Minute

// Harness is a running baton with one agent serving the handlers.
type Harness struct {
	tb  testing.TB
	nc  *nats.Conn
	js  jetstream.JetStream
	cfg streams.Config
	// Client talks to the harness's deployment, for control requests.
	Client *client.Client
}

// Options tune New. The zero value is a good default.
type Options struct {
	// Concurrency is the agent's number of slots; default 4.
	Concurrency int
	// Middleware wraps every handler, as agent.Agent.Use does.
	Middleware []agent.Middleware
	// Logger receives the services' logs; default: warnings and errors in
	// the test's output.
	Logger *slog.Logger
}

// New starts an embedded server, a planner, an aggregator and an agent
// serving handlers (task type → handler). Everything stops when the test
// ends; a service that fails fails the test.
func New(tb testing.TB, handlers map[string]agent.Handler, opts ...Options) *Harness {
	tb.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(output(tb), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	srv := natstest.Start(tb)
	cfg := streams.Config{Memory: true}
	nc, js := natstest.Ensure(tb, srv, cfg)
	cl, err := client.New(nc, cfg)
	if err != nil {
		tb.Fatalf("agenttest: %v", err)
	}
	h := &Harness{tb: tb, nc: nc, js: js, cfg: cfg, Client: cl}
	p, err := planner.New(nc, planner.Config{Streams: cfg, Logger: o.Logger})
	if err != nil {
		tb.Fatalf("agenttest: %v", err)
	}
	ag, err := aggregator.New(nc, aggregator.Config{Streams: cfg, Logger: o.Logger})
	if err != nil {
		tb.Fatalf("agenttest: %v", err)
	}
	a, err := agent.New(nc, agent.Config{ID: "agenttest", Concurrency: o.Concurrency, Streams: cfg, Logger: o.Logger})
	if err != nil {
		tb.Fatalf("agenttest: %v", err)
	}
	for typ, handler := range handlers {
		a.Handle(typ, handler)
	}
	a.Use(o.Middleware...)
	h.run("planner", p.Run)
	h.run("aggregator", ag.Run)
	h.run("agent", a.Run)
	return h
}

// output is where the services log: the test's own output.
func output(tb testing.TB) io.Writer {
	if t, ok := tb.(interface{ Output() io.Writer }); ok {
		return t.Output()
	}
	return io.Discard
}

// run runs a service until the test ends, then stops it and reports its
// error.
func (h *Harness) run(name string, fn func(context.Context) error) {
	ctx, cancel := context.WithCancel(h.tb.Context())
	var wg sync.WaitGroup
	var err error
	wg.Go(func() { err = fn(ctx) })
	h.tb.Cleanup(func() {
		cancel()
		wg.Wait()
		if err != nil {
			h.tb.Errorf("agenttest: %s: %v", name, err)
		}
	})
}

// Run submits job (a JSON document as []byte, or any value that encodes to
// one) and returns its final output.
func (h *Harness) Run(job any) *events.Output {
	h.tb.Helper()
	b, ok := job.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(job); err != nil {
			h.tb.Fatalf("agenttest: encode job: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(h.tb.Context(), Timeout)
	defer cancel()
	out, err := h.Client.Run(ctx, b, nil)
	if err != nil {
		h.tb.Fatalf("agenttest: run job: %v", err)
	}
	return out
}

// Task runs one task of type typ with input (encoded as JSON) through the
// whole pipeline, tried once, and returns the result the agent stored.
func (h *Harness) Task(typ string, input any) *events.Result {
	h.tb.Helper()
	raw, err := json.Marshal(input)
	if err != nil {
		h.tb.Fatalf("agenttest: encode input: %v", err)
	}
	out := h.Run(map[string]any{"steps": []map[string]any{{"id": "task", "type": typ, "input": json.RawMessage(raw), "retries": 0}}})
	results := h.Results(out.Workflow)
	if len(results) != 1 {
		h.tb.Fatalf("agenttest: workflow %s has %d final results, want 1", out.Workflow, len(results))
	}
	return results[0]
}

// Results returns the final results stored for a workflow, one per task, in
// the order they were stored.
func (h *Harness) Results(workflow string) []*events.Result {
	h.tb.Helper()
	ctx, cancel := context.WithTimeout(h.tb.Context(), Timeout)
	defer cancel()
	cons, err := h.js.OrderedConsumer(ctx, h.cfg.ResultsStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{h.cfg.Subjects().Results(workflow)},
	})
	if err != nil {
		h.tb.Fatalf("agenttest: %v", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		h.tb.Fatalf("agenttest: %v", err)
	}
	var out []*events.Result
	for read := uint64(0); read < info.NumPending; read++ {
		m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			h.tb.Fatalf("agenttest: read result: %v", err)
		}
		r, err := events.DecodeResult(m.Headers().Get(events.HeaderContentType), m.Data())
		if err != nil {
			h.tb.Fatalf("agenttest: %v", fmt.Errorf("stored result: %w", err))
		}
		if r.Final {
			out = append(out, r)
		}
	}
	return out
}
