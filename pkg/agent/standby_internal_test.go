package agent

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestAgent_TakesBackWhatStandbysHold: an idle agent of 4 slots has 4
// pulls waiting on its most urgent lanes; tasks woken up on another lane
// want those slots, and the agent cancels its pulls to run 4 at once,
// instead of waiting for them to expire (here never: not a test of that).
// Not parallel: it lengthens standbyWait for the package.
func TestAgent_TakesBackWhatStandbysHold(t *testing.T) {
	nc, js, cfg, results := standbyServer(t)
	all := make(chan struct{})
	var mu sync.Mutex
	running := 0
	h := HandlerFunc(func(ctx context.Context, _ *Task) (any, error) {
		mu.Lock()
		if running++; running == 4 {
			close(all)
		}
		mu.Unlock()
		select { // each of the first four holds its slot until all four run
		case <-all:
		case <-ctx.Done():
		}
		return nil, nil
	})
	a, _ := RunForTest(t, nc, Config{ID: "four", Streams: cfg, Concurrency: 4, Poll: time.Hour}, map[string]Handler{"x": h, "y": h})
	a.awaitStandbys(t, 4)
	// The lowest priority, where no pull waits.
	queueAndWake(t, nc, js, cfg, "a", "b", "c", "d", "e", "f", "g", "h")
	for i := range 8 {
		if _, err := results.NextMsg(30 * time.Second); err != nil {
			t.Fatalf("%d of 8 results (the standbys kept their slots?): %v", i, err)
		}
	}
}

// holdStandbys lengthens standbyWait to an hour for the test (which must
// not be parallel): no standby expires and re-arms meanwhile. It is
// restored after the test's agents stop (cleanups run last first).
func holdStandbys(t *testing.T) {
	wait := standbyWait
	standbyWait = time.Hour
	t.Cleanup(func() { standbyWait = wait })
}

// standbyServer starts a server with baton's streams for a test that
// holds standbys (holdStandbys), subscribed to every result.
func standbyServer(t *testing.T) (*nats.Conn, jetstream.JetStream, streams.Config, *nats.Subscription) {
	t.Helper()
	holdStandbys(t)
	return ResultsServerForTest(t)
}

// queueAndWake queues tasks of type x at priority 5 as the planner does:
// stored, then a wake-up.
func queueAndWake(t *testing.T, nc *nats.Conn, js jetstream.JetStream, cfg streams.Config, ids ...string) {
	t.Helper()
	subj := cfg.Subjects()
	for _, id := range ids {
		msg, err := subj.TaskMsg(&events.Task{Workflow: "wf", ID: id, Step: "s", Type: "x", Priority: 5,
			MaxAttempts: 1, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(t.Context(), msg); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Publish(subj.WakeOn("x", events.LaneToken(5, nil)), nil); err != nil {
		t.Fatal(err)
	}
}

// awaitStandbys waits until the agent has n standbys.
func (a *Agent) awaitStandbys(t *testing.T, n int32) {
	t.Helper()
	natstest.Eventually(t, 30*time.Second, fmt.Sprintf("%d standbys", n), func() bool { return a.reserved.Load() == n })
}

// TestAgent_StandbysStopWithTheAgent: a stopped agent leaves no pull
// waiting (here none would expire), so a task queued after it stopped
// waits for the next agent. Not parallel: it lengthens standbyWait.
func TestAgent_StandbysStopWithTheAgent(t *testing.T) {
	holdStandbys(t)
	cfg := streams.Config{Memory: true}
	srv := natstest.Start(t)
	nc, js := natstest.Ensure(t, srv, cfg)
	ran := make(chan string, 4)
	h := func(id string) map[string]Handler {
		return map[string]Handler{"x": HandlerFunc(func(context.Context, *Task) (any, error) {
			ran <- id
			return nil, nil
		})}
	}
	first, stop := RunForTest(t, nc, Config{ID: "first", Streams: cfg}, h("first"))
	first.awaitStandbys(t, standbyMost)
	stop()
	s, err := js.Stream(t.Context(), cfg.WithDefaults().TasksStream())
	if err != nil {
		t.Fatal(err)
	}
	list := s.ListConsumers(t.Context())
	for info := range list.Info() {
		if info.NumWaiting != 0 {
			t.Errorf("%d pulls wait on %s after the agent stopped", info.NumWaiting, info.Name)
		}
	}
	if err := list.Err(); err != nil {
		t.Fatal(err)
	}
	msg, err := cfg.Subjects().TaskMsg(&events.Task{Workflow: "wf", ID: "later", Step: "s", Type: "x", Priority: 3,
		MaxAttempts: 1, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	nc2, _ := natstest.Connect(t, srv)
	RunForTest(t, nc2, Config{ID: "second", Streams: cfg}, h("second"))
	select {
	case id := <-ran:
		if id != "second" {
			t.Fatalf("the task ran on %s, want the agent started after it was queued", id)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the task queued after the first agent stopped did not run")
	}
}

// TestAgent_StandbysHoldingEverySlotHearWakeUps: an idle agent whose
// standbys hold all its free slots, woken for another reason meanwhile
// (here a nudge as a freed slot gives), still hears the planner's wake-up
// for a lane without one, and cancels them to serve it. Not parallel: it
// lengthens standbyWait.
func TestAgent_StandbysHoldingEverySlotHearWakeUps(t *testing.T) {
	nc, js, cfg, results := standbyServer(t)
	h := HandlerFunc(func(context.Context, *Task) (any, error) { return nil, nil })
	a, _ := RunForTest(t, nc, Config{ID: "two", Streams: cfg, Concurrency: 2, Poll: time.Hour}, map[string]Handler{"x": h, "y": h})
	a.awaitStandbys(t, 2)
	a.slotFreed() // the loop looks again: no free slot, no work known
	queueAndWake(t, nc, js, cfg, "t")
	if _, err := results.NextMsg(30 * time.Second); err != nil {
		t.Fatalf("no result: the wake-up went unheard: %v", err)
	}
}

// TestStandbys_RemoveKeepsALaterOne: a standby that ended while its lane
// was armed again forgets itself only, so the new one is still cancelled
// (and waited for) when the fetch loop stops.
func TestStandbys_RemoveKeepsALaterOne(t *testing.T) {
	t.Parallel()
	l := &lane{}
	sb := newStandbys()
	old := &standby{l: l, cancel: make(chan struct{})}
	later := &standby{l: l, cancel: make(chan struct{})}
	sb.on[l] = later // armed again before old's goroutine returned
	sb.remove(old)
	if sb.on[l] != later {
		t.Fatal("the ended standby removed the one armed after it")
	}
	sb.cancelAll()
	select {
	case <-later.cancel:
	default:
		t.Fatal("the later standby was not cancelled")
	}
	sb.remove(later)
	if len(sb.on) != 0 {
		t.Fatalf("%d standbys left after the last ended", len(sb.on))
	}
}

// TestAgent_ForgedToAStandbyIsRefused: a task published straight to a
// standby's inbox (its subject the inbox, not its lane's) is refused unrun,
// like a forged task fetched from a lane, and the agent goes on: its slot
// comes back and a real task runs. Not parallel: it lengthens standbyWait.
func TestAgent_ForgedToAStandbyIsRefused(t *testing.T) {
	holdStandbys(t)
	cfg := streams.Config{Memory: true}
	nc, js := natstest.Ensure(t, natstest.Start(t), cfg)
	subj := cfg.Subjects()
	pulls, err := nc.SubscribeSync("$JS.API.CONSUMER.MSG.NEXT.>")
	if err != nil {
		t.Fatal(err)
	}
	results, err := nc.SubscribeSync(subj.Results())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var ran []string
	h := HandlerFunc(func(_ context.Context, task *Task) (any, error) {
		mu.Lock()
		defer mu.Unlock()
		ran = append(ran, task.ID)
		return nil, nil
	})
	a, _ := RunForTest(t, nc, Config{ID: "one", Streams: cfg, Concurrency: 1, Poll: time.Hour}, map[string]Handler{"x": h})
	a.awaitStandbys(t, 1)
	var inbox string
	for inbox == "" {
		m, err := pulls.NextMsg(30 * time.Second)
		if err != nil {
			t.Fatalf("no standby pull seen: %v", err)
		}
		// The standby's pull, not a fetch's (no_wait).
		if m.Subject == streams.PullSubject(cfg.WithDefaults().TasksStream(), streams.LaneConsumer("x", 1)) &&
			!strings.Contains(string(m.Data), "no_wait") {
			inbox = m.Reply
		}
	}
	forged, err := subj.TaskMsg(&events.Task{Workflow: "wf", ID: "forged", Step: "s", Type: "x", Priority: 1,
		MaxAttempts: 1, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// A reply subject of its own: the server itself drops a client's
	// message whose reply is an acknowledgement subject.
	forged.Subject, forged.Reply = inbox, "forger.reply"
	if err := nc.PublishMsg(forged); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 30*time.Second, "the forged task to be refused", func() bool { return a.failures.Load() > 0 })
	a.awaitStandbys(t, 1) // its slot back, armed again
	queueAndWake(t, nc, js, cfg, "real")
	if _, err := results.NextMsg(30 * time.Second); err != nil {
		t.Fatalf("no result for the real task: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ran) != 1 || ran[0] != "real" {
		t.Fatalf("handler ran %v, want the real task alone", ran)
	}
}

// TestAgent_AsksAgainOnlyWhenMoreWait: a task a standby brings, its lane's
// only one, is followed by no fetch (the server counted none pending in
// its metadata): the agent only arms the lane again. (Where more wait, a
// full fetch asks again at once: TestAgent_TakesBackWhatStandbysHold.)
// Not parallel: it lengthens standbyWait, so that no standby expires
// and re-arms among the requests counted.
func TestAgent_AsksAgainOnlyWhenMoreWait(t *testing.T) {
	nc, js, cfg, results := standbyServer(t)
	subj := cfg.Subjects()
	a, _ := RunForTest(t, nc, Config{ID: "asks", Streams: cfg, Concurrency: 4, Poll: time.Hour},
		map[string]Handler{"x": HandlerFunc(func(context.Context, *Task) (any, error) { return nil, nil })})
	a.awaitStandbys(t, 4) // on priorities 1 to 4
	lane := streams.LaneConsumerOn("x", events.LaneToken(1, nil))
	reqs := make(chan *nats.Msg, 256)
	if _, err := nc.ChanSubscribe("$JS.API.CONSUMER.MSG.NEXT."+cfg.TasksStream()+"."+lane, reqs); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// Queued without a wake-up (TestAgent_WakeUpsOfArmedLanes): the
	// standby brings it.
	msg, err := subj.TaskMsg(&events.Task{Workflow: "wf", ID: "only", Step: "s", Type: "x", Priority: 1,
		MaxAttempts: 1, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	if _, err := results.NextMsg(30 * time.Second); err != nil {
		t.Fatalf("no result: %v", err)
	}
	// The agent's requests on the lane after its task: a fetch (no_wait)
	// would come before the standby's pull that arms the lane again.
	fetches := 0
	for armed := false; !armed; {
		select {
		case m := <-reqs:
			if strings.Contains(string(m.Data), `"no_wait"`) {
				fetches++
			} else {
				armed = true
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("the lane not armed again (%d fetches)", fetches)
		}
	}
	if fetches != 0 {
		t.Errorf("after the lane's only task: %d fetches, want none: the server said none was pending", fetches)
	}
}

// TestAgent_StandbysFollowTheBusyLane: an idle agent's standbys sit on
// its 4 most urgent lanes; tasks come on a fifth, woken up. Once idle
// again, the least recently active standby has given way to that lane.
// Not parallel: it lengthens standbyWait (none expires and re-arms).
func TestAgent_StandbysFollowTheBusyLane(t *testing.T) {
	nc, js, cfg, results := standbyServer(t)
	a, _ := RunForTest(t, nc, Config{ID: "follows", Streams: cfg, Concurrency: 8, Poll: time.Hour},
		map[string]Handler{"x": HandlerFunc(func(context.Context, *Task) (any, error) { return nil, nil })})
	a.awaitStandbys(t, 4) // on priorities 1 to 4
	queueAndWake(t, nc, js, cfg, "a", "b")
	for i := range 2 {
		if _, err := results.NextMsg(30 * time.Second); err != nil {
			t.Fatalf("%d of 2 results: %v", i, err)
		}
	}
	busy := streams.LaneConsumerOn("x", events.LaneToken(5, nil))
	natstest.Eventually(t, 30*time.Second, "one pull waiting on "+busy+" among 4", func() bool {
		n, on := 0, map[string]int{}
		list := mustStream(t, js, cfg.TasksStream()).ListConsumers(t.Context())
		for info := range list.Info() {
			n += info.NumWaiting
			on[info.Name] = info.NumWaiting
		}
		if err := list.Err(); err != nil {
			t.Fatal(err)
		}
		return on[busy] == 1 && n == 4
	})
}

func mustStream(t *testing.T, js jetstream.JetStream, name string) jetstream.Stream {
	t.Helper()
	s, err := js.Stream(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// listening starts an agent's wake-up handler alone, for lanes of type x,
// on a fresh server; it stops with the test.
func listening(t *testing.T, lanes []*lane) (*Agent, *nats.Conn, <-chan struct{}) {
	t.Helper()
	cfg := streams.Config{Memory: true}
	nc, _ := natstest.Ensure(t, natstest.Start(t), cfg)
	a, err := New(nc, Config{ID: "wakes", Streams: cfg})
	if err != nil {
		t.Fatal(err)
	}
	wake, stop, err := a.listenWake([]string{"x"}, lanes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return a, nc, wake
}

// TestAgent_WakeUpsOfArmedLanes: a wake-up marks its lane active and
// worth a fetch, with or without a standby there: the fetch loop leaves an
// armed lane to its standby, but should the standby end without the task
// (cancelled for a slot, or giving way to a busier lane), the mark has the
// loop fetch it at once rather than at the next poll.
func TestAgent_WakeUpsOfArmedLanes(t *testing.T) {
	t.Parallel()
	lanes := pollLanes(2)
	armed, plain := lanes[0], lanes[1]
	armed.armed.Store(true)
	a, nc, wake := listening(t, lanes)
	for _, l := range []*lane{armed, plain} {
		if err := nc.Publish(a.subj.WakeOn(l.typ, l.tok), nil); err != nil {
			t.Fatal(err)
		}
		select {
		case <-wake: // the handler has marked the lane
		case <-time.After(30 * time.Second):
			t.Fatalf("no wake-up for lane %s", l.tok)
		}
	}
	if !armed.maybe.Load() || !plain.maybe.Load() {
		t.Errorf("maybe: armed lane %v, plain lane %v; want both true", armed.maybe.Load(), plain.maybe.Load())
	}
	if armed.lastActive.Load() == 0 || plain.lastActive.Load() == 0 {
		t.Errorf("lastActive: armed lane %d, plain lane %d; want both set", armed.lastActive.Load(), plain.lastActive.Load())
	}
	now := time.Now()
	if armed.fetchable(now) || !plain.fetchable(now) {
		t.Errorf("fetchable: armed lane %v, plain lane %v; want false (its standby brings the task) and true",
			armed.fetchable(now), plain.fetchable(now))
	}
	armed.armed.Store(false) // the standby ended without the task
	if !armed.fetchable(now) {
		t.Error("a woken lane whose standby ended without its task is not fetched")
	}
}

// TestLane_BroughtSettlesTheWakeUp: the task a standby brings settles its
// lane's mark by the pending count in its metadata, either way: a wake-up
// of that very task marked the lane while the standby waited, and the
// count says whether a fetch would find more. Unreadable metadata (a
// message not from the server) leaves the lane worth a fetch.
func TestLane_BroughtSettlesTheWakeUp(t *testing.T) {
	t.Parallel()
	ack := func(pending int) string {
		// $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>
		return fmt.Sprintf("$JS.ACK.TASKS.lane.1.7.7.%d.%d", time.Now().UnixNano(), pending)
	}
	for _, c := range []struct {
		name  string
		reply string
		want  bool
	}{
		{"none pending", ack(0), false},
		{"more pending", ack(3), true},
		{"no metadata", "_INBOX.forged", true},
	} {
		l := &lane{typ: "x", prio: 1, tok: events.LaneToken(1, nil)}
		l.maybe.Store(true) // its wake-up
		l.brought(pulled{&nats.Msg{Subject: "baton.tasks.x.1", Reply: c.reply, Sub: &nats.Subscription{}}})
		if got := l.maybe.Load(); got != c.want {
			t.Errorf("%s: maybe %v, want %v", c.name, got, c.want)
		}
		if l.lastActive.Load() == 0 {
			t.Errorf("%s: the lane not marked active", c.name)
		}
	}
}

// floodWakeUps publishes n wake-ups on nc as a hostile publisher would:
// on the lanes of type x at priorities 1 to 5, on lanes no agent has, and
// now and then with a megabyte body.
func floodWakeUps(t *testing.T, nc *nats.Conn, subj events.Subjects, n int) {
	t.Helper()
	big := make([]byte, 1<<20)
	for i := range n {
		target := subj.WakeOn("x", events.LaneToken(i%5+1, nil))
		var body []byte
		switch i % 1000 {
		case 1:
			target = subj.WakeOn("x", "99") // no such lane
		case 2:
			target = subj.WakeOn("x", strings.Repeat("9", 200))
		case 3:
			body = big
		}
		if err := nc.Publish(target, body); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAgent_WakeUpFloodIsCoalesced: 10,000 forged wake-ups leave the
// fetch loop one nudge, whatever their lanes and bodies: a wake-up is a
// hint that marks its lane, and any number of them costs the loop one
// turn, not one fetch each. (Were each one a turn, the handler would block
// on the second and never reach the marker.)
func TestAgent_WakeUpFloodIsCoalesced(t *testing.T) {
	t.Parallel()
	lanes := pollLanes(6) // 6: the marker's
	lanes[0].armed.Store(true)
	a, nc, wake := listening(t, lanes)
	floodWakeUps(t, nc, a.subj, 10_000)
	marker := lanes[5]
	if err := nc.Publish(a.subj.WakeOn("x", marker.tok), nil); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 30*time.Second, "the wake-up handler to get through the flood to the marker",
		func() bool { return marker.lastActive.Load() != 0 })
	if n := len(wake); n != 1 {
		t.Errorf("%d nudges of the fetch loop waiting after the flood, want 1", n)
	}
	for _, l := range lanes[:5] {
		if !l.maybe.Load() {
			t.Errorf("lane %d not marked by its wake-ups", l.prio)
		}
	}
}

// TestAgent_WorksThroughAWakeUpFlood: an agent flooded with forged
// wake-ups still takes a real task queued behind the flood, and settles
// it. Not parallel: it lengthens standbyWait.
func TestAgent_WorksThroughAWakeUpFlood(t *testing.T) {
	nc, js, cfg, results := standbyServer(t)
	a, _ := RunForTest(t, nc, Config{ID: "flooded", Streams: cfg, Concurrency: 8, Poll: time.Hour},
		map[string]Handler{"x": HandlerFunc(func(context.Context, *Task) (any, error) { return nil, nil })})
	a.awaitStandbys(t, 4)
	floodWakeUps(t, nc, cfg.Subjects(), 10_000)
	queueAndWake(t, nc, js, cfg, "after-the-flood")
	if _, err := results.NextMsg(30 * time.Second); err != nil {
		t.Fatalf("the real task behind the flood: no result: %v", err)
	}
}
