package service_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/aggregator"
	"github.com/baton-dev/baton/pkg/planner"
)

// TestServices_WaitForJetStream starts each service against a server whose
// JetStream is not there (a cluster still electing leaders): none dies; each
// says it is waiting, and stops cleanly when told to.
func TestServices_WaitForJetStream(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, log *slog.Logger, cfg streams.Config) func(context.Context) error
	}{
		{"planner", func(t *testing.T, log *slog.Logger, cfg streams.Config) func(context.Context) error {
			nc, _ := natstest.Connect(t, natstest.StartWithoutJetStream(t))
			p, err := planner.New(nc, planner.Config{Streams: cfg, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			return p.Run
		}},
		{"aggregator", func(t *testing.T, log *slog.Logger, cfg streams.Config) func(context.Context) error {
			nc, _ := natstest.Connect(t, natstest.StartWithoutJetStream(t))
			a, err := aggregator.New(nc, aggregator.Config{Streams: cfg, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			return a.Run
		}},
		{"agent", func(t *testing.T, log *slog.Logger, cfg streams.Config) func(context.Context) error {
			nc, _ := natstest.Connect(t, natstest.StartWithoutJetStream(t))
			a, err := agent.New(nc, agent.Config{Streams: cfg, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			a.Handle("x", agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) { return nil, nil }))
			return a.Run
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out logBuffer
			run := tc.run(t, slog.New(slog.NewTextHandler(&out, nil)), streams.Config{})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- run(ctx) }()
			natstest.Eventually(t, 30*time.Second, "the wait to be logged", func() bool { return out.count("waiting for JetStream") >= 2 })
			select {
			case err := <-done:
				t.Fatalf("%s gave up while waiting: %v", tc.name, err)
			default:
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("%s stopped with %v, want nil", tc.name, err)
			}
		})
	}
}
