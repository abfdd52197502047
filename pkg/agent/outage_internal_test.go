package agent

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
)

// TestOutage_LogsOnceEachWay: a hundred failures in a row make one line,
// their end one more, and the next outage is logged again.
func TestOutage_LogsOnceEachWay(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	var o outage
	boom := errors.New("nats: no responders available for request")
	for range 100 {
		o.fail(log, "fetching tasks", boom, "lane", "lane_x_1")
	}
	o.ok(log, "fetching tasks")
	o.ok(log, "fetching tasks")
	o.fail(log, "fetching tasks", boom)
	s := out.String()
	if n := strings.Count(s, "fetching tasks fails"); n != 2 {
		t.Errorf("%d failure lines, want 2:\n%s", n, s)
	}
	if n := strings.Count(s, "fetching tasks works again"); n != 1 || !strings.Contains(s, "failures=100") {
		t.Errorf("recovery lines %d, want 1 with failures=100:\n%s", n, s)
	}
}

// TestAgent_UnansweredLaneIsLeftAlone: a lane whose fetch gets no answer
// (its pull requests go nowhere, as to a consumer leader on a node cut off
// the network) is held and not asked again while held, so the fetch loop
// serves the other lanes instead of blocking a second on it at every
// turn; it stays marked, is asked again once the hold is over, and an
// answered fetch lifts the hold. Repeated silence holds it longer, up to
// a bound.
func TestAgent_UnansweredLaneIsLeftAlone(t *testing.T) {
	t.Parallel()
	cfg := streams.Config{Memory: true}
	srv := natstest.Start(t)
	nc, js := natstest.Ensure(t, srv, cfg)
	a, err := New(nc, Config{ID: "silence", Streams: cfg, Poll: time.Hour, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	// Lanes of two types at every priority, as the agent opens them; the
	// cut one is type cut at priority 3.
	var lanes []*lane
	var cut *lane
	for _, prio := range events.Priorities {
		for _, typ := range []string{"cut", "live"} {
			cons, err := js.CreateOrUpdateConsumer(t.Context(), cfg.WithDefaults().TasksStream(), cfg.Lane(typ, prio))
			if err != nil {
				t.Fatal(err)
			}
			l := &lane{typ: typ, prio: prio, tok: events.LaneToken(prio, nil), cons: cons}
			lanes = append(lanes, l)
			if typ == "cut" && prio == 3 {
				cut = l
			}
		}
	}
	others := slices.DeleteFunc(slices.Clone(lanes), func(l *lane) bool { return l == cut })
	mark := func() {
		for _, l := range lanes {
			l.maybe.Store(true)
		}
	}
	asked := func() bool { // every other lane was asked since mark
		for _, l := range others {
			if l.maybe.Load() {
				return false
			}
		}
		return true
	}
	mark()
	// The cut lane's pull requests go to a subscriber that never answers.
	silent, err := nc.SubscribeSync("blackhole")
	if err != nil {
		t.Fatal(err)
	}
	info := cut.cons.CachedInfo()
	pull := streams.PullSubject(info.Stream, info.Name)
	if err := srv.GlobalAccount().AddMapping(pull, "blackhole"); err != nil {
		t.Fatal(err)
	}
	var tasks sync.WaitGroup
	a.fetchTurn(t.Context(), lanes, 0, 1, &tasks)
	if n, _, _ := silent.Pending(); n != 1 {
		t.Fatalf("%d requests went unanswered, want 1", n)
	}
	now := time.Now()
	if !cut.silent.held(now) || !cut.maybe.Load() || cut.fetchable(now) {
		t.Fatalf("after an unanswered fetch: held %v, marked %v; want held and marked", cut.silent.held(now), cut.maybe.Load())
	}
	if !asked() {
		t.Fatal("the other lanes were not asked in the same turn")
	}
	// The loop wakes for the end of the hold, the poll being an hour off.
	p := newPolls(time.Hour, time.Hour, now)
	if d := p.next(lanes, now); d <= 0 || d > unansweredFirstHold {
		t.Fatalf("next look in %v, want the hold's end, within %v", d, unansweredFirstHold)
	}
	// Turns during the hold ask the other lanes only (held for an hour
	// here: a slow answer of theirs must not end the phase).
	cut.silent.until = time.Now().Add(time.Hour)
	for turn := 1; turn <= 3; turn++ {
		mark()
		a.fetchTurn(t.Context(), lanes, turn, 1, &tasks)
		if !asked() {
			t.Fatalf("turn %d during the hold did not ask the other lanes", turn)
		}
	}
	if n, _, _ := silent.Pending(); n != 1 {
		t.Fatalf("during the hold: %d unanswered requests, want still 1", n)
	}
	// Past the hold it is asked again; still silent, it is held longer.
	cut.silent.until = time.Now()
	a.fetchTurn(t.Context(), lanes, 4, 1, &tasks)
	if n, _, _ := silent.Pending(); n != 2 || cut.silent.wait != 2*unansweredFirstHold {
		t.Fatalf("after the hold: %d unanswered requests, hold %v; want 2 and %v", n, cut.silent.wait, 2*unansweredFirstHold)
	}
	// Its leader reachable again: asked once the hold is over, answered
	// ("no messages"), the hold is lifted.
	if err := srv.GlobalAccount().RemoveMapping(pull); !err {
		t.Fatal("the mapping was not there to remove")
	}
	cut.silent.until = time.Now()
	a.fetchTurn(t.Context(), lanes, 5, 1, &tasks)
	if cut.silent.held(time.Now()) || cut.silent.wait != 0 || cut.maybe.Load() {
		t.Fatalf("answered: held %v (%v), marked %v; want free and known empty", cut.silent.held(time.Now()), cut.silent.wait, cut.maybe.Load())
	}
	tasks.Wait()
}

// TestSilence_HoldsLongerUpToABound: each unanswered fetch in a row
// doubles the hold, from a second to at most 16 s; an answer resets it.
func TestSilence_HoldsLongerUpToABound(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	var s backoff
	var got []time.Duration
	for range 7 {
		got = append(got, s.grow(now, unansweredFirstHold, unansweredMaxHold))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 16 * time.Second, 16 * time.Second}
	if !slices.Equal(got, want) || !s.held(now.Add(15*time.Second)) || s.held(now.Add(16*time.Second)) {
		t.Fatalf("holds %v, want %v, until now+16s", got, want)
	}
	s.reset() // answered
	if s.held(now) || s.grow(now, unansweredFirstHold, unansweredMaxHold) != time.Second {
		t.Fatal("an answer did not reset the hold")
	}
}
