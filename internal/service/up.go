package service

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/aggregator"
	"github.com/baton-dev/baton/pkg/builtin"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/monitor"
	"github.com/baton-dev/baton/pkg/planner"
	"github.com/nats-io/nats.go"
	"github.com/oklog/run"
)

// System configures baton in one process: the planner, the aggregator,
// built-in agents and the process's monitor, on one connection to a server.
type System struct {
	Streams streams.Config
	// Agents is how many built-in agents to run; each serves Types.
	Agents int
	// Concurrency is each agent's number of slots.
	Concurrency int
	// Types the built-in agents serve; default every built-in type that
	// needs no configuration, plus exec and http when Builtin configures them.
	Types []string
	// Webhook and WebhookHosts are the planner's escalation webhook and
	// the hosts a job's own webhook may name (planner.Config).
	Webhook      string
	WebhookHosts []string
	Builtin      builtin.Options
	Logger       *slog.Logger
	// AgentPrefix names the agents "<prefix>-1" …; default "agent".
	AgentPrefix string
	// Limits bound the jobs the planner accepts; the zero value means
	// events' defaults.
	Limits events.Limits

	// Set by Add.
	Monitor *monitor.Monitor
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

// Add builds every service on nc and adds each to g as an actor; the
// monitor is left in s.Monitor for the web server to share.
//
// Shutdown order: oklog/run interrupts every actor at once, so the
// planner, the aggregator and the monitor are not stopped by their
// interrupt directly: they stop once every agent has drained, so that the
// agents' last results are still planned and aggregated.
func (s *System) Add(ctx context.Context, g *run.Group, nc *nats.Conn) ([]*agent.Agent, error) {
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.AgentPrefix == "" {
		s.AgentPrefix = "agent"
	}
	after := newAfterAgents(ctx)
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
		after.addAgent(g, ctx, a.Run)
	}
	// As replicas (package lead), so that a planner or aggregator started
	// elsewhere against the same server can stand by for them.
	pc := planner.Config{Streams: s.Streams, Logger: s.Logger, Version: Version, Limits: s.Limits, Webhook: s.Webhook, WebhookHosts: s.WebhookHosts}
	if err := pc.Validate(); err != nil {
		return nil, err
	}
	after.add(g, func(ctx context.Context) error { return RunPlanner(ctx, nc, pc) })
	ac := aggregator.Config{Streams: s.Streams, Logger: s.Logger}
	if err := ac.Validate(); err != nil {
		return nil, err
	}
	after.add(g, func(ctx context.Context) error { return RunAggregator(ctx, nc, ac) })
	var err error
	if s.Monitor, err = monitor.New(nc, monitor.Config{Streams: s.Streams, Logger: s.Logger}); err != nil {
		return nil, err
	}
	after.add(g, s.Monitor.Run)
	after.add(g, func(ctx context.Context) error { return s.Monitor.Serve(ctx, Version) })
	return agents, nil
}

// afterAgents orders a shutdown: the agents stop on the group's interrupt,
// the other services once every agent's Run has returned.
type afterAgents struct {
	agents sync.WaitGroup
	core   context.Context
	stop   func()
}

func newAfterAgents(ctx context.Context) *afterAgents {
	// Not a child of ctx: whoever ends ctx ends the agents, and the agents'
	// end ends the rest.
	core, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a := &afterAgents{core: core}
	// The goroutine this starts ends with the last agent, whose interrupt
	// the group calls with everyone else's.
	a.stop = sync.OnceFunc(func() { go func() { a.agents.Wait(); cancel() }() })
	return a
}

func (a *afterAgents) addAgent(g *run.Group, ctx context.Context, fn func(context.Context) error) {
	a.agents.Add(1)
	ctx, cancel := context.WithCancel(ctx)
	g.Add(func() error { defer a.agents.Done(); return fn(ctx) }, func(error) { cancel() })
}

func (a *afterAgents) add(g *run.Group, fn func(context.Context) error) {
	g.Add(func() error { return fn(a.core) }, func(error) { a.stop() })
}
