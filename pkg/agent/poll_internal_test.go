package agent

import (
	"errors"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go/jetstream"
)

// pollLanes are lanes of type x at priorities 1 to n, as the agent opens
// them.
func pollLanes(n int) []*lane {
	lanes := make([]*lane, n)
	for i := range lanes {
		lanes[i] = &lane{typ: "x", prio: i + 1, tok: events.LaneToken(i+1, nil)}
	}
	return lanes
}

// TestPolls_SlowDownWhileIdle: polls that find nothing double the period up
// to its most; anything happening brings it back to the base at once.
func TestPolls_SlowDownWhileIdle(t *testing.T) {
	t.Parallel()
	base, most := 250*time.Millisecond, 2*time.Second
	now := time.Unix(1000, 0)
	p := newPolls(base, most, now)
	lanes := pollLanes(3)
	var gaps []time.Duration
	for range 6 {
		wait := p.next(lanes, now)
		gaps = append(gaps, wait)
		now = now.Add(wait)
		p.fire(lanes, now)
		for _, l := range lanes {
			if !l.maybe.Load() {
				t.Fatalf("after the poll at %v, lane %d not marked", now, l.prio)
			}
			l.maybe.Store(false) // its fetch found nothing
		}
	}
	want := []time.Duration{base, 2 * base, 4 * base, most, most, most}
	for i := range want {
		if gaps[i] != want[i] {
			t.Fatalf("idle poll periods %v, want %v", gaps, want)
		}
	}
	// A task or a wake-up: the next poll is a base period away at most.
	p.active(now.Add(100 * time.Millisecond))
	if got := p.next(lanes, now); got != 100*time.Millisecond+base {
		t.Errorf("after activity, next poll in %v, want %v", got, 100*time.Millisecond+base)
	}
}

// TestPolls_ActivityPutsThePollOff: while tasks keep coming, the poll
// waits a base period after the last of them (a busy agent asks no idle
// lane), and polls resume at the base period once they stop.
func TestPolls_ActivityPutsThePollOff(t *testing.T) {
	t.Parallel()
	base := 250 * time.Millisecond
	now := time.Unix(1000, 0)
	p := newPolls(base, 2*time.Second, now)
	lanes := pollLanes(2)
	last := now
	for i := range 20 { // a task every 20 ms
		last = now.Add(time.Duration(i) * 20 * time.Millisecond)
		p.active(last)
	}
	if got, want := p.next(lanes, now), last.Sub(now)+base; got != want {
		t.Errorf("next poll of a busy agent in %v, want %v (a base period after the last task)", got, want)
	}
}

// TestPolls_RetryComesDue: a lane's retry is looked for when it comes due
// (with retryLag), however far the poll, and it marks that lane alone,
// even while a standby waits there (should the standby end first, the
// loop fetches); the earliest of two retries is kept.
func TestPolls_RetryComesDue(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	p := newPolls(time.Hour, time.Hour, now)
	lanes := pollLanes(3)
	lanes[1].armed.Store(true)
	lanes[1].retryAt(now.Add(3 * time.Second))
	lanes[1].retryAt(now.Add(time.Second)) // earlier: kept
	lanes[1].retryAt(now.Add(2 * time.Second))
	if got, want := p.next(lanes, now), time.Second+retryLag; got != want {
		t.Fatalf("next look in %v, want %v", got, want)
	}
	p.fire(lanes, now.Add(time.Second)) // early: retryLag not passed
	if lanes[1].maybe.Load() {
		t.Fatal("lane marked before its retry's lag passed")
	}
	now = now.Add(time.Second + retryLag)
	p.fire(lanes, now)
	if !lanes[1].maybe.Load() || lanes[0].maybe.Load() || lanes[2].maybe.Load() {
		t.Errorf("marked %v %v %v, want only the retry's lane", lanes[0].maybe.Load(), lanes[1].maybe.Load(), lanes[2].maybe.Load())
	}
	if lanes[1].due.Load() != 0 {
		t.Error("the retry's time not cleared once marked")
	}
	if got := p.next(lanes, now); got != time.Hour-time.Second-retryLag {
		t.Errorf("next look in %v, want the poll's", got)
	}
}

// TestAgent_RetrySetsItsLaneDue: a failed task to be retried is nak'ed
// with its backoff, and its lane records when it comes back, so that the
// fetch loop looks then rather than at its (here hour-long) poll; the
// server does give it back by then.
func TestAgent_RetrySetsItsLaneDue(t *testing.T) {
	t.Parallel()
	cfg := streams.Config{Memory: true}
	nc, js := natstest.Ensure(t, natstest.Start(t), cfg)
	a, err := New(nc, Config{ID: "retries", Streams: cfg, Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	task := &events.Task{Workflow: "wf", ID: "t", Step: "s", Type: "x", Priority: 3,
		MaxAttempts: 3, Backoff: 300 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, Timeout: time.Minute}
	msg, err := cfg.Subjects().TaskMsg(task)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(t.Context(), cfg.WithDefaults().TasksStream(), cfg.Lane("x", 3))
	if err != nil {
		t.Fatal(err)
	}
	m := fetchOne(t, cons)
	l := &lane{typ: "x", prio: 3, tok: events.LaneToken(3, nil), cons: cons}
	before := time.Now()
	a.failed(t.Context(), a.log, task, &job{msg: m, lane: l}, 1, nil, errors.New("boom"), false)
	after := time.Now()
	due := time.Unix(0, l.due.Load())
	// Equal jitter: between half the backoff and all of it.
	if due.Before(before.Add(150*time.Millisecond)) || due.After(after.Add(300*time.Millisecond)) {
		t.Fatalf("lane due %v after the failure, want 150 to 300ms", due.Sub(before))
	}
	again := fetchOne(t, cons)
	if md, err := again.Metadata(); err != nil || md.NumDelivered != 2 {
		t.Fatalf("redelivered %+v (%v), want the second delivery", md, err)
	}
	if late := time.Since(due); late < -retryLag {
		t.Errorf("the task came back %v before the lane's due time", -late)
	}
}

func fetchOne(t *testing.T, cons jetstream.Consumer) jetstream.Msg {
	t.Helper()
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		return m
	}
	t.Fatalf("no task in 30 s: %v", batch.Error())
	return nil
}
