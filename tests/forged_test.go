package tests

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go"
)

// TestForged_SubjectMustMatchBody plays a publisher on the same bus: a
// completed result for a task still waiting to run, published on a
// subject other than the task's, and a task whose body names another
// workflow on a lane's subject. Neither is acted on: the real task runs,
// the output holds only honest data, the forged task never runs, and the
// refusals are reported. Nor do results for tasks the plan does not have.
func TestForged_SubjectMustMatchBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	gate := make(chan struct{})
	ran := make(chan string, 8)
	e.agent("honest", 2, map[string]agent.Handler{
		"gated": agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) {
			ran <- t.Workflow + "/" + t.ID
			select {
			case <-gate:
				return "honest", nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}),
	})
	security, err := e.nc.SubscribeSync(e.cfg.Subjects().Event("_", events.EventSecurity))
	if err != nil {
		t.Fatal(err)
	}
	wf := e.submit(map[string]any{"id": "victim", "steps": []map[string]any{{"id": "g", "type": "gated"}}})
	if got := <-ran; got != wf+"/g" {
		t.Fatalf("ran %s", got)
	}

	// 1. A completed result for victim/g, on another subject.
	forged, err := events.Encode(&events.Result{Workflow: wf, Task: "g", Step: "g", Type: "gated", Status: events.StateCompleted,
		Final: true, Attempts: 1, Data: json.RawMessage(`"evil"`)})
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(e.cfg.Subjects().Result("x", "y"))
	msg.Data = forged
	if _, err := e.js.PublishMsg(e.ctl(), msg); err != nil {
		t.Fatal(err)
	}
	m, err := security.NextMsg(30 * time.Second)
	if err != nil {
		t.Fatalf("no security event for the forged result: %v", err)
	}
	if !strings.Contains(string(m.Data), "forged") {
		t.Errorf("security event %s", m.Data)
	}

	// 2. Completed results for tasks the plan does not have, each on the
	// subject its body names: they must not make up the output.
	for _, fake := range []string{"fake", "g-0", "g-1", "fake-7"} {
		body, err := events.Encode(&events.Result{Workflow: wf, Task: fake, Step: "g", Type: "gated", Status: events.StateCompleted,
			Final: true, Attempts: 1, Data: json.RawMessage(`"evil"`)})
		if err != nil {
			t.Fatal(err)
		}
		fm := nats.NewMsg(e.cfg.Subjects().Result(wf, fake))
		fm.Data = body
		if _, err := e.js.PublishMsg(e.ctl(), fm); err != nil {
			t.Fatal(err)
		}
	}

	// 3. A task naming the victim's workflow, on a lane subject of another.
	task := events.Task{Workflow: wf, ID: "g2", Step: "g", Type: "gated", Priority: 3, MaxAttempts: 1, Timeout: time.Minute}
	tm, err := e.cfg.Subjects().TaskMsg(&task)
	if err != nil {
		t.Fatal(err)
	}
	tm.Subject = e.cfg.Subjects().Task("gated", 3, "other", "g2")
	if _, err := e.js.PublishMsg(e.ctl(), tm); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the forged task to be dead-lettered", func() bool {
		return len(e.stored(e.cfg.DeadStream(), e.cfg.Subjects().DeadLetters())) == 1
	})
	dead := e.stored(e.cfg.DeadStream(), e.cfg.Subjects().DeadLetters())[0]
	if dead.Headers().Get(events.HeaderErrorKind) != events.KindForged {
		t.Errorf("dead letter kind %q", dead.Headers().Get(events.HeaderErrorKind))
	}

	close(gate)
	out := e.final(wf, 30*time.Second)
	if out.Status != events.OutcomeSuccess || string(out.Data) != `["honest"]` {
		t.Fatalf("output %s %s, want the honest result only", out.Status, out.Data)
	}
	select {
	case got := <-ran:
		t.Fatalf("the forged task ran: %s", got)
	default:
	}
	if c := out.Metadata.Tasks; c.Total != 1 || c.Completed != 1 {
		t.Fatalf("output counts %+v, want the one planned task", c)
	}
}
