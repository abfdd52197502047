package streams_test

import (
	"bytes"
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
)

// TestEnsure_SendsNothingWhenDefinitionsMatch runs Ensure and EnsureLane
// again on a deployment that has them: no update request reaches the
// server. (An update of the streams while tasks were in flight, sent by a
// monitor starting on demand, held a dashboard workflow up for the ack
// wait: TestDashboard_Chromium.) A changed definition is applied.
func TestEnsure_SendsNothingWhenDefinitionsMatch(t *testing.T) {
	t.Parallel()
	cfg := streams.Config{Memory: true}
	nc, js := natstest.Ensure(t, natstest.Start(t), cfg)
	ctx := t.Context()
	if _, err := streams.EnsureLane(ctx, js, cfg, "x", 1); err != nil {
		t.Fatal(err)
	}
	// The same connection carries the requests and sees them, in order.
	updates, err := nc.SubscribeSync("$JS.API.*.UPDATE.>")
	if err != nil {
		t.Fatal(err)
	}
	creates, err := nc.SubscribeSync("$JS.API.CONSUMER.CREATE.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := streams.Ensure(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := streams.EnsureLane(ctx, js, cfg, "x", 1); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := updates.Pending(); n != 0 {
		t.Errorf("%d stream updates for unchanged definitions", n)
	}
	if n, _, _ := creates.Pending(); n != 0 {
		t.Errorf("%d consumer updates for an unchanged lane", n)
	}
	// A changed definition is applied.
	changed := cfg
	changed.AckWait = 7 * time.Second
	lane, err := streams.EnsureLane(ctx, js, changed, "x", 1)
	if err != nil || lane.CachedInfo().Config.AckWait != 7*time.Second {
		t.Fatalf("lane ack wait %v, %v; want 7s", lane.CachedInfo().Config.AckWait, err)
	}
	changed.MaxAge = time.Hour
	if err := streams.Ensure(ctx, js, changed); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, changed.ResultsStream())
	if err != nil || s.CachedInfo().Config.MaxAge != time.Hour {
		t.Fatalf("results max age %v, %v; want 1h", s.CachedInfo().Config.MaxAge, err)
	}
}

// TestEnsureWait_WaitsForJetStream: against a server without JetStream,
// EnsureWait keeps trying, says so in the log, and gives up only when its
// context ends.
func TestEnsureWait_WaitsForJetStream(t *testing.T) {
	t.Parallel()
	_, js := natstest.Connect(t, natstest.StartWithoutJetStream(t))
	var out bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return out.Write(p)
	}), nil))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- streams.EnsureWait(ctx, js, streams.Config{}, log) }()
	natstest.Eventually(t, 30*time.Second, "two attempts logged", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Count(out.String(), "waiting for JetStream") >= 2
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("EnsureWait returned %v, want context.Canceled", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestBounds_FullStreamsRefuseOrDropOldest fills the streams of a small
// deployment: a full TASKS refuses the publisher with a clear error (no
// task is dropped to make room), a full EVENTS keeps its newest messages.
func TestBounds_FullStreamsRefuseOrDropOldest(t *testing.T) {
	t.Parallel()
	cfg := streams.Config{Memory: true, MaxBytes: 16 << 16} // TASKS 192 KiB, EVENTS 128 KiB
	_, js := natstest.Ensure(t, natstest.Start(t), cfg)
	ctx := t.Context()
	s := cfg.Subjects()
	body := bytes.Repeat([]byte("x"), 8<<10)
	var refused error
	stored := 0
	for i := range 64 {
		if _, err := js.Publish(ctx, s.Task("nobody", 3, "wf", fmt.Sprint("t", i)), body); err != nil {
			refused = err
			break
		}
		stored++
	}
	if refused == nil || !streams.IsFull(refused) {
		t.Fatalf("64 × 8 KiB tasks into a 192 KiB TASKS: error %v, want a full stream", refused)
	}
	if stored < 20 || stored > 24 {
		t.Fatalf("%d tasks stored before the refusal, want about 192/8", stored)
	}
	info, err := js.Stream(ctx, cfg.TasksStream())
	if err != nil {
		t.Fatal(err)
	}
	if got := info.CachedInfo().State.Msgs; got != uint64(stored) {
		t.Fatalf("TASKS holds %d, want the %d stored: none dropped", got, stored)
	}
	for i := range 64 {
		if _, err := js.Publish(ctx, s.Event("wf", "note"), append([]byte(fmt.Sprint(i, " ")), body...)); err != nil {
			t.Fatalf("event %d refused: %v; EVENTS should drop its oldest", i, err)
		}
	}
	evs, err := js.Stream(ctx, cfg.EventsStream())
	if err != nil {
		t.Fatal(err)
	}
	st := evs.CachedInfo().State
	if st.Bytes > 128<<10 || st.LastSeq != 64 || st.FirstSeq == 1 {
		t.Fatalf("EVENTS state %+v, want at most 128 KiB holding the newest", st)
	}
}
