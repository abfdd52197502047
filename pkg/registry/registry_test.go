package registry_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/registry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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

// TestView_FollowsTheRegistry: a view lists what Registry.List lists,
// from memory: puts, the reaper's failed marks and deletes as they happen,
// and not an entry older than the TTL (which the server drops without a
// delete a watch would see). Forged entries are left out, as List does.
func TestView_FollowsTheRegistry(t *testing.T) {
	t.Parallel()
	nc, reg := open(t, streams.Config{Memory: true})
	ctx, cancel := context.WithCancel(t.Context())
	const ttl = 2 * time.Second
	v := registry.NewView(reg, ttl)
	if _, ok := v.List(); ok {
		t.Fatal("a view that has read nothing says it is synced")
	}
	if err := reg.Put(ctx, events.AgentInfo{ID: "a", Types: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { v.Run(ctx) })
	defer wg.Wait()
	defer cancel()
	ids := func() string {
		list, ok := v.List()
		if !ok {
			return "not synced"
		}
		var s []string
		for _, a := range list {
			s = append(s, a.ID+":"+a.Status)
		}
		return strings.Join(s, " ")
	}
	wait := func(want string) {
		t.Helper()
		natstest.Eventually(t, 10*time.Second, "the view to list "+want, func() bool { return ids() == want })
	}
	wait("a:") // stored before the view started
	if err := reg.Put(ctx, events.AgentInfo{ID: "b", Types: []string{"y"}, Status: events.AgentIdle}); err != nil {
		t.Fatal(err)
	}
	// Not an agent record, or one under another agent's key: left out.
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(ctx, streams.Config{}.WithDefaults().AgentsBucket())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "c", []byte(`{"id":"a","types":["z"]}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "d", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	wait("a: b:idle")
	if err := reg.Put(ctx, events.AgentInfo{ID: "b", Types: []string{"y"}, Status: events.AgentFailed}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	wait("b:failed")
	list, err := reg.List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != "b" {
		t.Fatalf("Registry.List %+v, %v: the view should agree with it", list, err)
	}
	// b's entry, written once more, is still in the bucket (its TTL there is
	// longer); the view drops it ttl after that write.
	wait("")
}
