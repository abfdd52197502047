package agent_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestAgent_AcksOnlyStoredResults: a task is settled only once its result
// is stored. While RESULTS refuses new messages, the agent publishes the
// result again and again, renewing the task's claim: the task stays
// claimed, unsettled, and is not run again, through more than its ack
// wait. Once RESULTS takes the result, the task is settled, having run
// once, its result stored once. So for each way a result goes out: a
// completed task's (without waiting), one holding a concurrency permit's
// and a failed task's (both waited for).
func TestAgent_AcksOnlyStoredResults(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		key     string // a concurrency key: the task holds a permit
		failure error
	}{
		{name: "completed"},
		{name: "holding a permit", key: "k"},
		{name: "failed", failure: agent.Permanent(errors.New("no"))},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			acksOnlyStoredResults(t, c.key, c.failure)
		})
	}
}

func acksOnlyStoredResults(t *testing.T, key string, failure error) {
	cfg := streams.Config{Memory: true, AckWait: time.Second}
	nc, js := natstest.Ensure(t, natstest.Start(t), cfg)
	ctx := t.Context()
	results, err := js.Stream(ctx, cfg.ResultsStream())
	if err != nil {
		t.Fatal(err)
	}
	full := results.CachedInfo().Config
	full.MaxMsgs, full.Discard = 1, jetstream.DiscardNew
	if _, err := js.UpdateStream(ctx, full); err != nil {
		t.Fatal(err)
	}
	// RESULTS holds one message: a result stored before the agent starts.
	if _, err := js.Publish(ctx, cfg.Subjects().Result("other", "o"), []byte{0x80}); err != nil {
		t.Fatal(err)
	}
	// Every publish of the task's result, stored or refused, passes here.
	tries := make(chan struct{}, 64)
	sub, err := nc.Subscribe(cfg.Subjects().Result("wf", "t"), func(*nats.Msg) { tries <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	var runs atomic.Int32
	startAgent(t, nc, agent.Config{ID: "a", Streams: cfg}, map[string]agent.Handler{
		"x": agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) { runs.Add(1); return "ok", failure }),
	})
	task := &events.Task{Workflow: "wf", ID: "t", Step: "s", Type: "x", Priority: 3,
		MaxAttempts: 5, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, Timeout: time.Minute}
	if key != "" {
		task.Key, task.Limit = key, 1
	}
	msg, err := cfg.Subjects().TaskMsg(task)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	// Six tries, each refused: 250 ms, then a third of the ack wait
	// between them, so more than the 1 s ack wait in all.
	for range 6 {
		select {
		case <-tries:
		case <-time.After(30 * time.Second):
			t.Fatal("the result was not published (again)")
		}
	}
	laneInfo := func() *jetstream.ConsumerInfo {
		lane, err := js.Consumer(ctx, cfg.TasksStream(), streams.LaneConsumerOn("x", events.LaneToken(3, nil)))
		if err != nil {
			t.Fatal(err)
		}
		info, err := lane.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	if info := laneInfo(); info.NumAckPending != 1 || info.NumRedelivered != 0 || info.AckFloor.Stream != 0 {
		t.Fatalf("lane: %d claimed, %d redelivered, acknowledged through %d; want the task claimed once, unacknowledged",
			info.NumAckPending, info.NumRedelivered, info.AckFloor.Stream)
	}
	full.MaxMsgs = -1
	if _, err := js.UpdateStream(ctx, full); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		info := laneInfo()
		if info.NumAckPending == 0 && info.NumPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the task was not settled once RESULTS took its result: %+v", info)
		}
		<-time.After(50 * time.Millisecond) // polling server state: nothing to wait on
	}
	st, err := results.Info(ctx, jetstream.WithSubjectFilter(cfg.Subjects().Result("wf", "t")))
	if err != nil {
		t.Fatal(err)
	}
	if n := st.State.Subjects[cfg.Subjects().Result("wf", "t")]; n != 1 {
		t.Fatalf("%d results stored for the task, want 1", n)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("the task ran %d times, want once", n)
	}
}

// TestAgent_BoundsResultsAwaitingStorage: results waiting for their
// acknowledgements hold no slot, but no more than the concurrency of them
// wait. With nothing storing results (as while RESULTS elects a leader),
// the agent stops taking tasks instead of running the whole lane into
// results that go nowhere, each to run again after its ack wait.
func TestAgent_BoundsResultsAwaitingStorage(t *testing.T) {
	t.Parallel()
	cfg := streams.Config{Memory: true}
	nc, js := natstest.Ensure(t, natstest.Start(t), cfg)
	ctx := t.Context()
	taken := make(chan struct{}, 64)
	sub, err := nc.Subscribe(cfg.Subjects().Results(), func(*nats.Msg) { taken <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	const concurrency, queued = 2, 20
	var runs atomic.Int32
	startAgent(t, nc, agent.Config{ID: "a", Streams: cfg, Concurrency: concurrency, Poll: 10 * time.Millisecond}, map[string]agent.Handler{
		"x": agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) { runs.Add(1); return "ok", nil }),
	})
	queue := func(id string) {
		t.Helper()
		msg, err := cfg.Subjects().TaskMsg(&events.Task{Workflow: "wf", ID: id, Step: "s", Type: "x", Priority: 3,
			MaxAttempts: 5, Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	wait := func(n int) {
		t.Helper()
		for range n {
			select {
			case <-taken:
			case <-time.After(30 * time.Second):
				t.Fatal("no result was published")
			}
		}
	}
	queue("first") // the agent is running once its result is out
	wait(1)
	// From now on results are taken and never answered: no stream
	// stores them.
	if err := js.DeleteStream(ctx, cfg.ResultsStream()); err != nil {
		t.Fatal(err)
	}
	for i := range queued {
		queue(fmt.Sprint("t", i))
	}
	wait(concurrency)
	// A check that nothing more happens needs time to pass: twenty polls,
	// in which an unbounded agent runs the whole lane.
	<-time.After(20 * 10 * time.Millisecond)
	if n := int(runs.Load()) - 1; n >= 2*concurrency {
		t.Fatalf("%d tasks ran with no result stored, want fewer than %d (twice the concurrency)", n, 2*concurrency)
	}
}
