package agent_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go/jetstream"
)

// waitingPulls is how many pulls wait on the lanes of TASKS, and on which.
func waitingPulls(t *testing.T, js jetstream.JetStream, cfg streams.Config) (int, map[string]int) {
	t.Helper()
	s, err := js.Stream(t.Context(), cfg.WithDefaults().TasksStream())
	if err != nil {
		t.Fatal(err)
	}
	n, on := 0, map[string]int{}
	list := s.ListConsumers(t.Context())
	for info := range list.Info() {
		if info.NumWaiting > 0 {
			n += info.NumWaiting
			on[info.Name] = info.NumWaiting
		}
	}
	if err := list.Err(); err != nil {
		t.Fatal(err)
	}
	return n, on
}

// awaitPulls waits until exactly want pulls wait on the lanes.
func awaitPulls(t *testing.T, js jetstream.JetStream, cfg streams.Config, want int) map[string]int {
	t.Helper()
	var on map[string]int
	natstest.Eventually(t, 30*time.Second, fmt.Sprintf("%d pulls waiting on the lanes", want), func() bool {
		var n int
		n, on = waitingPulls(t, js, cfg)
		if n > want {
			t.Fatalf("%d pulls wait on the lanes (%v), more than the %d the agent's free slots allow", n, on, want)
		}
		return n == want
	})
	return on
}

// publishTask queues a task on its lane as the planner does, but without
// ringing the lane's wake-up subject.
func publishTask(t *testing.T, js jetstream.JetStream, cfg streams.Config, task *events.Task) {
	t.Helper()
	msg, err := cfg.Subjects().TaskMsg(task)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
}

func testTask(wf, id, typ string, prio int) *events.Task {
	return &events.Task{Workflow: wf, ID: id, Step: "s", Type: typ, Priority: prio,
		MaxAttempts: 3, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, Timeout: time.Minute}
}

// TestAgent_IdleTakesTasksNoWakeUpAnnounces: an idle agent whose poll never
// comes (an hour) still takes at once a task queued without a wake-up,
// and the retry of a task that asked for one, which no wake-up announces
// either: its pull waits on the lane.
func TestAgent_IdleTakesTasksNoWakeUpAnnounces(t *testing.T) {
	t.Parallel()
	nc, js, cfg, results := agent.ResultsServerForTest(t)
	var mu sync.Mutex
	tries := map[string]int{}
	startAgent(t, nc, agent.Config{ID: "idle", Streams: cfg, Concurrency: 8, Poll: time.Hour},
		map[string]agent.Handler{"x": agent.HandlerFunc(func(_ context.Context, task *agent.Task) (any, error) {
			mu.Lock()
			defer mu.Unlock()
			tries[task.ID]++
			if task.ID == "again" && tries[task.ID] == 1 {
				return nil, agent.RetryAfter(50*time.Millisecond, errors.New("not yet"))
			}
			return task.ID, nil
		})})
	awaitPulls(t, js, cfg, 4) // of 5 lanes (x at 5 priorities) and 8 free slots: standbyMost
	for _, id := range []string{"plain", "again"} {
		publishTask(t, js, cfg, testTask("wf", id, "x", 3))
		m, err := results.NextMsg(30 * time.Second)
		if err != nil {
			t.Fatalf("task %s: no result: %v", id, err)
		}
		r, err := events.DecodeResult(m.Header.Get(events.HeaderContentType), m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if r.Task != id || r.Status != events.StateCompleted {
			t.Fatalf("result of %s %s, want %s completed", r.Task, r.Status, id)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if tries["plain"] != 1 || tries["again"] != 2 {
		t.Fatalf("runs %v, want plain once and again twice", tries)
	}
}

// TestAgent_StandbysKeepTheConcurrency: an idle agent leaves pulls on as
// many lanes as it has free slots, no more, and tasks arriving on every
// lane at once never run more than its concurrency at a time.
func TestAgent_StandbysKeepTheConcurrency(t *testing.T) {
	t.Parallel()
	nc, js, cfg, results := agent.ResultsServerForTest(t)
	var mu sync.Mutex
	running, most := 0, 0
	h := agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond) // a task's work
		mu.Lock()
		running--
		mu.Unlock()
		return nil, nil
	})
	types := []string{"a", "b", "c"}
	handlers := map[string]agent.Handler{}
	for _, typ := range types {
		handlers[typ] = h
	}
	startAgent(t, nc, agent.Config{ID: "two", Streams: cfg, Concurrency: 2}, handlers)
	// 15 lanes, 2 free slots: 2 pulls, on the most urgent lanes.
	on := awaitPulls(t, js, cfg, 2)
	for lane := range on {
		if lane != streams.LaneConsumer("a", 1) && lane != streams.LaneConsumer("b", 1) {
			t.Errorf("a pull waits on %s, want the most urgent lanes (a and b at priority 1)", lane)
		}
	}
	n := 0
	for _, prio := range events.Priorities {
		for _, typ := range types {
			publishTask(t, js, cfg, testTask("wf", fmt.Sprintf("%s-%d", typ, prio), typ, prio))
			n++
		}
	}
	for i := range n {
		if _, err := results.NextMsg(30 * time.Second); err != nil {
			t.Fatalf("%d of %d results: %v", i, n, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if most > 2 {
		t.Fatalf("%d tasks ran at once on an agent of concurrency 2", most)
	}
}
