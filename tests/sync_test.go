package tests

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
)

// maxOverlap is the most results whose [started, finished] intervals
// overlap at one instant.
func maxOverlap(rs []*events.Result) int {
	type edge struct {
		at    int64
		delta int
	}
	var edges []edge
	for _, r := range rs {
		edges = append(edges, edge{r.Started, +1}, edge{r.Finished, -1})
	}
	// At equal times an end comes before a start: touching is not overlapping.
	slices.SortFunc(edges, func(a, b edge) int {
		if a.at != b.at {
			return int(min(max(a.at-b.at, -1), 1))
		}
		return a.delta - b.delta
	})
	n, most := 0, 0
	for _, e := range edges {
		n += e.delta
		most = max(most, n)
	}
	return most
}

// sleeper sleeps the milliseconds of its input's first item and counts
// how many run at once.
type sleeper struct{ now, most atomic.Int64 }

func (s *sleeper) handler() agent.Handler {
	return agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) {
		n := s.now.Add(1)
		defer s.now.Add(-1)
		for {
			m := s.most.Load()
			if n <= m || s.most.CompareAndSwap(m, n) {
				break
			}
		}
		var ms []int
		if err := t.Bind(&ms); err != nil || len(ms) == 0 {
			return nil, agent.Permanent(fmt.Errorf("want a list of milliseconds: %v", err))
		}
		select {
		case <-time.After(time.Duration(ms[0]) * time.Millisecond):
			return ms[0], nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
}

// TestConcurrency_KeyLimitAcrossAgentsAndWorkflows: 30 tasks of two
// workflows share a key of limit 3; four agents with 4 slots each run them
// (and other tasks beside): never more than 3 of the key run at once,
// measured from the results' start and finish times, and all finish.
func TestConcurrency_KeyLimitAcrossAgentsAndWorkflows(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	var keyed, plain sleeper
	for i := range 4 {
		e.agent(fmt.Sprintf("agent-%d", i), 4, map[string]agent.Handler{"db": keyed.handler(), "free": plain.handler()})
	}
	job := func(name string) map[string]any {
		ms := make([]int, 15)
		for i := range ms {
			ms[i] = 150
		}
		return map[string]any{"name": name, "steps": []map[string]any{
			{"id": "load", "type": "db", "split": 1, "input": ms, "concurrency": map[string]any{"key": "warehouse-db", "limit": 3}},
			{"id": "other", "type": "free", "split": 1, "input": []int{300, 300, 300, 300, 300, 300, 300, 300}},
		}}
	}
	start := time.Now()
	wfs := []string{e.submit(job("a")), e.submit(job("b"))}
	var all []*events.Result
	for _, wf := range wfs {
		out := e.final(wf, time.Minute)
		if out.Status != events.OutcomeSuccess || out.Metadata.Tasks.Completed != 23 {
			t.Fatalf("%s: status %s, tasks %+v", wf, out.Status, out.Metadata.Tasks)
		}
		_, rs := e.results(wf)
		for _, r := range rs {
			if r.Step == "load" {
				all = append(all, r)
			}
		}
	}
	if len(all) != 30 {
		t.Fatalf("%d results of the keyed step, want 30", len(all))
	}
	if n := maxOverlap(all); n > 3 {
		t.Errorf("%d tasks holding the key ran at once (by their results' times), want at most 3", n)
	} else if n < 2 {
		t.Errorf("at most %d keyed task ran at once: the limit of 3 was not used", n)
	}
	if n := keyed.most.Load(); n > 3 {
		t.Errorf("%d keyed handlers ran at once, want at most 3", n)
	}
	if n := plain.most.Load(); n < 4 {
		t.Errorf("at most %d unkeyed tasks ran at once beside them: the waiting tasks blocked the agents' slots", n)
	}
	t.Logf("30 tasks of 150 ms at a limit of 3: %v (at least 1.5 s), most at once %d", time.Since(start).Round(time.Millisecond), keyed.most.Load())
}

// TestLock_ReclaimedFromKilledAgent: an agent process holding a lock (a
// key of limit 1) is SIGKILLed; the lock comes back within the permit TTL,
// the task it held and the tasks waiting for it finish on another agent,
// and no two ever held it at once.
func TestLock_ReclaimedFromKilledAgent(t *testing.T) {
	t.Parallel()
	const ttl = 2 * time.Second
	cfg := streams.Config{AckWait: time.Second, PermitTTL: ttl}
	e := newEnv(t, cfg)
	e.planner()
	e.aggregator()
	doomed := e.start("doomed", "agent", "--types", "sleep", "--id", "doomed", "--concurrency", "4", "--ack-wait", "1s")
	wf := e.submit(map[string]any{"steps": []map[string]any{
		{"id": "migrate", "type": "sleep", "split": 1, "input": []int{3000, 500, 500, 500}, "concurrency": map[string]any{"key": "schema", "limit": 1}},
	}})
	waitFor(t, 30*time.Second, "the doomed agent to take the lock", func() bool {
		return len(e.events(wf, events.EventStarted)) >= 1
	})
	doomed.kill(t)
	killed := time.Now()
	e.start("survivor", "agent", "--types", "sleep", "--id", "survivor", "--concurrency", "4", "--ack-wait", "1s")

	out := e.final(wf, time.Minute)
	if out.Status != events.OutcomeSuccess || out.Metadata.Tasks.Completed != 4 {
		t.Fatalf("status %s, tasks %+v", out.Status, out.Metadata.Tasks)
	}
	finals, all := e.results(wf)
	if len(finals) != 4 || len(all) != 4 {
		t.Errorf("%d results for %d tasks, want 4 for 4", len(all), len(finals))
	}
	if n := maxOverlap(all); n != 1 {
		t.Errorf("%d tasks held the lock at once, want 1", n)
	}
	first := slices.MinFunc(all, func(a, b *events.Result) int { return int(min(max(a.Started-b.Started, -1), 1)) })
	reclaimed := time.Unix(0, first.Started).Sub(killed)
	// The lock ages out within the TTL after the last renewal; the
	// server's expiry pass and the waiters' backoff add up to about a second.
	if reclaimed > ttl+2*time.Second {
		t.Errorf("the lock came back %v after the kill, want within the %v TTL (plus expiry and polling)", reclaimed, ttl)
	}
	t.Logf("lock reclaimed %v after the kill (TTL %v)", reclaimed.Round(time.Millisecond), ttl)
}

// TestRate_TenPerSecond: 50 tasks at "10/s" (burst 1) on two agents with
// 16 slots in all: their starts span at least 4.5 s, and the workflow
// takes at most 6 s.
func TestRate_TenPerSecond(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	noop := agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) { return 1, nil })
	e.agent("rated-1", 8, map[string]agent.Handler{"call": noop})
	e.agent("rated-2", 8, map[string]agent.Handler{"call": noop})
	in := make([]int, 50)
	start := time.Now()
	wf := e.submit(map[string]any{"steps": []map[string]any{
		{"id": "call", "type": "call", "split": 1, "input": in, "rate": "10/s"},
	}})
	out := e.final(wf, time.Minute)
	took := time.Since(start)
	if out.Status != events.OutcomeSuccess || out.Metadata.Tasks.Completed != 50 {
		t.Fatalf("status %s, tasks %+v", out.Status, out.Metadata.Tasks)
	}
	_, all := e.results(wf)
	var starts []int64
	for _, r := range all {
		starts = append(starts, r.Started)
	}
	slices.Sort(starts)
	span := time.Duration(starts[len(starts)-1] - starts[0])
	if span < 4500*time.Millisecond {
		t.Errorf("50 starts at 10/s spanned %v, want at least 4.5 s", span)
	}
	// The limiter holds tasks back no longer than the rate asks: the
	// starts, not the whole run (agents' start-up, planning), are bounded.
	if span > 6500*time.Millisecond {
		t.Errorf("50 starts at 10/s spanned %v, want at most 6.5 s", span)
	}
	t.Logf("50 tasks at 10/s: starts spanned %v, %v from submission to the final output", span, took)
	// No second had more than 10 starts (burst 1: a sliding window of
	// one second holds at most 10 + 1).
	for i := range starts {
		j := i
		for j < len(starts) && starts[j]-starts[i] < int64(time.Second) {
			j++
		}
		if j-i > 11 {
			t.Fatalf("%d starts within one second from start %d", j-i, i)
		}
	}
	t.Logf("50 tasks at 10/s: starts spanned %v, the workflow took %v", span.Round(time.Millisecond), took.Round(time.Millisecond))
}

// TestLimit_TypeCapAtRunTime: `baton limit set --type T 2` caps a type's
// running tasks system-wide for tasks that start from then on (on agents
// already running), and `baton limit clear` lifts it.
func TestLimit_TypeCapAtRunTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	var capped sleeper
	e.agent("cap-1", 4, map[string]agent.Handler{"capped": capped.handler()})
	e.agent("cap-2", 4, map[string]agent.Handler{"capped": capped.handler()})
	baton := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(filepath.Join(bin, "baton"), append(args, "--server", e.url())...).CombinedOutput()
		if err != nil {
			t.Fatalf("baton %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// The agents watch the limits bucket on e.nc: once the server answered
	// a flush on it after the cap was stored, the update is on its way to
	// their watch, ahead of any task.
	setAndFlush := func(args ...string) {
		baton(args...)
		if err := e.nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	setAndFlush("limit", "set", "--type", "capped", "2")
	ms := []int{200, 200, 200, 200, 200, 200, 200, 200, 200, 200}
	wf := e.submit(map[string]any{"steps": []map[string]any{{"id": "c", "type": "capped", "split": 1, "input": ms}}})
	out := e.final(wf, time.Minute)
	if out.Status != events.OutcomeSuccess {
		t.Fatalf("status %s", out.Status)
	}
	_, all := e.results(wf)
	if n := maxOverlap(all); n > 2 {
		t.Errorf("%d tasks of a type capped at 2 ran at once", n)
	}
	if got := baton("limit", "ls"); !strings.Contains(got, `"limit": 2`) {
		t.Errorf("limit ls: %s", got)
	}
	setAndFlush("limit", "clear", "--type", "capped")
	capped.most.Store(0)
	wf = e.submit(map[string]any{"steps": []map[string]any{{"id": "c", "type": "capped", "split": 1, "input": ms}}})
	e.final(wf, time.Minute)
	_, all = e.results(wf)
	if n := maxOverlap(all); n <= 2 {
		t.Errorf("at most %d tasks ran at once after the cap was cleared, want more than 2 (8 slots)", n)
	}
}

// TestPause_HandsBackTasksWaitingForALock: pausing a workflow hands back
// its tasks that wait for a lock (they have not started), so the
// checkpoint lists only the holder as running; resumed, every task runs
// once, one at a time.
func TestPause_HandsBackTasksWaitingForALock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	var locked sleeper
	e.agent("lock-1", 4, map[string]agent.Handler{"locked": locked.handler()})
	e.agent("lock-2", 4, map[string]agent.Handler{"locked": locked.handler()})
	// Any of the four can take the lock first; each holds it long enough
	// to be running still when the pause arrives.
	wf := e.submit(map[string]any{"steps": []map[string]any{
		{"id": "m", "type": "locked", "split": 1, "input": []int{1500, 1500, 1500, 1500}, "concurrency": map[string]any{"key": "one-at-a-time", "limit": 1}},
	}})
	waitFor(t, 30*time.Second, "a task to take the lock", func() bool { return len(e.events(wf, events.EventStarted)) >= 1 })
	cp := must(e.cl.Pause(e.ctl(), wf, client.PauseOptions{}))(t)
	if len(cp.Running) != 1 || len(cp.Pending) != 3 {
		t.Fatalf("checkpoint running %v, pending %v: want the lock's holder running and the 3 waiting tasks pending", cp.Running, cp.Pending)
	}
	waitFor(t, 30*time.Second, "the holder to finish", func() bool { f, _ := e.results(wf); return len(f) == 1 })
	must(e.cl.Resume(e.ctl(), wf))(t)
	out := e.final(wf, time.Minute)
	if out.Status != events.OutcomeSuccess || out.Metadata.Tasks.Completed != 4 {
		t.Fatalf("status %s, tasks %+v", out.Status, out.Metadata.Tasks)
	}
	finals, all := e.results(wf)
	if len(finals) != 4 || len(all) != 4 {
		t.Errorf("%d results for %d tasks, want 4 for 4", len(all), len(finals))
	}
	if n := maxOverlap(all); n != 1 {
		t.Errorf("%d tasks held the lock at once", n)
	}
}

// TestLock_LostPermitStopsItsTask: a lock taken from under its holder (a
// forger with the agent role deletes or overwrites it) is noticed at the
// holder's next renewal: the handler is cancelled and the task handed back
// at no cost of an attempt; it runs again once the lock is free.
func TestLock_LostPermitStopsItsTask(t *testing.T) {
	t.Parallel()
	cfg := streams.Config{PermitTTL: time.Second}
	e := newEnv(t, cfg)
	e.planner()
	e.aggregator()
	var runs atomic.Int64
	stopped := make(chan time.Time, 1)
	e.agent("holder", 2, map[string]agent.Handler{"hold": agent.HandlerFunc(func(ctx context.Context, _ *agent.Task) (any, error) {
		if runs.Add(1) > 1 {
			return "second run", nil
		}
		<-ctx.Done() // the first run holds the lock until it is told it lost it
		stopped <- time.Now()
		return nil, ctx.Err()
	})})
	wf := e.submit(map[string]any{"steps": []map[string]any{
		{"id": "h", "type": "hold", "retries": 0, "concurrency": map[string]any{"key": "stolen", "limit": 1}},
	}})
	waitFor(t, 30*time.Second, "the task to take the lock", func() bool { return len(e.events(wf, events.EventStarted)) >= 1 })
	kv, err := e.js.KeyValue(t.Context(), cfg.PermitsBucket())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "k.stolen.0", []byte(`{"holder":"forger"}`)); err != nil {
		t.Fatal(err)
	}
	stolen := time.Now()
	select {
	case at := <-stopped:
		if d := at.Sub(stolen); d > time.Second {
			t.Errorf("the holder stopped %v after its lock was taken, want within a quarter of the 1 s TTL (plus a renewal's round trip)", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the holder never learnt it lost its lock")
	}
	out := e.final(wf, time.Minute)
	if out.Status != events.OutcomeSuccess {
		t.Fatalf("status %s: %+v", out.Status, out.Errors)
	}
	_, all := e.results(wf)
	if len(all) != 1 || all[0].Attempts != 1 {
		t.Fatalf("results %+v: want one, on attempt 1 (the hand-back costs none; the step has no retries)", all)
	}
	if n := runs.Load(); n != 2 {
		t.Errorf("the handler ran %d times, want 2", n)
	}
}
