package lead_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/lead"
	"github.com/nats-io/nats.go/jetstream"
)

const ttl = time.Second

// replica runs lead.Run on a connection of its own and reports each term
// it starts and ends.
type replica struct {
	id     string
	cancel context.CancelFunc
	closeC func()
	done   chan struct{} // closed when Run returns, err set
	err    error
	terms  chan string // "start" or "end, lost <lead.Lost>: <cause>"
}

func start(t *testing.T, srv *natstest.Server, cfg streams.Config, id string) *replica {
	t.Helper()
	nc, js := natstest.Connect(t, srv)
	kv, err := js.KeyValue(t.Context(), cfg.LeasesBucket())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	r := &replica{id: id, cancel: cancel, closeC: nc.Close, done: make(chan struct{}), terms: make(chan string, 16)}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() {
		defer close(r.done)
		r.err = lead.Run(ctx, lead.Config{KV: kv, Key: "planner", ID: id, TTL: ttl, Log: log}, func(ctx context.Context) error {
			r.terms <- "start"
			<-ctx.Done()
			r.terms <- fmt.Sprintf("end, lost %v: %v", lead.Lost(ctx), context.Cause(ctx))
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

func next(t *testing.T, c <-chan string, within time.Duration) (string, time.Duration) {
	t.Helper()
	began := time.Now()
	select {
	case s := <-c:
		return s, time.Since(began)
	case <-time.After(within):
		t.Fatalf("nothing within %v", within)
		return "", 0
	}
}

// One replica leads at a time; a leader that stops hands over at once, one
// that dies (its connection gone) within TTL + TTL/8, and one whose key
// another replica took learns it at its next renewal.
func TestRun_OneLeaderAndTakeovers(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	cfg := streams.Config{Memory: true, LeaseTTL: ttl}
	_, js := natstest.Ensure(t, srv, cfg)
	a := start(t, srv, cfg, "a")
	if s, _ := next(t, a.terms, 5*time.Second); s != "start" {
		t.Fatalf("a: %s", s)
	}
	b := start(t, srv, cfg, "b")
	select {
	case s := <-b.terms:
		t.Fatalf("b %s while a leads", s)
	case <-time.After(2 * ttl): // b polls 16 times meanwhile
	}

	// a stops cleanly: b takes over within a poll or two.
	a.cancel()
	if <-a.done; a.err != nil {
		t.Fatal(a.err)
	}
	if s, _ := next(t, a.terms, time.Second); !strings.HasPrefix(s, "end, lost false") {
		t.Fatalf("a stopped: %s; want its term ended, not lost", s)
	}
	s, took := next(t, b.terms, 5*time.Second)
	if s != "start" || took > ttl/2 {
		t.Fatalf("b: %s after %v; want start within %v of a's resignation", s, took, ttl/2)
	}

	// b dies: its connection goes, nothing resigns. c takes over once the
	// key expires; b's own term ends when it cannot renew.
	c := start(t, srv, cfg, "c")
	b.closeC()
	s, took = next(t, c.terms, 5*time.Second)
	if s != "start" || took > ttl+ttl/8+300*time.Millisecond {
		t.Fatalf("c: %s after %v; want start within TTL + TTL/8 (%v)", s, took, ttl+ttl/8)
	}
	if s, _ := next(t, b.terms, 5*time.Second); !strings.HasPrefix(s, "end, lost true") {
		t.Fatalf("b: %s; want its term ended as lost", s)
	}

	// Someone overwrites the key: c loses at its next renewal (fencing).
	kv, err := js.KeyValue(t.Context(), cfg.LeasesBucket())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "planner", []byte("intruder")); err != nil {
		t.Fatal(err)
	}
	s, took = next(t, c.terms, 5*time.Second)
	if !strings.HasPrefix(s, "end, lost true") || took > ttl/3+300*time.Millisecond {
		t.Fatalf("c: %s after %v; want its term ended at its next renewal", s, took)
	}
}

// Many replicas starting at once: exactly one leads.
func TestRun_ExactlyOneOfMany(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	cfg := streams.Config{Memory: true, LeaseTTL: ttl}
	natstest.Ensure(t, srv, cfg)
	var mu sync.Mutex
	leading, most := 0, 0
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(t.Context())
	for range 6 {
		_, js := natstest.Connect(t, srv)
		kv, err := js.KeyValue(ctx, cfg.LeasesBucket())
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			_ = lead.Run(ctx, lead.Config{KV: kv, Key: "aggregator", ID: "x", TTL: ttl, Log: slog.New(slog.DiscardHandler)}, func(ctx context.Context) error {
				mu.Lock()
				leading++
				most = max(most, leading)
				mu.Unlock()
				<-ctx.Done()
				mu.Lock()
				leading--
				mu.Unlock()
				return nil
			})
		})
	}
	time.Sleep(3 * ttl) // observation window, not synchronisation: terms could overlap in it
	cancel()
	wg.Wait()
	if most != 1 {
		t.Fatalf("%d replicas led at once", most)
	}
}

func TestRun_RefusesNoTTL(t *testing.T) {
	err := lead.Run(t.Context(), lead.Config{Key: "k", ID: "i", Log: slog.New(slog.DiscardHandler)}, nil)
	if err == nil || errors.Is(err, jetstream.ErrKeyExists) {
		t.Fatalf("Run without TTL: %v", err)
	}
}
