package agent

import (
	"errors"
	"slices"
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

// TestPolls_RetryComesDue: each retry the agent set on a lane is looked for
// when it comes due (with retryLag), however far the poll, the earliest
// first; it marks that lane alone, even while a standby waits there
// (should the standby end first, the loop fetches). Then the poll's
// schedule is left.
func TestPolls_RetryComesDue(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	p := newPolls(time.Hour, time.Hour, now)
	lanes := pollLanes(3)
	lanes[1].armed.Store(true)
	for _, d := range []time.Duration{3 * time.Second, time.Second, 2 * time.Second} {
		lanes[1].retries.add(now.Add(d))
	}
	start := now
	for _, d := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second} {
		if got, want := p.next(lanes, now), start.Add(d+retryLag).Sub(now); got != want {
			t.Fatalf("next look in %v, want %v (the retry due at %v)", got, want, d)
		}
		p.fire(lanes, start.Add(d)) // early: retryLag not passed
		if lanes[1].maybe.Load() {
			t.Fatalf("lane marked before the lag of its retry due at %v passed", d)
		}
		now = start.Add(d + retryLag)
		p.fire(lanes, now)
		if !lanes[1].maybe.Load() || lanes[0].maybe.Load() || lanes[2].maybe.Load() {
			t.Fatalf("retry due at %v: marked %v %v %v, want only the retry's lane", d, lanes[0].maybe.Load(), lanes[1].maybe.Load(), lanes[2].maybe.Load())
		}
		lanes[1].maybe.Store(false) // as a fetch that found it does
	}
	if _, ok := lanes[1].retries.next(); ok {
		t.Error("retries left once each was marked")
	}
	if got := p.next(lanes, now); got != time.Hour-3*time.Second-retryLag {
		t.Errorf("next look in %v, want the poll's", got)
	}
}

// TestRetries_RoundedAndBounded: due times are rounded up to a 20 ms grid
// and kept once per step (a burst of failures wakes the loop once per
// step); at most retriesMost are kept, the earliest.
func TestRetries_RoundedAndBounded(t *testing.T) {
	t.Parallel()
	base := time.Unix(1000, 0)
	var r retries
	r.add(base.Add(12 * time.Millisecond))
	r.add(base.Add(5 * time.Millisecond))
	r.add(base.Add(20 * time.Millisecond))
	r.add(base.Add(21 * time.Millisecond))
	if want := []time.Time{base.Add(20 * time.Millisecond), base.Add(40 * time.Millisecond)}; !slices.EqualFunc(r.due, want, time.Time.Equal) {
		t.Fatalf("due %v, want %v", r.due, want)
	}
	if r.take(base.Add(19*time.Millisecond)) || !r.take(base.Add(20*time.Millisecond)) || len(r.due) != 1 {
		t.Fatalf("take: left %v, want the 40 ms one", r.due)
	}
	r.take(base.Add(time.Hour))
	for i := 2 * retriesMost; i > 0; i-- { // latest first
		r.add(base.Add(time.Duration(i) * retriesApart))
	}
	if len(r.due) != retriesMost || !r.due[0].Equal(base.Add(retriesApart)) || !r.due[retriesMost-1].Equal(base.Add(retriesMost*retriesApart)) {
		t.Fatalf("kept %d from %v to %v, want the earliest %d", len(r.due), r.due[0], r.due[len(r.due)-1], retriesMost)
	}
	r.add(base.Add(time.Hour)) // later than every kept one, full: dropped
	if len(r.due) != retriesMost || r.due[retriesMost-1].After(base.Add(retriesMost*retriesApart)) {
		t.Fatal("a later retry displaced a kept one")
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
	due, ok := l.retries.next()
	// Equal jitter: between half the backoff and all of it, rounded up to
	// the grid.
	if !ok || due.Before(before.Add(150*time.Millisecond)) || due.After(after.Add(300*time.Millisecond+retriesApart)) {
		t.Fatalf("lane due %v after the failure, want 150 to 300ms", due.Sub(before))
	}
	again := fetchOne(t, cons)
	if md, err := again.Metadata(); err != nil || md.NumDelivered != 2 {
		t.Fatalf("redelivered %+v (%v), want the second delivery", md, err)
	}
	// The due time is rounded up to the grid: the lane is looked at no
	// more than a step after the task is back.
	if late := time.Since(due); late < -(retryLag + retriesApart) {
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
