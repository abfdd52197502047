package service

import (
	"context"
	"fmt"
	"log/slog"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/aggregator"
	"github.com/baton-dev/baton/pkg/builtin"
	"github.com/baton-dev/baton/pkg/planner"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/oklog/run"
)

// System configures baton in one process: the planner, the aggregator and
// built-in agents, on one connection to a server.
type System struct {
	Streams streams.Config
	// Agents is how many built-in agents to run; each serves Types.
	Agents int
	// Concurrency is each agent's number of slots.
	Concurrency int
	// Types the built-in agents serve; default every built-in type that
	// needs no configuration, plus exec and http when Builtin configures them.
	Types   []string
	Builtin builtin.Options
	Logger  *slog.Logger
	// AgentPrefix names the agents "<prefix>-1" …; default "agent".
	AgentPrefix string
}

// DefaultTypes are the built-in types an agent serves unless told otherwise.
func (s *System) DefaultTypes() []string {
	if len(s.Types) > 0 {
		return s.Types
	}
	types := []string{"research", "write", "data", "sleep", "noop"}
	if len(s.Builtin.Exec) > 0 {
		types = append(types, "exec")
	}
	if s.Builtin.URL != "" {
		types = append(types, "http")
	}
	return types
}

// Add builds every service on nc and adds each to g as an actor. The agents
// are added first so that, on a stop, they drain while the planner and
// aggregator are still there to take their last results (each service stops
// on its own context; none waits for another).
func (s *System) Add(ctx context.Context, g *run.Group, nc *nats.Conn) ([]*agent.Agent, error) {
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.AgentPrefix == "" {
		s.AgentPrefix = "agent"
	}
	var agents []*agent.Agent
	for i := 1; i <= s.Agents; i++ {
		a, err := agent.New(nc, agent.Config{
			ID: fmt.Sprintf("%s-%d", s.AgentPrefix, i), Concurrency: s.Concurrency,
			Streams: s.Streams, Version: Version, Logger: s.Logger,
		})
		if err != nil {
			return nil, err
		}
		if err := builtin.Register(a, s.DefaultTypes(), s.Builtin); err != nil {
			return nil, err
		}
		agents = append(agents, a)
		AddContext(g, ctx, a.Run)
	}
	p, err := planner.New(nc, planner.Config{Streams: s.Streams, Logger: s.Logger, Version: Version})
	if err != nil {
		return nil, err
	}
	AddContext(g, ctx, p.Run)
	ag, err := aggregator.New(nc, aggregator.Config{Streams: s.Streams, Logger: s.Logger})
	if err != nil {
		return nil, err
	}
	AddContext(g, ctx, ag.Run)
	return agents, nil
}

// Embedded is a running embedded server with an in-process connection.
type Embedded struct {
	Server *server.Server
	Conn   *nats.Conn
}

// StartEmbedded starts the embedded nats-server and connects to it in
// process. Close shuts both down; the server outlives the run group on
// purpose, so that services can drain against it.
func StartEmbedded(c streams.ServerConfig) (*Embedded, error) {
	ns, err := streams.StartServer(c)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.Name("baton-up"), nats.MaxReconnects(-1))
	if err != nil {
		ns.Shutdown()
		return nil, fmt.Errorf("connect in process: %w", err)
	}
	return &Embedded{Server: ns, Conn: nc}, nil
}

// Close flushes and closes the connection and shuts the server down.
func (e *Embedded) Close() {
	_ = e.Conn.Flush()
	e.Conn.Close()
	e.Server.Shutdown()
	e.Server.WaitForShutdown()
}
