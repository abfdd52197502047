package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/planner"
	"github.com/baton-dev/baton/pkg/registry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
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

// PlannerReady returns a readiness check that holds once some planner
// replica leads and its control service answers for this deployment: a
// submit sent now is taken. A replica that takes the lead first replays
// the unfinished workflows and only then takes requests, so the lease
// alone (LeaderReady) says ready too early.
//
// It asks the planner services for their endpoints (`nats micro info
// baton`) and looks for this deployment's submit subject among them:
// deployments with other prefixes on the same NATS answer the same
// question.
func PlannerReady(nc *nats.Conn, c streams.Config) func(context.Context) error {
	leads := LeaderReady(nc, c, LeadPlanner)
	submit := c.Subjects().Control(events.VerbSubmit)
	return func(ctx context.Context) error {
		if err := leads(ctx); err != nil {
			return err
		}
		return answers(ctx, nc, submit)
	}
}

// infoWait bounds how long PlannerReady waits for a planner service to
// describe itself; a serving one answers in milliseconds.
const infoWait = time.Second

// maxInfo bounds the size of an info answer PlannerReady reads; a larger
// one is not a planner's (anything may answer, and every baton service
// does), and is skipped unread.
const maxInfo = 64 << 10

// answers says whether a planner service with an endpoint on submit
// answers its service's info request.
func answers(ctx context.Context, nc *nats.Conn, submit string) error {
	ctx, cancel := context.WithTimeout(ctx, infoWait)
	defer cancel()
	ask, _ := micro.ControlSubject(micro.InfoVerb, planner.ServiceName, "")
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("planner: asking whether it takes requests: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(ask, inbox, nil); err != nil {
		return fmt.Errorf("planner: asking whether it takes requests: %w", err)
	}
	// Bounded by the wait alone: a count would let junk answers crowd the
	// planner's out.
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			break
		}
		var info micro.Info
		if len(m.Data) > maxInfo || json.Unmarshal(m.Data, &info) != nil {
			continue
		}
		for _, e := range info.Endpoints {
			if e.Subject == submit {
				return nil
			}
		}
	}
	if err := nc.LastError(); errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), ask) {
		return fmt.Errorf("cannot ask whether a planner takes requests: %w (permissions from an older `baton auth`? run it again)", err)
	}
	return fmt.Errorf("a planner leads but does not take requests yet (it replays the unfinished workflows first): no planner service answers for %s", submit)
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
