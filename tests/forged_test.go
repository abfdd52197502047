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

// TestForged_VictimOutputIsTheHonestOne plays every result and task forgery
// a publisher on the bus can try against a workflow in flight: one task of
// it running, two queued. Each attack is a message the planner, the
// aggregator or the agent must refuse; at the end the victim's output is
// exactly the honest one, no forged task ran, and every forged task
// message is kept as a dead letter.
func TestForged_VictimOutputIsTheHonestOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	gate := make(chan struct{})
	ran := make(chan string, 64)
	e.agent("honest", 1, map[string]agent.Handler{
		"gated": agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) {
			ran <- t.Workflow + "/" + t.ID + " " + string(t.Input)
			select {
			case <-gate:
				return "honest", nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}),
		"quick": agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) { return "donor", nil }),
	})
	subj := e.cfg.Subjects()

	// A finished workflow whose stored results carry genuine tokens, for
	// the same task ids as the victim's: an attacker who can read RESULTS
	// has those.
	donor := e.submit(map[string]any{"steps": []map[string]any{{"id": "a", "type": "quick"}, {"id": "b", "type": "quick"}}})
	if out := e.final(donor, 30*time.Second); out.Status != events.OutcomeSuccess {
		t.Fatalf("donor %s", out.Status)
	}
	_, donorResults := e.results(donor)
	stolen := donorResults[0].Lease
	if stolen == "" {
		t.Fatal("the donor's results carry no lease token")
	}

	wf := e.submit(map[string]any{"id": "victim", "steps": []map[string]any{
		{"id": "a", "type": "gated", "input": "a"}, {"id": "b", "type": "gated", "input": "b"}, {"id": "c", "type": "gated", "input": "c"}}})
	first := <-ran // one runs; concurrency 1 keeps the other two queued
	honestRan := map[string]bool{strings.Fields(first)[0]: true}

	publish := func(m *nats.Msg) {
		t.Helper()
		if _, err := e.js.PublishMsg(e.ctl(), m); err != nil {
			t.Fatal(err)
		}
	}
	result := func(task, status, token string, on string) {
		t.Helper()
		body, err := events.Encode(&events.Result{Workflow: wf, Task: task, Step: task, Type: "gated", Status: status,
			Final: true, Attempts: 1, Data: json.RawMessage(`"evil"`), Lease: token})
		if err != nil {
			t.Fatal(err)
		}
		if on == "" {
			on = subj.Result(wf, task)
		}
		m := nats.NewMsg(on)
		m.Data = body
		publish(m)
	}
	task := func(body events.Task, on string, forgeID bool) {
		t.Helper()
		m, err := subj.TaskMsg(&body)
		if err != nil {
			t.Fatal(err)
		}
		if on != "" {
			m.Subject = on
		}
		if !forgeID {
			m.Header.Set(events.HeaderMsgID, "forged-"+body.ID+"-"+on)
		}
		publish(m)
	}
	evil := events.Task{Workflow: wf, Step: "b", Type: "gated", Priority: events.PriorityDefault, MaxAttempts: 1,
		Timeout: time.Minute, Input: json.RawMessage(`"evil"`)}
	attacks := []struct {
		name string
		do   func()
	}{
		{"completed result, no token", func() { result("b", events.StateCompleted, "", "") }},
		{"failed result, no token", func() { result("c", events.StateFailed, "", "") }},
		{"cancelled result, made-up token", func() { result("a", events.StateCancelled, "AAAAAAAAAAAAAAAAAAAAAA", "") }},
		{"completed result, another workflow's token", func() { result("b", events.StateCompleted, stolen, "") }},
		{"result on a subject that is not its body's", func() { result("c", events.StateCompleted, "", subj.Result("x", "y")) }},
		{"results for tasks not in the plan", func() {
			for _, fake := range []string{"fake", "a-0", "b-1"} {
				result(fake, events.StateCompleted, "", "")
			}
		}},
		{"JSON result, no token", func() {
			m := nats.NewMsg(subj.Result(wf, "b"))
			m.Header.Set(events.HeaderContentType, events.ContentJSON)
			m.Data = []byte(`{"workflow":"` + wf + `","task":"b","step":"b","type":"gated","status":"completed","final":true,"attempts":1,"data":"evil"}`)
			publish(m)
		}},
		{"undecodable result", func() {
			m := nats.NewMsg(subj.Result(wf, "c"))
			m.Data = []byte{0xc1, 0xff, 0x00}
			publish(m)
		}},
		{"task on another workflow's subject", func() {
			b := evil
			b.ID = "b"
			task(b, subj.Task("gated", b.Priority, "other", "b"), false)
		}},
		{"task on another type's lane", func() {
			b := evil
			b.ID, b.Type = "b", "quick"
			task(b, subj.Task("gated", b.Priority, wf, "b"), false)
		}},
		{"undecodable task naming the victim in its headers", func() {
			m := nats.NewMsg(subj.Task("gated", events.PriorityDefault, wf, "c"))
			m.Header.Set(events.HeaderWorkflow, wf)
			m.Header.Set(events.HeaderTask, "c")
			m.Data = []byte("not msgpack")
			publish(m)
		}},
		{"task on its own subject, no token, its own message id", func() {
			b := evil
			b.ID = "b"
			task(b, "", true)
		}},
		{"task on its own subject, no token, a new message id", func() {
			b := evil
			b.ID = "b"
			task(b, "", false)
		}},
		{"task cancel sent to agents without a workflow", func() {
			body, _ := json.Marshal(events.AgentCommand{Op: "cancel", Tasks: []string{"a", "b", "c"}})
			if _, err := e.nc.Request(subj.AgentControl(), body, 5*time.Second); err != nil {
				t.Logf("agent control: %v", err)
			}
		}},
	}
	for _, a := range attacks {
		a.do()
	}

	// The task forged on its own subject, with its own body, is run (an
	// agent cannot tell it from the planner's: that is what roles are for)
	// but its result is refused, and the real b still runs.
	close(gate)
	out := e.final(wf, 60*time.Second)
	if out.Status != events.OutcomeSuccess || string(out.Data) != `["honest","honest","honest"]` {
		t.Fatalf("output %s %s, want three honest results", out.Status, out.Data)
	}
	if c := out.Metadata.Tasks; c.Total != 3 || c.Completed != 3 || c.Failed != 0 || c.Cancelled != 0 {
		t.Fatalf("output counts %+v, want the 3 planned tasks completed", c)
	}
	evilRan := false
	for len(ran) > 0 {
		got := <-ran
		id, input, _ := strings.Cut(got, " ")
		if input == `"evil"` {
			evilRan = true // the forgery on its own subject: ran, refused
			continue
		}
		honestRan[id] = true
	}
	if !evilRan {
		t.Log("the forged copy of b had not run by the output (it is refused either way)")
	}
	if len(honestRan) != 3 {
		t.Fatalf("honest runs %v, want a, b and c", honestRan)
	}
	// The agent takes the forged messages as slots free up, possibly
	// after the output.
	waitFor(t, 30*time.Second, "the 3 forged task messages to be dead-lettered", func() bool {
		return len(e.stored(e.cfg.DeadStream(), subj.DeadLetters())) >= 3
	})
	if dead := e.stored(e.cfg.DeadStream(), subj.DeadLetters()); len(dead) != 3 {
		t.Fatalf("%d dead letters, want the 3 forged task messages", len(dead))
	}
	t.Logf("%d attack kinds tried; output %s", len(attacks), out.Data)
}
