package lease_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/baton-dev/baton/internal/natstest"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/lease"
)

func signed(k *lease.Key) *events.Result {
	t := &events.Task{Workflow: "wf-1", ID: "s-3", Round: 1, Gen: 2}
	k.Sign(t)
	return &events.Result{Workflow: t.Workflow, Task: t.ID, Round: t.Round, Gen: t.Gen, Lease: t.Lease, Status: events.StateCompleted}
}

func TestCheck_AcceptsItsOwnToken(t *testing.T) {
	k, _ := lease.Random()
	if err := k.Check(signed(k)); err != nil {
		t.Fatal(err)
	}
	r := &events.Result{Workflow: "w", Task: "t"}
	k.SignResult(r)
	if err := k.Check(r); err != nil {
		t.Fatal(err)
	}
}

// Every field the token binds is checked: a token is good for one task's
// round and generation only, and only under the key that made it.
func TestCheck_Refuses(t *testing.T) {
	k, _ := lease.Random()
	other, _ := lease.Random()
	for name, mutate := range map[string]func(r *events.Result){
		"no token":       func(r *events.Result) { r.Lease = "" },
		"made up token":  func(r *events.Result) { r.Lease = "AAAAAAAAAAAAAAAAAAAAAA" },
		"other key":      func(r *events.Result) { other.SignResult(r) },
		"other workflow": func(r *events.Result) { r.Workflow = "wf-2" },
		"other task":     func(r *events.Result) { r.Task = "s-4" },
		"other round":    func(r *events.Result) { r.Round = 0 },
		"other gen":      func(r *events.Result) { r.Gen = 3 },
		"shifted names":  func(r *events.Result) { r.Workflow, r.Task = "wf-1s", "-3" },
		"a megabyte":     func(r *events.Result) { r.Lease = string(bytes.Repeat([]byte("x"), 1<<20)) },
	} {
		t.Run(name, func(t *testing.T) {
			r := signed(k)
			mutate(r)
			err := k.Check(r)
			if !errors.Is(err, events.ErrForged) || !errors.Is(err, lease.ErrLease) {
				t.Fatalf("Check = %v, want a forged-lease error", err)
			}
			if len(err.Error()) > 300 {
				t.Fatalf("error of %d bytes echoes the input", len(err.Error()))
			}
		})
	}
}

func TestNewKey_RefusesShortSecret(t *testing.T) {
	if _, err := lease.NewKey([]byte("short")); err == nil {
		t.Fatal("a 5-byte key was accepted")
	}
}

// Planners and aggregators starting together each create a key if none is
// stored; the bucket keeps one, and every one of them signs with it.
func TestLoad_OneKeyForEveryone(t *testing.T) {
	srv := natstest.Start(t)
	cfg := streams.Config{Memory: true}
	_, js := natstest.Ensure(t, srv, cfg)
	keys := make([]*lease.Key, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := lease.Open(t.Context(), js, cfg.KeysBucket())
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = k
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	r := signed(keys[0])
	for i, k := range keys {
		if err := k.Check(r); err != nil {
			t.Fatalf("key %d differs: %v", i, err)
		}
	}
}

func BenchmarkToken(b *testing.B) {
	k, _ := lease.Random()
	r := signed(k)
	b.ReportAllocs()
	for b.Loop() {
		if err := k.Check(r); err != nil {
			b.Fatal(err)
		}
	}
}

// A checkpoint MAC is good for one workflow's checkpoint under one key,
// and is never a task's lease token.
func TestKey_Checkpoint(t *testing.T) {
	t.Parallel()
	k, _ := lease.Random()
	other, _ := lease.Random()
	mac := k.Checkpoint("wf-1", 2)
	if !k.CheckCheckpoint("wf-1", 2, mac) {
		t.Fatal("its own MAC refused")
	}
	for name, ok := range map[string]bool{
		"another checkpoint": k.CheckCheckpoint("wf-1", 3, mac),
		"another workflow":   k.CheckCheckpoint("wf-2", 2, mac),
		"another key":        other.CheckCheckpoint("wf-1", 2, mac),
		"empty":              k.CheckCheckpoint("wf-1", 2, ""),
		"a lease token":      k.CheckCheckpoint("wf-1", 2, k.Token("checkpoint", "wf-1", 2, 0)),
	} {
		if ok {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestAwait_UntilThePlannerCreatesIt: a reader that starts first waits for
// the key and gets the one created after it started.
func TestAwait_UntilThePlannerCreatesIt(t *testing.T) {
	srv := natstest.Start(t)
	cfg := streams.Config{Memory: true}
	_, js := natstest.Ensure(t, srv, cfg)
	got := make(chan *lease.Key, 1)
	go func() {
		k, err := lease.Await(t.Context(), js, cfg.KeysBucket())
		if err != nil {
			t.Error(err)
		}
		got <- k
	}()
	created, err := lease.Open(t.Context(), js, cfg.KeysBucket())
	if err != nil {
		t.Fatal(err)
	}
	k := <-got
	if k == nil {
		t.Fatal("no key")
	}
	if err := k.Check(signed(created)); err != nil {
		t.Fatalf("awaited key differs from the created one: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := lease.Await(ctx, js, "no-such-bucket"); err == nil {
		t.Fatal("a missing bucket gave no error")
	}
}
