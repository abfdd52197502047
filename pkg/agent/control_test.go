package agent_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go/micro"
)

// TestAgent_RefusesCommandsWithoutAWorkflow: a cancel, pause or resume that
// names no workflow (anyone can publish one) is refused and stops nothing;
// the same cancel naming the workflow stops the task.
func TestAgent_RefusesCommandsWithoutAWorkflow(t *testing.T) {
	t.Parallel()
	cfg := streams.Config{Memory: true}
	nc, js := natstest.Ensure(t, natstest.Start(t), cfg)
	started, stopped := make(chan struct{}), make(chan struct{})
	startAgent(t, nc, agent.Config{ID: "a", Streams: cfg}, map[string]agent.Handler{
		"x": agent.HandlerFunc(func(ctx context.Context, _ *agent.Task) (any, error) {
			close(started)
			<-ctx.Done()
			close(stopped)
			return nil, ctx.Err()
		}),
	})
	msg, err := cfg.Subjects().TaskMsg(&events.Task{Workflow: "wf", ID: "s-0", Step: "s", Type: "x", Priority: 3, MaxAttempts: 1, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the task did not start")
	}
	ask := func(cmd events.AgentCommand) (code string, reply events.AgentReply) {
		t.Helper()
		b, _ := json.Marshal(cmd)
		m, err := nc.Request(cfg.Subjects().AgentControl(), b, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal(m.Data, &reply)
		return m.Header.Get(micro.ErrorCodeHeader), reply
	}
	for _, cmd := range []events.AgentCommand{
		{Op: events.AgentOpCancel, Tasks: []string{"s-0"}},
		{Op: events.AgentOpPause, Now: true},
		{Op: events.AgentOpResume},
		{Op: "explode", Workflow: "wf"},
	} {
		if code, _ := ask(cmd); code != "400" {
			t.Errorf("%+v: code %q, want 400", cmd, code)
		}
	}
	// The agent still runs the task, and has not marked it stopped.
	if code, reply := ask(events.AgentCommand{Op: events.AgentOpRunning, Workflow: "wf"}); code != "" ||
		len(reply.Running) != 1 || reply.Running[0] != "wf/s-0" || len(reply.Stopped) != 0 {
		t.Fatalf("after the refused commands: code %q, reply %+v", code, reply)
	}
	if code, reply := ask(events.AgentCommand{Op: events.AgentOpCancel, Workflow: "wf", Tasks: []string{"s-0"}}); code != "" || len(reply.Stopped) != 1 {
		t.Fatalf("cancel naming the workflow: code %q, reply %+v", code, reply)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the task was not stopped")
	}
}
