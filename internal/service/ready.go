package service

import (
	"context"
	"fmt"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/registry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Readiness checks for web.Config.Ready, behind each service's /readyz: a
// deployment whose every service is ready takes jobs and runs them.

// LeaderReady returns a readiness check (web.Config.Ready) that holds once
// some replica, this one or another, leads key: the deployment's planner
// (or aggregator) is at work.
func LeaderReady(nc *nats.Conn, c streams.Config, key string) func(context.Context) error {
	return func(ctx context.Context) error {
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		kv, err := js.KeyValue(ctx, c.LeasesBucket())
		if err != nil {
			return fmt.Errorf("no %s leads yet: leases bucket: %w", key, err)
		}
		if _, err := kv.Get(ctx, key); err != nil {
			return fmt.Errorf("no %s leads yet: %w", key, err)
		}
		return nil
	}
}

// AgentReady returns a readiness check that holds once the agent id has a
// live registry entry: it opened its lanes and runs tasks.
func AgentReady(nc *nats.Conn, c streams.Config, id string) func(context.Context) error {
	return func(ctx context.Context) error {
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		kv, err := js.KeyValue(ctx, c.AgentsBucket())
		if err != nil {
			return fmt.Errorf("agent %s not registered yet: %w", id, err)
		}
		e, err := kv.Get(ctx, id)
		if err != nil {
			return fmt.Errorf("agent %s not registered yet: %w", id, err)
		}
		if a, ok := registry.Decode(id, e.Value()); !ok || a.Status == events.AgentFailed || a.Status == events.AgentDraining {
			return fmt.Errorf("agent %s is %s", id, events.Clip(a.Status, events.MaxEcho))
		}
		return nil
	}
}
