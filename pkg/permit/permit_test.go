package permit_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/permit"
	"github.com/nats-io/nats.go/jetstream"
)

func open(t *testing.T, c streams.Config) (*permit.Gate, jetstream.JetStream) {
	t.Helper()
	_, js := natstest.Ensure(t, natstest.Start(t), c)
	g, err := permit.Open(t.Context(), js, c, "agent-1", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { g.Watch(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return g, js
}

func task(key string, limit int) *events.Task {
	return &events.Task{Workflow: "wf", ID: "t", Type: "x", Priority: 3, MaxAttempts: 1, Key: key, Limit: limit}
}

func TestGate_SemaphoreHoldsItsLimit(t *testing.T) {
	t.Parallel()
	g, _ := open(t, streams.Config{Memory: true})
	ctx := t.Context()
	var held []*permit.Held
	for i := range 2 {
		h, _, err := g.Try(ctx, task("db", 2), "wf/t")
		if err != nil || h == nil {
			t.Fatalf("permit %d: %v, %v", i, h, err)
		}
		held = append(held, h)
	}
	h, retry, err := g.Try(ctx, task("db", 2), "wf/t")
	if err != nil || h != nil || retry <= 0 {
		t.Fatalf("third permit of a limit of 2: %v, %v, %v", h, retry, err)
	}
	if other, _, err := g.Try(ctx, task("other-db", 1), "wf/t"); err != nil || other == nil {
		t.Fatalf("another key is not full: %v, %v", other, err)
	} else {
		other.Release(ctx)
	}
	freed := g.Freed(task("db", 2))
	held[0].Release(ctx)
	held[0].Release(ctx) // twice is safe
	select {
	case <-freed:
	default:
		t.Error("a release did not wake the waiters")
	}
	h, _, err = g.Try(ctx, task("db", 2), "wf/t")
	if err != nil || h == nil {
		t.Fatalf("after a release: %v, %v", h, err)
	}
	h.Release(ctx)
	held[1].Release(ctx)
}

// TestGate_DeadHolderAgesOut: a permit nobody renews (its holder died, or
// someone wrote it by hand) comes back within the bucket's TTL.
func TestGate_DeadHolderAgesOut(t *testing.T) {
	t.Parallel()
	c := streams.Config{Memory: true, PermitTTL: time.Second}
	g, js := open(t, c)
	kv, err := js.KeyValue(t.Context(), c.PermitsBucket())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(t.Context(), "k.lock.0", []byte(`{"holder":"ghost"}`)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if h, _, err := g.Try(t.Context(), task("lock", 1), "wf/t"); h != nil || err != nil {
		t.Fatalf("a held lock was granted: %v, %v", h, err)
	}
	var h *permit.Held
	natstest.Eventually(t, 5*time.Second, "the dead holder's lock to come back", func() bool {
		h, _, err = g.Try(t.Context(), task("lock", 1), "wf/t")
		return h != nil
	})
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("came back after %v, want within the 1s TTL and the server's expiry pass", took)
	}
	h.Release(t.Context())
}

// TestGate_RenewsAndLearnsLoss: a held permit outlives the TTL while it is
// renewed; one changed by someone else is reported lost.
func TestGate_RenewsAndLearnsLoss(t *testing.T) {
	t.Parallel()
	c := streams.Config{Memory: true, PermitTTL: time.Second}
	g, js := open(t, c)
	h, _, err := g.Try(t.Context(), task("lock", 1), "wf/t")
	if err != nil || h == nil {
		t.Fatal(h, err)
	}
	deadline := time.Now().Add(2500 * time.Millisecond)
	natstest.Eventually(t, 5*time.Second, "2.5 TTLs to pass", func() bool { return time.Now().After(deadline) })
	if other, _, _ := g.Try(t.Context(), task("lock", 1), "wf/u"); other != nil {
		t.Fatal("a renewed lock was granted twice")
	}
	kv, _ := js.KeyValue(t.Context(), c.PermitsBucket())
	if _, err := kv.Put(t.Context(), "k.lock.0", []byte("stolen")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Lost():
	case <-time.After(3 * time.Second):
		t.Fatal("a permit someone else overwrote is not reported lost")
	}
	h.Release(t.Context())
	if e, err := kv.Get(t.Context(), "k.lock.0"); err != nil || string(e.Value()) != "stolen" {
		t.Errorf("release deleted a permit that was no longer its own: %v, %v", e, err)
	}
}

func TestGate_RateSpacesStarts(t *testing.T) {
	t.Parallel()
	g, _ := open(t, streams.Config{Memory: true})
	rated := &events.Task{Workflow: "wf", ID: "t", Type: "x", Priority: 3, MaxAttempts: 1, Rate: "20/s"}
	if !g.Needs(rated) {
		t.Fatal("a rated task needs no gate")
	}
	var starts []time.Time
	for len(starts) < 10 {
		h, retry, err := g.Try(t.Context(), rated, "wf/t")
		if err != nil {
			t.Fatal(err)
		}
		if h == nil {
			t.Fatalf("reservation %d refused (retry in %v): 10 at 20/s are within a second", len(starts), retry)
		}
		if err := h.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		starts = append(starts, time.Now())
		h.Release(t.Context())
	}
	if took := starts[9].Sub(starts[0]); took < 400*time.Millisecond || took > 900*time.Millisecond {
		t.Errorf("10 starts at 20/s took %v, want about 450ms", took)
	}
	// Far more than MaxReserve ahead: nothing reserved, a time to retry.
	slow := &events.Task{Workflow: "wf", ID: "t", Type: "y", Priority: 3, MaxAttempts: 1, Rate: "1/m"}
	if h, _, _ := g.Try(t.Context(), slow, "wf/t"); h == nil {
		t.Fatal("the first of 1/m refused")
	}
	if h, retry, err := g.Try(t.Context(), slow, "wf/t"); h != nil || err != nil || retry < 50*time.Second {
		t.Fatalf("the second of 1/m: %v, retry in %v, %v; want nothing and about a minute", h, retry, err)
	}
}

func TestTypeLimit_SetGetListClear(t *testing.T) {
	t.Parallel()
	c := streams.Config{Memory: true}
	g, js := open(t, c)
	ctx := t.Context()
	plain := &events.Task{Workflow: "wf", ID: "t", Type: "x", Priority: 3, MaxAttempts: 1}
	if g.Needs(plain) {
		t.Fatal("a plain task needs the gate")
	}
	if _, err := permit.TypeLimit(ctx, js, c, "x"); !errors.Is(err, permit.ErrNoLimit) {
		t.Fatalf("no limit yet: %v", err)
	}
	for _, bad := range []struct {
		typ string
		n   int
	}{{"x", 0}, {"x", permit.MaxTypeLimit + 1}, {"a.b", 1}, {"", 1}} {
		if err := permit.SetTypeLimit(ctx, js, c, bad.typ, bad.n); !errors.Is(err, permit.ErrBadLimit) {
			t.Errorf("set %q %d: %v, want ErrBadLimit", bad.typ, bad.n, err)
		}
	}
	if err := permit.SetTypeLimit(ctx, js, c, "x", 1); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 5*time.Second, "the gate to see the cap", func() bool { return g.Cap("x") == 1 })
	h, _, err := g.Try(ctx, plain, "wf/t")
	if err != nil || h == nil {
		t.Fatal(h, err)
	}
	if h2, _, _ := g.Try(ctx, plain, "wf/u"); h2 != nil {
		t.Fatal("a cap of 1 granted twice")
	}
	h.Release(ctx)
	if n, err := permit.TypeLimit(ctx, js, c, "x"); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	if all, err := permit.TypeLimits(ctx, js, c); err != nil || len(all) != 1 || all["x"] != 1 {
		t.Fatal(all, err)
	}
	if err := permit.ClearTypeLimit(ctx, js, c, "x"); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 5*time.Second, "the gate to see the cap gone", func() bool { return !g.Needs(plain) })
	if err := permit.ClearTypeLimit(ctx, js, c, "x"); !errors.Is(err, permit.ErrNoLimit) {
		t.Errorf("clear twice: %v", err)
	}
}

// TestGate_HostileWrites: what someone with write access to the buckets
// can do is bounded — a rate pushed far ahead costs at most a burst's
// worth of waiting, an oversized value is refused, a cap that is not a
// number is ignored.
func TestGate_HostileWrites(t *testing.T) {
	t.Parallel()
	c := streams.Config{Memory: true}
	g, js := open(t, c)
	ctx := t.Context()
	rates, _ := js.KeyValue(ctx, c.RatesBucket())
	far := time.Now().Add(100 * 365 * 24 * time.Hour).UnixNano()
	if _, err := rates.Put(ctx, "t.x", []byte(strconv.FormatInt(far, 10))); err != nil {
		t.Fatal(err)
	}
	rated := &events.Task{Workflow: "wf", ID: "t", Type: "x", Priority: 3, MaxAttempts: 1, Rate: "10/s"}
	start := time.Now()
	var h *permit.Held
	var err error
	natstest.Eventually(t, 5*time.Second, "a rate pushed a century ahead to grant", func() bool {
		h, _, err = g.Try(ctx, rated, "wf/t")
		return h != nil || err != nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited > permit.MaxReserve+500*time.Millisecond {
		t.Errorf("waited %v, want about %v", waited, permit.MaxReserve)
	}
	if _, err := rates.Put(ctx, "t.x", []byte("not a number")); err != nil {
		t.Fatal(err)
	}
	if h, _, err := g.Try(ctx, rated, "wf/t"); h == nil || err != nil {
		t.Fatalf("a rate whose state is garbage: %v, %v", h, err)
	}

	permits, _ := js.KeyValue(ctx, c.PermitsBucket())
	if _, err := permits.Put(ctx, "k.db.0", make([]byte, 1<<20)); err == nil {
		t.Error("a megabyte permit was stored")
	}
	limits, _ := js.KeyValue(ctx, c.LimitsBucket())
	if _, err := limits.Put(ctx, "type.x", []byte("-5")); err != nil {
		t.Fatal(err)
	}
	if _, err := permit.TypeLimit(ctx, js, c, "x"); !errors.Is(err, permit.ErrBadLimit) {
		t.Errorf("a cap of -5: %v, want ErrBadLimit", err)
	}
	plain := &events.Task{Workflow: "wf", ID: "t", Type: "x", Priority: 3, MaxAttempts: 1}
	natstest.Eventually(t, 5*time.Second, "the watch to see the bad cap", func() bool {
		_, err := limits.Get(ctx, "type.x")
		return err == nil
	})
	if g.Needs(plain) {
		t.Error("a cap of -5 gates the type")
	}
}
