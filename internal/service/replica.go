package service

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/aggregator"
	"github.com/baton-dev/baton/pkg/lead"
	"github.com/baton-dev/baton/pkg/planner"
	"github.com/baton-dev/baton/pkg/retry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Lead keys: one planner and one aggregator lead at a time.
const (
	LeadPlanner    = "planner"
	LeadAggregator = "aggregator"
)

// ReplicaID names this process among the replicas of a service: host,
// process id and a random suffix.
func ReplicaID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), nuid.Next()[16:])
}

// replicated runs term each time this replica takes the lead of key (see
// package lead). An owner (the planner) ensures the streams and buckets
// before it stands by; others wait for the leases bucket.
func replicated(ctx context.Context, nc *nats.Conn, c streams.Config, key string, owner bool, log *slog.Logger, term func(context.Context) error) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if owner {
		err = streams.EnsureWait(ctx, js, c, log)
	} else {
		err = streams.Wait(ctx, js, c, log, streams.BucketStream(c.LeasesBucket()))
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting for JetStream
		}
		return err
	}
	kv, err := js.KeyValue(ctx, c.LeasesBucket())
	if err != nil {
		return fmt.Errorf("%s: leases bucket: %w", key, err)
	}
	c = c.WithDefaults()
	// A term that fails (a request timed out while the cluster elects its
	// leaders, say) hands the lead over and stands by again after a
	// backoff: the process stays up, as an orchestrator waiting for it
	// to be ready expects, and another replica takes over meanwhile.
	id := ReplicaID()
	err = retry.Do(ctx, log, key+" term failed; standing by again", 0, func() error {
		return lead.Run(ctx, lead.Config{KV: kv, Key: key, ID: id, TTL: c.LeaseTTL, Log: log}, term)
	})
	if ctx.Err() != nil {
		return nil // stopped
	}
	return err
}

// RunPlanner runs a planner replica: it plans while it leads and stands by
// otherwise, so any number may run; a new planner takes each term over
// from the stored state.
func RunPlanner(ctx context.Context, nc *nats.Conn, cfg planner.Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger.With("service", "planner")
	return replicated(ctx, nc, cfg.Streams, LeadPlanner, true, log, func(ctx context.Context) error {
		p, err := planner.New(nc, cfg)
		if err != nil {
			return err
		}
		return p.Run(ctx)
	})
}

// RunAggregator runs an aggregator replica, as RunPlanner a planner.
func RunAggregator(ctx context.Context, nc *nats.Conn, cfg aggregator.Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger.With("service", "aggregator")
	return replicated(ctx, nc, cfg.Streams, LeadAggregator, false, log, func(ctx context.Context) error {
		a, err := aggregator.New(nc, cfg)
		if err != nil {
			return err
		}
		return a.Run(ctx)
	})
}
