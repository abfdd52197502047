package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go"
)

// Reaper marks agents whose heartbeat stopped as failed and says so with a
// warning event. Any number may run (each planner process runs one): the
// mark is a conditional update, so a heartbeat written meanwhile wins and
// an agent is reported once.
type Reaper struct {
	reg  *Registry
	nc   *nats.Conn
	subj events.Subjects
	ttl  time.Duration
	log  *slog.Logger
}

// NewReaper returns a reaper over reg for the deployment c describes; it
// publishes its warnings on nc.
func NewReaper(reg *Registry, nc *nats.Conn, c streams.Config, log *slog.Logger) *Reaper {
	c = c.WithDefaults()
	return &Reaper{reg: reg, nc: nc, subj: c.Subjects(), ttl: c.AgentTTL, log: log.With("service", "registry")}
}

// Run checks the registry six times per agent TTL until ctx ends; it
// returns nil then.
func (r *Reaper) Run(ctx context.Context) error {
	t := time.NewTicker(r.ttl / 6)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.Reap(ctx)
		}
	}
}

// Reap marks failed every agent whose entry was last written more than two
// thirds of the TTL ago (two missed heartbeats), and returns them. Age is
// judged by the server's time of the write, not by the agent's clock.
func (r *Reaper) Reap(ctx context.Context) []events.AgentInfo {
	lister, err := r.reg.kv.ListKeys(ctx)
	if err != nil {
		r.log.Warn("check agents", "err", err)
		return nil
	}
	limit := 2 * r.ttl / 3
	var failed []events.AgentInfo
	for k := range lister.Keys() {
		e, err := r.reg.kv.Get(ctx, k)
		if err != nil || time.Since(e.Created()) < limit {
			continue
		}
		var a events.AgentInfo
		if json.Unmarshal(e.Value(), &a) != nil || a.Status == events.AgentFailed {
			continue
		}
		a.Status = events.AgentFailed
		b, _ := json.Marshal(a)
		if _, err := r.reg.kv.Update(ctx, k, b, e.Revision()); err != nil {
			continue // a heartbeat came meanwhile, or another reaper was first
		}
		failed = append(failed, a)
		r.log.Warn("agent failed: no heartbeat", "agent", a.ID, "last", e.Created(), "running", a.Tasks)
		if err := r.subj.PublishEvent(r.nc, events.Event{Workflow: "_", Kind: events.EventWarning, Agent: a.ID,
			Message: fmt.Sprintf("agent %s stopped heartbeating at %s; its %d tasks go to other agents after the ack wait",
				a.ID, e.Created().Format(time.RFC3339), len(a.Tasks))}); err != nil {
			r.log.Warn("publish event", "err", err)
		}
	}
	return failed
}
