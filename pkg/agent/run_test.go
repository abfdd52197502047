package agent_test

import (
	"testing"

	"github.com/baton-dev/baton/pkg/agent"
	"github.com/nats-io/nats.go"
)

// startAgent runs an agent with handlers on nc until stop is called or the
// test ends; a Run error fails the test. cfg's Logger defaults to silence.
func startAgent(t testing.TB, nc *nats.Conn, cfg agent.Config, handlers map[string]agent.Handler) (stop func()) {
	t.Helper()
	_, stop = agent.RunForTest(t, nc, cfg, handlers)
	return stop
}
