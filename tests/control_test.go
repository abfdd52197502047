package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
)

// ctl returns a context for one control request.
func (e *env) ctl() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

// must returns the reply of a control request, failing the test on its
// error: must(e.cl.Status(ctx, wf))(t).
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatalf("control request: %v", err)
		}
		return v
	}
}

// waitReady waits until both control services answer: the planner's (it
// refuses a pause that names nothing) and the monitor's (agents).
func (e *env) waitReady() {
	e.t.Helper()
	waitFor(e.t, 30*time.Second, "the control services", func() bool {
		_, perr := e.cl.Pause(e.ctl(), "", client.PauseOptions{})
		_, aerr := e.cl.Agents(e.ctl())
		return errors.Is(perr, events.ErrBadRequest) && aerr == nil
	})
}

// startsAfter counts a workflow's started events after t0.
func (e *env) startsAfter(wf string, t0 time.Time) []events.Event {
	var out []events.Event
	for _, ev := range e.events(wf, events.EventStarted) {
		if ev.Time.After(t0) {
			out = append(out, ev)
		}
	}
	return out
}

// TestPause_WorkflowSurvivesRestartOfEverything pauses a workflow mid-run:
// no task of it starts after the pause, another workflow completes
// meanwhile; then every service and the server are killed and started
// again, the workflow is still paused, and once resumed it completes with
// every task run exactly once.
func TestPause_WorkflowSurvivesRestartOfEverything(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := natstest.StartIn(t, dir, -1)
	e := newEnvOn(t, srv, streams.Config{})
	procs := func(e *env) []*proc {
		return []*proc{
			e.start("planner", "planner"), e.start("aggregator", "aggregator"),
			e.start("agent-1", "agent", "--id", "agent-1", "--types", "sleep", "--concurrency", "3"),
			e.start("agent-2", "agent", "--id", "agent-2", "--types", "sleep", "--concurrency", "3"),
		}
	}
	ps := procs(e)
	naps := make([]int, 30)
	for i := range naps {
		naps[i] = 300
	}
	e.waitReady()
	wf := e.submit(map[string]any{"id": "paused-one", "steps": []map[string]any{{"id": "nap", "type": "sleep", "split": 1, "input": naps}}})
	waitFor(t, 30*time.Second, "some tasks to finish", func() bool { f, _ := e.results(wf); return len(f) >= 6 })

	cp := must(e.cl.Pause(e.ctl(), wf, client.PauseOptions{}))(t)
	paused := time.Now()
	if cp.Status != events.WorkflowPaused || len(cp.Done)+len(cp.Running)+len(cp.Pending) != 30 || len(cp.Pending) == 0 {
		t.Fatalf("checkpoint %+v", cp)
	}
	// Another workflow runs to the end while this one is paused.
	other := e.final(e.submit(map[string]any{"steps": []map[string]any{{"id": "quick", "type": "sleep", "split": 1, "input": []int{10, 10, 10, 10}}}}), time.Minute)
	if other.Status != events.OutcomeSuccess {
		t.Fatalf("other workflow: %s", other.Status)
	}
	// The tasks that were running finish; nothing else starts.
	waitFor(t, 30*time.Second, "the running tasks to finish", func() bool {
		f, _ := e.results(wf)
		return len(f) == len(cp.Done)+len(cp.Running)
	})
	if late := e.startsAfter(wf, paused.Add(time.Second)); len(late) > 0 {
		t.Fatalf("%d tasks started more than 1s after the pause: %+v", len(late), late[0])
	}

	// Kill everything, the server too, and start it all again.
	for _, p := range ps {
		p.kill(t)
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	srv2 := natstest.StartIn(t, dir, -1)
	e2 := newEnvOn(t, srv2, streams.Config{})
	procs(e2)
	e2.waitReady()
	st := must(e2.cl.Status(e2.ctl(), wf))(t)
	if len(st.Workflows) != 1 || st.Workflows[0].Status != events.WorkflowPaused {
		t.Fatalf("after the restart: %+v", st.Workflows)
	}
	restarted := time.Now()
	rr := must(e2.cl.Resume(e2.ctl(), wf))(t)
	if len(rr.Queued) != len(cp.Pending) {
		t.Errorf("resume queued %d tasks, want the %d pending at the pause", len(rr.Queued), len(cp.Pending))
	}
	out := e2.final(wf, 2*time.Minute)
	if out.Status != events.OutcomeSuccess || out.Metadata.Tasks.Completed != 30 {
		t.Fatalf("status %s tasks %+v", out.Status, out.Metadata.Tasks)
	}
	starts := map[string]int{}
	// Started events are not stored: each env heard those of its server.
	first := e.events(wf, events.EventStarted)
	for _, ev := range append(first, e2.heardStarts(wf, atLeast(30-len(first)))...) {
		starts[ev.Task]++
		if ev.Time.After(paused.Add(time.Second)) && ev.Time.Before(restarted) {
			t.Errorf("task %s started while paused", ev.Task)
		}
	}
	finals, all := e2.results(wf)
	if len(starts) != 30 || len(finals) != 30 || len(all) != 30 {
		t.Errorf("%d tasks started, %d with results, %d results; want 30 each", len(starts), len(finals), len(all))
	}
	for task, n := range starts {
		if n != 1 {
			t.Errorf("task %s started %d times", task, n)
		}
	}
}

// TestPause_LaneUntilAndNatsCLI: a lane paused for 2s holds its tasks and
// resumes by itself; a lane paused with `nats consumer pause` shows as
// paused in status, and baton resumes it.
func TestPause_LaneUntilAndNatsCLI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	e.agent("worker", 4, map[string]agent.Handler{"noop": agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) { return t.Input, nil })})
	e.waitReady()
	lr := must(e.cl.PauseLane(e.ctl(), client.Lane{Type: "noop", Priority: 3}, 2*time.Second))(t)
	if len(lr.Lanes) != 1 || !lr.Lanes[0].Paused || lr.Lanes[0].PausedUntil == nil {
		t.Fatalf("lane pause reply %+v", lr)
	}
	wf := e.submit(map[string]any{"steps": []map[string]any{{"id": "n", "type": "noop", "split": 1, "input": []int{1, 2, 3}}}})
	out := e.final(wf, time.Minute)
	if out.Status != events.OutcomeSuccess {
		t.Fatalf("status %s", out.Status)
	}
	until := *lr.Lanes[0].PausedUntil
	for _, ev := range e.heardStarts(wf, atLeast(3)) {
		if ev.Time.Before(until.Add(-50 * time.Millisecond)) {
			t.Errorf("task %s started %v before the lane's pause ended", ev.Task, until.Sub(ev.Time))
		}
	}
	lane := func(name string) events.LaneState {
		st := must(e.cl.Status(e.ctl(), ""))(t)
		for _, l := range st.Lanes {
			if l.Lane == name {
				return l
			}
		}
		t.Fatalf("no lane %s in %+v", name, st.Lanes)
		return events.LaneState{}
	}
	if lane("noop.3").Paused {
		t.Errorf("lane noop.3 still paused after its 2s")
	}

	cmd := exec.Command("go", "tool", "nats", "--server", e.url(), "consumer", "pause", e.cfg.TasksStream(), streams.LaneConsumer("noop", 2), "10m", "--force")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nats consumer pause: %v\n%s", err, out)
	}
	if l := lane("noop.2"); !l.Paused || l.PausedUntil == nil || time.Until(*l.PausedUntil) < 9*time.Minute {
		t.Errorf("after nats consumer pause, status shows %+v", l)
	}
	lr = must(e.cl.ResumeLane(e.ctl(), client.Lane{Type: "noop", Priority: 2}))(t)
	if len(lr.Lanes) != 1 || lr.Lanes[0].Paused {
		t.Errorf("resume reply %+v", lr.Lanes)
	}
	if l := lane("noop.2"); l.Paused {
		t.Errorf("lane still paused after baton resume: %+v", l)
	}
}

// blocker is a handler that runs until its context is cancelled and
// records when each task started and stopped.
type blocker struct {
	mu      sync.Mutex
	started map[string]string // "<wf>/<task>" → agent
	stopped map[string]time.Time
}

func (b *blocker) handler() agent.Handler {
	return agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) {
		b.mu.Lock()
		if b.started == nil {
			b.started, b.stopped = map[string]string{}, map[string]time.Time{}
		}
		b.started[t.Workflow+"/"+t.ID] = t.Agent
		b.mu.Unlock()
		<-ctx.Done()
		b.mu.Lock()
		b.stopped[t.Workflow+"/"+t.ID] = time.Now()
		b.mu.Unlock()
		return nil, ctx.Err()
	})
}

func (b *blocker) runningOn() map[string]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]string{}
	for k, v := range b.started {
		if _, done := b.stopped[k]; !done {
			out[k] = v
		}
	}
	return out
}

func (b *blocker) stoppedAt(task string) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	at, ok := b.stopped[task]
	return at, ok
}

// TestCancel_Selectors cancels by task id (with cascade and with release),
// by agent, by priority range and by type; each reply names exactly the
// right tasks and cancelled running tasks stop within a second.
func TestCancel_Selectors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	var blk blocker
	var mu sync.Mutex
	deps := map[string][]string{} // task → statuses of its dependencies
	echo := agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) {
		mu.Lock()
		for _, d := range t.Deps {
			deps[t.ID] = append(deps[t.ID], d.Task+":"+d.Status)
		}
		mu.Unlock()
		return "ok", nil
	})
	for _, id := range []string{"agent-a", "agent-b"} {
		e.agent(id, 2, map[string]agent.Handler{"block": blk.handler(), "echo": echo, "other": blk.handler()})
	}
	e.waitReady()
	chain := func(id string) string {
		return e.submit(map[string]any{"id": id, "steps": []map[string]any{
			{"id": "a", "type": "block"},
			{"id": "b", "type": "echo", "after": []string{"a"}},
			{"id": "c", "type": "echo", "after": []string{"b"}},
		}})
	}
	waitRunning := func(t *testing.T, n int) map[string]string {
		var run map[string]string
		waitFor(t, 30*time.Second, fmt.Sprintf("%d blocked tasks running", n), func() bool {
			run = blk.runningOn()
			return len(run) == n
		})
		return run
	}
	checkStopped := func(t *testing.T, at time.Time, tasks ...string) {
		t.Helper()
		for _, task := range tasks {
			var stopped time.Time
			waitFor(t, 5*time.Second, "task "+task+" to stop", func() bool {
				var ok bool
				stopped, ok = blk.stoppedAt(task)
				return ok
			})
			if d := stopped.Sub(at); d > time.Second {
				t.Errorf("task %s stopped %v after the cancel reply", task, d)
			}
		}
	}

	t.Run("task with cascade", func(t *testing.T) {
		wf := chain("cascade")
		waitRunning(t, 1)
		r := must(e.cl.Cancel(e.ctl(), client.CancelSelector{Workflow: wf, Tasks: []string{"a"}}))(t)
		checkStopped(t, time.Now(), wf+"/a")
		if fmt.Sprint(r.Cancelled, r.Dependents) != "[a] [b c]" || r.Status != "cancelled" {
			t.Errorf("reply %+v", r)
		}
		out := e.final(wf, time.Minute)
		if c := out.Metadata.Tasks; c.Cancelled != 3 || out.Status != events.OutcomeFailed {
			t.Errorf("status %s tasks %+v", out.Status, c)
		}
	})
	t.Run("task with release", func(t *testing.T) {
		wf := chain("release")
		waitRunning(t, 1)
		r := must(e.cl.Cancel(e.ctl(), client.CancelSelector{Workflow: wf, Tasks: []string{"a"}, ReleaseDependents: true}))(t)
		checkStopped(t, time.Now(), wf+"/a")
		if fmt.Sprint(r.Cancelled, r.Dependents, r.Released) != "[a] [] [b]" {
			t.Errorf("reply %+v", r)
		}
		out := e.final(wf, time.Minute)
		if c := out.Metadata.Tasks; c.Cancelled != 1 || c.Completed != 2 {
			t.Errorf("tasks %+v", c)
		}
		mu.Lock()
		got := fmt.Sprint(deps["b"])
		mu.Unlock()
		if got != "[a:cancelled]" {
			t.Errorf("b got dependencies %s, want a marked cancelled", got)
		}
	})
	t.Run("agent", func(t *testing.T) {
		naps := []int{1, 2, 3, 4}
		wf := e.submit(map[string]any{"id": "by-agent", "steps": []map[string]any{{"id": "w", "type": "block", "split": 1, "input": naps}}})
		run := waitRunning(t, 4)
		var want []string
		for task, ag := range run {
			if ag == "agent-a" {
				want = append(want, task)
			}
		}
		slices.Sort(want)
		r := must(e.cl.Cancel(e.ctl(), client.CancelSelector{Agent: "agent-a"}))(t)
		checkStopped(t, time.Now(), want...)
		if len(want) != 2 || fmt.Sprint(r.Cancelled) != fmt.Sprint(want) {
			t.Errorf("cancelled %v, want what agent-a ran: %v", r.Cancelled, want)
		}
		rest := must(e.cl.Cancel(e.ctl(), client.CancelSelector{Workflow: wf, Type: "block"}))(t)
		if len(rest.Cancelled) != 2 {
			t.Errorf("cancel the rest by type: %+v", rest)
		}
		e.final(wf, time.Minute)
	})
	t.Run("priority range and type", func(t *testing.T) {
		// Nothing serves "idle": its tasks stay queued, and are withdrawn.
		wf := e.submit(map[string]any{"id": "by-priority", "steps": []map[string]any{
			{"id": "p1", "type": "idle", "priority": 1, "split": 1, "input": []int{1, 2}},
			{"id": "p3", "type": "idle", "priority": 3, "split": 1, "input": []int{1, 2}},
			{"id": "p4", "type": "other", "priority": 4},
			{"id": "p5", "type": "idle", "priority": 5},
		}})
		waitRunning(t, 1) // p4, on "other"
		r := must(e.cl.Cancel(e.ctl(), client.CancelSelector{Workflow: wf, MinPriority: 2, MaxPriority: 4}))(t)
		checkStopped(t, time.Now(), wf+"/p4")
		if fmt.Sprint(r.Cancelled) != "[p3-0 p3-1 p4]" {
			t.Errorf("priorities 2-4: cancelled %v", r.Cancelled)
		}
		r = must(e.cl.Cancel(e.ctl(), client.CancelSelector{Workflow: wf, Type: "idle"}))(t)
		if fmt.Sprint(r.Cancelled) != "[p1-0 p1-1 p5]" {
			t.Errorf("type idle: cancelled %v", r.Cancelled)
		}
		out := e.final(wf, time.Minute)
		if out.Metadata.Tasks.Cancelled != 6 {
			t.Errorf("tasks %+v", out.Metadata.Tasks)
		}
		s, err := e.js.Stream(context.Background(), e.cfg.TasksStream())
		if err != nil {
			t.Fatal(err)
		}
		if n := s.CachedInfo().State.Msgs; n != 0 {
			t.Errorf("%d tasks left on the lanes after cancelling them", n)
		}
	})
}

// TestControl_BadRequests: bad control requests get precise errors and
// change nothing.
func TestControl_BadRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	e.agent("worker", 2, map[string]agent.Handler{"noop": agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) { return 1, nil })})
	e.waitReady()
	done := e.submit(map[string]any{"id": "finished", "steps": []map[string]any{{"id": "x", "type": "noop"}}})
	e.final(done, time.Minute)
	ctx := e.ctl()
	for _, tc := range []struct {
		name string
		call func() error
		code int
		says string
	}{
		{"unknown workflow", func() error { _, err := e.cl.Pause(ctx, "nope", client.PauseOptions{}); return err }, 404, "unknown workflow nope"},
		{"pause a finished workflow", func() error { _, err := e.cl.Pause(ctx, done, client.PauseOptions{}); return err }, 409, "has finished"},
		{"resume a finished workflow", func() error { _, err := e.cl.Resume(ctx, done); return err }, 409, "has finished"},
		{"pause nothing", func() error { _, err := e.cl.Pause(ctx, "", client.PauseOptions{}); return err }, 400, "name a workflow"},
		{"cancel without selector", func() error { _, err := e.cl.Cancel(ctx, client.CancelSelector{Workflow: done}); return err }, 400, "cancel what"},
		{"cancel an unknown agent", func() error { _, err := e.cl.Cancel(ctx, client.CancelSelector{Agent: "ghost"}); return err }, 404, "agent ghost"},
		{"reversed priority range", func() error {
			_, err := e.cl.Cancel(ctx, client.CancelSelector{MinPriority: 4, MaxPriority: 2})
			return err
		}, 400, "min_priority 4"},
		{"reprioritize without target", func() error { _, err := e.cl.Reprioritize(ctx, "nope", "", 1); return err }, 404, "unknown workflow"},
		{"bad priority", func() error { _, err := e.cl.Reprioritize(ctx, done, "", 9); return err }, 400, "priorities are 1"},
		{"bad id", func() error { _, err := e.cl.Stop(ctx, "a b"); return err }, 400, "not an id"},
		{"status of an unknown workflow", func() error { _, err := e.cl.Status(ctx, "nope"); return err }, 404, "unknown workflow nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var ce *events.ControlError
			if !errors.As(err, &ce) || ce.Code != tc.code || !strings.Contains(ce.Message, tc.says) {
				t.Errorf("error %v (%+v), want code %d saying %q", err, ce, tc.code, tc.says)
			}
			// The code maps onto the sentinel of its kind.
			want := map[int]error{400: events.ErrBadRequest, 404: events.ErrNotFound, 409: events.ErrConflict}[tc.code]
			if !errors.Is(err, want) {
				t.Errorf("errors.Is(%v, %v) is false", err, want)
			}
		})
	}
	for _, body := range []string{`{"workflow":`, `{"workflow": "x", "colour": 1}`, `[1]`} {
		m, err := e.nc.Request(e.cfg.Subjects().Control(events.VerbPause), []byte(body), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if code := m.Header.Get("Nats-Service-Error-Code"); code != "400" {
			t.Errorf("body %s: code %q, error %q", body, code, m.Header.Get("Nats-Service-Error"))
		}
	}
	st := must(e.cl.Status(e.ctl(), done))(t)
	if len(st.Workflows) != 1 || st.Workflows[0].Status != events.WorkflowCompleted || st.Workflows[0].Outcome != events.OutcomeSuccess {
		t.Errorf("the finished workflow changed: %+v", st.Workflows)
	}
}

// TestStop_RestartRetryFailed stops a workflow mid-run (pending tasks are
// withdrawn, running ones finish, status stopped), then restarts it with
// --retry-failed: the pending tasks run, the failed one runs again and now
// succeeds, and nothing that completed runs twice.
func TestStop_RestartRetryFailed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	var healthy sync.Mutex
	broken := true
	var calls counter
	e.agent("worker", 2, map[string]agent.Handler{
		"sleep": calls.wrap(agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) {
			select {
			case <-time.After(200 * time.Millisecond):
				return "slept", nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})),
		"fragile": calls.wrap(agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) {
			healthy.Lock()
			defer healthy.Unlock()
			if broken {
				return nil, agent.Permanent(errors.New("the database is down"))
			}
			return "fixed", nil
		})),
	})
	e.waitReady()
	wf := e.submit(map[string]any{"id": "stoppable", "steps": []map[string]any{
		{"id": "f", "type": "fragile", "priority": 1},
		{"id": "s", "type": "sleep", "split": 1, "input": []int{1, 2, 3, 4, 5, 6, 7, 8}},
	}})
	waitFor(t, 30*time.Second, "the fragile task to fail", func() bool {
		_, all := e.results(wf)
		return slices.ContainsFunc(all, func(r *events.Result) bool { return r.Task == "f" })
	})
	cp := must(e.cl.Stop(e.ctl(), wf))(t)
	stopped := time.Now()
	if cp.Status != events.WorkflowStopped || len(cp.Pending) == 0 || !slices.Contains(cp.Done, "f") {
		t.Fatalf("checkpoint %+v", cp)
	}
	waitFor(t, 30*time.Second, "the running tasks to finish", func() bool {
		f, _ := e.results(wf)
		return len(f) == len(cp.Done)+len(cp.Running)
	})
	if late := e.startsAfter(wf, stopped.Add(time.Second)); len(late) > 0 {
		t.Fatalf("%d tasks started after the stop", len(late))
	}
	st := must(e.cl.Status(e.ctl(), wf))(t)
	if st.Workflows[0].Status != events.WorkflowStopped {
		t.Fatalf("status %s", st.Workflows[0].Status)
	}
	healthy.Lock()
	broken = false
	healthy.Unlock()
	rr := must(e.cl.Restart(e.ctl(), wf, client.RestartOptions{RetryFailed: true}))(t)
	if !slices.Contains(rr.Queued, "f") || len(rr.Queued) != len(cp.Pending)+1 {
		t.Errorf("restart queued %v; want f and the %d pending", rr.Queued, len(cp.Pending))
	}
	out := e.final(wf, time.Minute)
	if out.Status != events.OutcomeSuccess || out.Metadata.Tasks.Completed != 9 {
		t.Fatalf("status %s tasks %+v errors %+v", out.Status, out.Metadata.Tasks, out.Errors)
	}
	for task, n := range calls.counts() {
		if want := map[bool]int{true: 2, false: 1}[task == "f"]; n != want {
			t.Errorf("task %s ran %d times, want %d", task, n, want)
		}
	}
}

// TestReprioritize_MovesQueuedTasksAhead queues two workflows at the same
// priority, moves the second (and then one task of the first) ahead, and
// checks the order in which a single-slot agent starts them.
func TestReprioritize_MovesQueuedTasksAhead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	job := func(id string) string {
		return e.submit(map[string]any{"id": id, "steps": []map[string]any{{"id": "t", "type": "noop", "priority": 4, "split": 1, "input": []int{0, 1, 2}}}})
	}
	first, second := job("first"), job("second")
	e.waitReady()
	mv := must(e.cl.Reprioritize(e.ctl(), second, "", 1))(t)
	if fmt.Sprint(mv.Moved) != "[t-0 t-1 t-2]" || mv.Priority != 1 {
		t.Errorf("reprioritize reply %+v", mv)
	}
	mv = must(e.cl.Reprioritize(e.ctl(), first, "t-2", 2))(t)
	if fmt.Sprint(mv.Moved) != "[t-2]" {
		t.Errorf("reprioritize one task: %+v", mv)
	}
	var mu sync.Mutex
	var order []string
	e.agent("single", 1, map[string]agent.Handler{"noop": agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) {
		mu.Lock()
		order = append(order, t.Workflow+"/"+t.ID)
		mu.Unlock()
		return t.Input, nil
	})})
	e.final(first, time.Minute)
	e.final(second, time.Minute)
	mu.Lock()
	defer mu.Unlock()
	if got := fmt.Sprint(order); got != "[second/t-0 second/t-1 second/t-2 first/t-2 first/t-0 first/t-1]" {
		t.Errorf("start order %s", got)
	}
	st := must(e.cl.Status(e.ctl(), ""))(t)
	for _, l := range st.Lanes {
		if l.Backlog != 0 {
			t.Errorf("lane %s still holds %d tasks", l.Lane, l.Backlog)
		}
	}
}

// TestSeed_KillAgent3 is the seed's test commands: ten tasks run in
// parallel on four agent processes; agent 3 is killed with SIGKILL mid-run;
// it is marked failed within two heartbeats, its tasks are redelivered to
// the others, every task completes and the recovery status reads
// "recovered".
func TestSeed_KillAgent3(t *testing.T) {
	t.Parallel()
	flags := []string{"--ack-wait", "1s", "--agent-ttl", "1500ms"}
	e := newEnv(t, streams.Config{AckWait: time.Second, AgentTTL: 1500 * time.Millisecond})
	e.start("planner", "planner", flags...)
	e.start("aggregator", "aggregator", flags...)
	var third *proc
	for i := 1; i <= 4; i++ {
		p := e.start(fmt.Sprintf("agent-%d", i), "agent", append([]string{"--id", fmt.Sprintf("agent-%d", i), "--types", "sleep", "--concurrency", "3"}, flags...)...)
		if i == 3 {
			third = p
		}
	}
	var list []events.AgentInfo
	waitFor(t, 30*time.Second, "four agents", func() bool {
		var err error
		list, err = e.cl.Agents(e.ctl())
		return err == nil && len(list) == 4
	})
	naps := []int{1200, 1200, 1200, 1200, 1200, 1200, 1200, 1200, 1200, 1200}
	wf := e.submit(map[string]any{"id": "seed", "steps": []map[string]any{{"id": "nap", "type": "sleep", "split": 1, "input": naps}}})
	waitFor(t, 30*time.Second, "agent-3 to run a task", func() bool {
		return slices.ContainsFunc(e.events(wf, events.EventStarted), func(ev events.Event) bool { return ev.Agent == "agent-3" })
	})
	third.kill(t)
	killed := time.Now()
	waitFor(t, 10*time.Second, "agent-3 marked failed", func() bool {
		var err error
		if list, err = e.cl.Agents(e.ctl()); err != nil {
			return false
		}
		return slices.ContainsFunc(list, func(a events.AgentInfo) bool { return a.ID == "agent-3" && a.Status == events.AgentFailed })
	})
	if d := time.Since(killed); d > 2*500*time.Millisecond+500*time.Millisecond {
		t.Errorf("agent-3 marked failed %v after it died; heartbeats are 500ms apart", d)
	}
	out := e.final(wf, time.Minute)
	if out.Status != events.OutcomeSuccess || out.Metadata.Tasks.Completed != 10 {
		t.Fatalf("status %s tasks %+v", out.Status, out.Metadata.Tasks)
	}
	if out.Metadata.Recovery != events.RecoveryRecovered || out.Metadata.Recovered == 0 {
		t.Errorf("recovery %q (%d recovered), want recovered", out.Metadata.Recovery, out.Metadata.Recovered)
	}
	if slices.Contains(out.Metadata.Agents, "agent-3") {
		t.Errorf("a result came from the killed agent: %v", out.Metadata.Agents)
	}
	finals, all := e.results(wf)
	if len(finals) != 10 || len(all) != 10 {
		t.Errorf("%d results for %d tasks, want 10 and 10", len(all), len(finals))
	}
}

// TestRestart_WholeSystemMidRun stops every service with SIGTERM and the
// server in the middle of a workflow, starts them all again, and the
// workflow carries on where it was: every task runs once.
func TestRestart_WholeSystemMidRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := natstest.StartIn(t, dir, -1)
	e := newEnvOn(t, srv, streams.Config{})
	start := func(e *env) []*proc {
		return []*proc{
			e.start("agent-1", "agent", "--id", "agent-1", "--types", "sleep", "--concurrency", "2"),
			e.start("agent-2", "agent", "--id", "agent-2", "--types", "sleep", "--concurrency", "2"),
			e.start("planner", "planner"), e.start("aggregator", "aggregator"),
		}
	}
	ps := start(e)
	naps := make([]int, 20)
	for i := range naps {
		naps[i] = 250
	}
	wf := e.submit(map[string]any{"id": "whole", "steps": []map[string]any{{"id": "nap", "type": "sleep", "split": 1, "input": naps}}})
	waitFor(t, 30*time.Second, "4 results", func() bool { f, _ := e.results(wf); return len(f) >= 4 })
	for _, p := range ps {
		p.stop(t) // agents first: they drain while the planner still takes results
	}
	f, _ := e.results(wf)
	if len(f) == 20 {
		t.Fatalf("the workflow finished before the stop: nothing tested")
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	e2 := newEnvOn(t, natstest.StartIn(t, dir, -1), streams.Config{})
	start(e2)
	out := e2.final(wf, time.Minute)
	if out.Status != events.OutcomeSuccess || out.Metadata.Tasks.Completed != 20 {
		t.Fatalf("status %s tasks %+v", out.Status, out.Metadata.Tasks)
	}
	starts := map[string]int{}
	first := e.events(wf, events.EventStarted)
	heard := append(first, e2.heardStarts(wf, atLeast(20-len(first)))...)
	for _, ev := range heard {
		starts[ev.Task]++
	}
	for task, n := range starts {
		if n != 1 {
			t.Errorf("task %s started %d times", task, n)
		}
	}
	if t.Failed() {
		for _, ev := range heard {
			t.Logf("%s %s %s", ev.Time.Format("15:04:05.000"), ev.Agent, ev.Task)
		}
	}
	if len(starts) != 20 {
		t.Errorf("%d tasks started, want 20", len(starts))
	}
}

// TestCancel_ByAgentCommandAloneStillEnds: a cancel command sent straight
// to the agents (not through the planner, as anyone on the bus could)
// stops the task, and the workflow still ends, with the task cancelled,
// instead of waiting for it forever.
func TestCancel_ByAgentCommandAloneStillEnds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	var blk blocker
	e.agent("a", 1, map[string]agent.Handler{"block": blk.handler()})
	wf := e.submit(map[string]any{"id": "bypassed", "success_threshold": 0, "steps": []map[string]any{{"id": "b", "type": "block"}}})
	waitFor(t, 30*time.Second, "the task to run", func() bool { return blk.runningOn()[wf+"/b"] != "" })
	body, _ := json.Marshal(events.AgentCommand{Op: events.AgentOpCancel, Workflow: wf, Tasks: []string{"b"}})
	if _, err := e.nc.Request(e.cfg.Subjects().AgentControl(), body, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	out := e.final(wf, 30*time.Second)
	if c := out.Metadata.Tasks; c.Cancelled != 1 {
		t.Fatalf("tasks %+v, want the one cancelled", c)
	}
	finals, _ := e.results(wf)
	if finals["b"] != 1 {
		t.Fatalf("%d final results for b, want 1", finals["b"])
	}
}

// TestPause_NowCostsNoAttempt: a task with no retries, running when its
// workflow is paused with --now, is handed back and, once resumed, runs
// again on its first attempt and completes (a hand-back is not a failure).
func TestPause_NowCostsNoAttempt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	runs := make(chan int, 4)
	var calls atomic.Int32
	e.agent("a", 2, map[string]agent.Handler{
		"block": agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) {
			runs <- t.Attempt
			if t.Attempt > 1 {
				return nil, fmt.Errorf("attempt %d: the hand-back cost an attempt", t.Attempt)
			}
			if calls.Add(1) > 1 {
				return "done", nil
			}
			// The first run lasts until the pause ends it.
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(30 * time.Second):
				return nil, errors.New("the pause --now did not end the running task")
			}
		}),
	})
	run := func(what string) int {
		t.Helper()
		select {
		case a := <-runs:
			return a
		case <-time.After(30 * time.Second):
			t.Fatalf("no %s within 30s", what)
			return 0
		}
	}
	wf := e.submit(map[string]any{"steps": []map[string]any{{"id": "b", "type": "block", "retries": 0}}})
	if a := run("first run"); a != 1 {
		t.Fatalf("first run on attempt %d", a)
	}
	cl := e.cl
	if _, err := cl.Pause(e.ctl(), wf, client.PauseOptions{Now: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Resume(e.ctl(), wf); err != nil {
		t.Fatal(err)
	}
	if a := run("run after the resume"); a != 1 {
		t.Fatalf("after pause --now and resume the task ran on attempt %d, want 1", a)
	}
	out := e.final(wf, 30*time.Second)
	if out.Status != events.OutcomeSuccess {
		t.Fatalf("output %s %+v, want success", out.Status, out.Errors)
	}
}
