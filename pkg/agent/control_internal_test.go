package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
)

// TestControl_PauseHandsBackWhatHasNotStarted: a pause leaves a task whose
// handler runs, and hands back one that has not started, whether it waits
// for its permits (holding no slot) or is trying to take them (holding one
// for the try): the planner's checkpoint lists the first alone as running.
func TestControl_PauseHandsBackWhatHasNotStarted(t *testing.T) {
	t.Parallel()
	cfg := streams.Config{Memory: true}
	nc, _ := natstest.Ensure(t, natstest.Start(t), cfg)
	a, err := New(nc, Config{ID: "a", Streams: cfg})
	if err != nil {
		t.Fatal(err)
	}
	a.Handle("x", HandlerFunc(func(context.Context, *Task) (any, error) { return nil, nil }))
	svc, err := a.startService()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Stop() }()
	jobs := map[string]*job{
		"runs":   {wf: "wf", id: "runs", started: true},
		"waits":  {wf: "wf", id: "waits", waiting: true},
		"trying": {wf: "wf", id: "trying"},
		"other":  {wf: "wf2", id: "other"},
	}
	ctxs := map[string]context.Context{}
	a.mu.Lock()
	for id, j := range jobs {
		ctxs[id], j.cancel = context.WithCancel(t.Context())
		a.running[j] = struct{}{}
	}
	a.mu.Unlock()
	msg, err := nc.Request(cfg.Subjects().AgentControl(), []byte(`{"op":"pause","workflow":"wf"}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var reply events.AgentReply
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(reply.Running, reply.Stopped); got != "[wf/runs] [wf/trying wf/waits]" {
		t.Errorf("running and stopped %s, want [wf/runs] [wf/trying wf/waits]", got)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, want := range map[string]bool{"runs": false, "waits": true, "trying": true, "other": false} {
		if got := jobs[id].handback; got != want || (ctxs[id].Err() != nil) != want {
			t.Errorf("%s: handed back %v, its context ended %v; want %v", id, got, ctxs[id].Err() != nil, want)
		}
	}
}
