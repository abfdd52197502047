package registry_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/registry"
	"github.com/nats-io/nats.go"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func open(t *testing.T, cfg streams.Config) (*nats.Conn, *registry.Registry) {
	t.Helper()
	nc, js := natstest.Ensure(t, natstest.Start(t), cfg)
	reg, err := registry.Open(t.Context(), js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return nc, reg
}

func TestRegistry_PutListDelete(t *testing.T) {
	t.Parallel()
	_, reg := open(t, streams.Config{Memory: true})
	ctx := t.Context()
	for _, id := range []string{"b", "a"} {
		if err := reg.Put(ctx, events.AgentInfo{ID: id, Types: []string{"x"}, Status: events.AgentIdle}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := reg.List(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "a" || list[1].ID != "b" {
		t.Fatalf("list %+v, %v; want a, b", list, err)
	}
	if err := reg.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if list, _ = reg.List(ctx); len(list) != 1 || list[0].ID != "b" {
		t.Fatalf("after delete: %+v", list)
	}
}

func TestReaper_MarksSilentAgentsOnce(t *testing.T) {
	t.Parallel()
	cfg := streams.Config{Memory: true, AgentTTL: 1500 * time.Millisecond}
	nc, reg := open(t, cfg)
	ctx := t.Context()
	warnings, err := nc.SubscribeSync(cfg.Subjects().Event("_", events.EventWarning))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Put(ctx, events.AgentInfo{ID: "silent", Status: events.AgentBusy, Tasks: []string{"wf/t"}}); err != nil {
		t.Fatal(err)
	}
	reaper := registry.NewReaper(reg, nc, cfg, quiet())
	if got := reaper.Reap(ctx); len(got) != 0 {
		t.Fatalf("a fresh entry was marked failed: %+v", got)
	}
	var failed []events.AgentInfo
	natstest.Eventually(t, 5*time.Second, "the silent agent marked failed", func() bool {
		failed = reaper.Reap(ctx)
		return len(failed) == 1
	})
	if failed[0].ID != "silent" || failed[0].Status != events.AgentFailed {
		t.Fatalf("marked %+v", failed[0])
	}
	if again := reaper.Reap(ctx); len(again) != 0 {
		t.Fatalf("marked twice: %+v", again)
	}
	list, _ := reg.List(ctx)
	if len(list) != 1 || list[0].Status != events.AgentFailed {
		t.Fatalf("registry %+v", list)
	}
	m, err := warnings.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no warning event: %v", err)
	}
	var ev events.Event
	if json.Unmarshal(m.Data, &ev) != nil || ev.Agent != "silent" {
		t.Fatalf("warning %s", m.Data)
	}
}

func TestAsker_Ask(t *testing.T) {
	t.Parallel()
	cfg := streams.Config{Memory: true}
	nc, reg := open(t, cfg)
	ctx := t.Context()
	asker := registry.NewAsker(reg, nc, cfg.Subjects(), 2*time.Second, quiet())

	start := time.Now()
	replies, err := asker.Ask(ctx, events.AgentCommand{Op: events.AgentOpRunning})
	if err != nil || len(replies) != 0 || time.Since(start) > time.Second {
		t.Fatalf("no agents: %v, %v after %v; want none at once", replies, err, time.Since(start))
	}

	// Two registered agents answer on the shared control subject.
	for _, id := range []string{"a1", "a2"} {
		if err := reg.Put(ctx, events.AgentInfo{ID: id, Status: events.AgentBusy}); err != nil {
			t.Fatal(err)
		}
		sub, err := nc.Subscribe(cfg.Subjects().AgentControl(), func(m *nats.Msg) {
			b, _ := json.Marshal(events.AgentReply{Agent: id, Running: []string{"wf/" + id}})
			_ = m.Respond(b)
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	replies, err = asker.Ask(ctx, events.AgentCommand{Op: events.AgentOpRunning})
	if err != nil || len(replies) != 2 {
		t.Fatalf("replies %+v, %v; want two", replies, err)
	}
	run := registry.Running(replies)
	if run["wf/a1"] != "a1" || run["wf/a2"] != "a2" {
		t.Fatalf("running %v", run)
	}
}
