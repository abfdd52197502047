package agent_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/baton-dev/baton/pkg/agent"
	"github.com/nats-io/nats.go"
)

// startAgent runs an agent with handlers on nc until stop is called or the
// test ends; a Run error fails the test. cfg's Logger defaults to silence.
func startAgent(t testing.TB, nc *nats.Conn, cfg agent.Config, handlers map[string]agent.Handler) (stop func()) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a, err := agent.New(nc, cfg)
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
	return stop
}
