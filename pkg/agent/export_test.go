package agent

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/baton-dev/baton/internal/natstest"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// RunForTest runs an agent with handlers on nc until stop is called or
// the test ends; a Run error fails the test. cfg's Logger defaults to
// silence. The internal tests read the returned agent's state; the
// package's own tests start agents with it too (startAgent).
func RunForTest(t testing.TB, nc *nats.Conn, cfg Config, handlers map[string]Handler) (a *Agent, stop func()) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a, err := New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for typ, h := range handlers {
		a.Handle(typ, h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := a.Run(ctx); err != nil {
			t.Errorf("agent %s: %v", cfg.ID, err)
		}
	})
	stop = sync.OnceFunc(func() { cancel(); wg.Wait() })
	t.Cleanup(stop)
	return a, stop
}

// ResultsServerForTest starts a server with baton's streams (in memory)
// and subscribes to every result.
func ResultsServerForTest(t *testing.T) (*nats.Conn, jetstream.JetStream, streams.Config, *nats.Subscription) {
	t.Helper()
	cfg := streams.Config{Memory: true}
	nc, js := natstest.Ensure(t, natstest.Start(t), cfg)
	results, err := nc.SubscribeSync(cfg.Subjects().Results())
	if err != nil {
		t.Fatal(err)
	}
	return nc, js, cfg, results
}
