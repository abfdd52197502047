package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/planner"
	"github.com/nats-io/nats.go"
)

// gate is a handler that holds its tasks until the gate opens (or the task
// is cancelled).
type gate struct {
	once sync.Once
	ch   chan struct{}
	mu   sync.Mutex
	held map[string]bool // tasks waiting now
}

func newGate() *gate { return &gate{ch: make(chan struct{}), held: map[string]bool{}} }

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

func (g *gate) holding() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.held)
}

func (g *gate) handler() agent.Handler {
	return agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) {
		g.mu.Lock()
		g.held[t.ID] = true
		g.mu.Unlock()
		defer func() {
			g.mu.Lock()
			delete(g.held, t.ID)
			g.mu.Unlock()
		}()
		select {
		case <-g.ch:
			return "late " + t.ID, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
}

// flaky fails each task permanently while broken is above 0 for it: every
// task's first `fails` runs fail, later ones complete.
type flaky struct {
	mu    sync.Mutex
	fails map[string]int // task → failures left
	runs  map[string]int
	def   int
}

func (f *flaky) handler() agent.Handler {
	return agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.fails == nil {
			f.fails = map[string]int{}
		}
		if f.runs == nil {
			f.runs = map[string]int{}
		}
		f.runs[t.ID]++
		left, ok := f.fails[t.ID]
		if !ok {
			left = f.def
		}
		if left > 0 {
			f.fails[t.ID] = left - 1
			return nil, agent.Permanent(errors.New("not yet"))
		}
		f.fails[t.ID] = 0
		return "ok " + t.ID, nil
	})
}

func (f *flaky) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.def = 0
	clear(f.fails)
	for k := range f.runs {
		f.fails[k] = 0
	}
}

// outputKinds lists the kinds of a workflow's stored outputs, in order.
func (e *env) outputKinds(wf string) []string {
	e.t.Helper()
	var kinds []string
	for _, m := range e.stored(e.cfg.OutputsStream(), e.cfg.Subjects().Output(wf, "*")) {
		var out events.Output
		if err := json.Unmarshal(m.Data(), &out); err != nil {
			e.t.Fatal(err)
		}
		kinds = append(kinds, out.Kind)
	}
	return kinds
}

// storedEntries is the task entries of a workflow's stored partial outputs,
// as stored.
func (e *env) storedEntries(wf string) []map[string]json.RawMessage {
	e.t.Helper()
	var entries []map[string]json.RawMessage
	for _, m := range e.stored(e.cfg.OutputsStream(), e.cfg.Subjects().Output(wf, events.OutputPartial)) {
		var raw struct{ Results []map[string]json.RawMessage }
		if err := json.Unmarshal(m.Data(), &raw); err != nil {
			e.t.Fatal(err)
		}
		entries = append(entries, raw.Results...)
	}
	return entries
}

// TestCollect_Modes: batch publishes no partial output, only the final
// one; hybrid publishes a ready output once the critical task is done while
// a straggler still runs, then the final one; Follow and FollowWith show
// each mode's outputs.
func TestCollect_Modes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	g := newGate()
	e.agent("worker", 8, map[string]agent.Handler{
		"echo": agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) { return t.ID, nil }),
		"hold": g.handler(),
	})
	steps := []map[string]any{{"id": "n", "type": "echo", "split": 1, "input": []int{1, 2, 3, 4, 5, 6}}}

	t.Run("batch", func(t *testing.T) {
		wf := e.submit(map[string]any{"id": "batch", "collect": "batch", "steps": steps})
		out := e.final(wf, 30*time.Second)
		if out.Status != events.OutcomeSuccess || out.Metadata.Tasks.Completed != 6 {
			t.Fatalf("final %s %+v", out.Status, out.Metadata.Tasks)
		}
		if kinds := e.outputKinds(wf); !slices.Equal(kinds, []string{events.OutputFinal}) {
			t.Errorf("outputs %v, want the final one alone", kinds)
		}
		if rec := must(e.cl.Workflow(e.ctl(), wf))(t); rec.CollectMode() != events.CollectBatch {
			t.Errorf("record mode %q", rec.Mode)
		}
	})

	t.Run("stream", func(t *testing.T) {
		wf := e.submit(map[string]any{"id": "stream", "steps": steps})
		var seen []string
		tasks := map[string]string{} // task → its step, as Follow gives it
		out, err := e.cl.FollowWith(e.ctl(), wf, client.FollowOptions{Collect: events.CollectStream}, func(o *events.Output) error {
			seen = append(seen, o.Kind)
			for _, r := range o.Results {
				tasks[r.Task] = r.Step
			}
			return nil
		})
		if err != nil || out.Status != events.OutcomeSuccess {
			t.Fatalf("follow: %v %+v", err, out)
		}
		if len(tasks) != 6 || tasks["n-0"] != "n" || tasks["n-5"] != "n" {
			t.Errorf("partials gave tasks and steps %v, want n-0…n-5 of step n", tasks)
		}
		// Stored, a task's entry is its id, status and data alone: the
		// record gives its step.
		for _, r := range e.storedEntries(wf) {
			if len(r) != 3 || r["task"] == nil || r["status"] == nil || r["data"] == nil {
				t.Errorf("stored partial entry %s: want task, status and data alone", r)
			}
		}
		if !slices.Contains(seen, events.OutputPartial) || slices.Contains(seen, events.OutputReady) || seen[len(seen)-1] != events.OutputFinal {
			t.Errorf("outputs %v: want partials, then the final one", seen)
		}
		// Batch-following a streamed workflow shows the final output alone.
		seen = nil
		if _, err := e.cl.FollowWith(e.ctl(), wf, client.FollowOptions{Collect: events.CollectBatch}, func(o *events.Output) error {
			seen = append(seen, o.Kind)
			return nil
		}); err != nil || !slices.Equal(seen, []string{events.OutputFinal}) {
			t.Errorf("batch follow: %v %v", err, seen)
		}
	})

	t.Run("reduce", func(t *testing.T) {
		// The partials of a reduce carry the reduction so far, not each
		// task's data.
		wf := e.submit(map[string]any{"id": "reduce", "steps": steps, "aggregate": map[string]any{"strategy": "reduce", "op": "count", "field": "."}})
		if out := e.final(wf, 30*time.Second); out.Status != events.OutcomeSuccess || !strings.Contains(string(out.Data), `"value":6`) {
			t.Fatalf("final %s %s", out.Status, out.Data)
		}
		entries := e.storedEntries(wf)
		for _, r := range entries {
			if len(r) != 2 || r["task"] == nil || r["status"] == nil {
				t.Errorf("stored partial entry %s of a reduce: want task and status alone", r)
			}
		}
		if len(entries) != 6 {
			t.Errorf("%d entries in partial outputs, want 6", len(entries))
		}
	})

	t.Run("hybrid", func(t *testing.T) {
		wf := e.submit(map[string]any{"id": "hybrid", "collect": "hybrid", "steps": []map[string]any{
			{"id": "key", "type": "echo", "critical": true},
			{"id": "more", "type": "echo", "split": 1, "input": []int{1, 2}},
			{"id": "straggler", "type": "hold"},
		}})
		ready, err := e.cl.FollowWith(e.ctl(), wf, client.FollowOptions{UntilReady: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ready.Kind != events.OutputReady || ready.Status != events.OutcomeRunning {
			t.Fatalf("got %s %s, want the ready output", ready.Kind, ready.Status)
		}
		// The ready output does not wait for the straggler to start: on a
		// loaded machine its agent may take it just after.
		waitFor(t, 10*time.Second, "the straggler to run while the ready output stands", func() bool { return g.holding() == 1 })
		if ready.Progress.Done == ready.Progress.Total || len(ready.Missing) != 0 {
			t.Errorf("ready progress %+v missing %v: want the straggler still out and nothing missing", ready.Progress, ready.Missing)
		}
		if !strings.Contains(string(ready.Data), `"key"`) {
			t.Errorf("ready data %s lacks the critical task's result", ready.Data)
		}
		if _, err := e.cl.Final(e.ctl(), wf); !errors.Is(err, client.ErrNoFinal) {
			t.Errorf("final before the straggler: %v", err)
		}
		waitFor(t, 10*time.Second, "status to show the workflow ready", func() bool {
			st := must(e.cl.Status(e.ctl(), wf))(t)
			return len(st.Workflows) == 1 && st.Workflows[0].Ready && st.Workflows[0].Status == events.WorkflowRunning
		})
		g.open()
		out := e.final(wf, 30*time.Second)
		if out.Status != events.OutcomeSuccess || out.Metadata.Tasks.Completed != 4 {
			t.Fatalf("final %s %+v", out.Status, out.Metadata.Tasks)
		}
		kinds := e.outputKinds(wf)
		r, f := slices.Index(kinds, events.OutputReady), slices.Index(kinds, events.OutputFinal)
		if r < 0 || f < r || f != len(kinds)-1 || len(slices.DeleteFunc(slices.Clone(kinds), func(k string) bool { return k != events.OutputReady })) != 1 {
			t.Errorf("outputs %v: want one ready output before the final one", kinds)
		}
		// Every task is once in the partial outputs.
		seen := map[string]int{}
		for _, m := range e.stored(e.cfg.OutputsStream(), e.cfg.Subjects().Output(wf, events.OutputPartial)) {
			var o events.Output
			if err := json.Unmarshal(m.Data(), &o); err != nil {
				t.Fatal(err)
			}
			for _, r := range o.Results {
				seen[r.Task]++
			}
		}
		if len(seen) != 4 {
			t.Errorf("partials hold %v, want every task once", seen)
		}
		for task, n := range seen {
			if n != 1 {
				t.Errorf("task %s in %d partials", task, n)
			}
		}
	})
}

// TestStopWhen_EndsEarly: stop_when {"completed": N} and {"threshold":
// true} cancel the rest (running tasks stopped on their agents) with
// cancelled results of kind stop_when, and the final output comes at once
// with the right counts.
func TestStopWhen_EndsEarly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	var blk blocker
	e.agent("worker", 8, map[string]agent.Handler{
		"echo":  agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) { return t.ID, nil }),
		"block": blk.handler(),
	})
	for _, tc := range []struct {
		name     string
		job      map[string]any
		complete int
		cancel   int
		status   string
	}{
		{"completed", map[string]any{"stop_when": map[string]any{"completed": 3}}, 3, 4, events.OutcomePartial},
		{"threshold", map[string]any{"stop_when": map[string]any{"threshold": true}, "success_threshold": 0.4}, 3, 4, events.OutcomePartial},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := tc.job
			job["id"] = "stop-" + tc.name
			job["steps"] = []map[string]any{
				{"id": "quick", "type": "echo", "split": 1, "input": []int{1, 2, 3}},
				{"id": "slow", "type": "block", "split": 1, "input": []int{1, 2, 3, 4}},
			}
			start := time.Now()
			wf := e.submit(job)
			out := e.final(wf, 30*time.Second)
			if c := out.Metadata.Tasks; out.Status != tc.status || c.Completed != tc.complete || c.Cancelled != tc.cancel || c.Failed != 0 {
				t.Fatalf("final %s %+v, want %s with %d completed, %d cancelled", out.Status, c, tc.status, tc.complete, tc.cancel)
			}
			d := time.Since(start)
			if d > 15*time.Second {
				t.Errorf("final after %v", d)
			}
			t.Logf("submit to final output, the rest cancelled: %v", d)
			for _, er := range out.Errors {
				if er.Status != events.StateCancelled || er.Kind != events.KindStopWhen || !strings.HasPrefix(er.Task, "slow-") {
					t.Errorf("error %+v: want a slow task cancelled by stop_when", er)
				}
			}
			if len(e.events(wf, events.EventStopWhen)) == 0 {
				t.Errorf("no stop_when event")
			}
			waitFor(t, 10*time.Second, "the blocked tasks to stop", func() bool {
				for k := range blk.runningOn() {
					if strings.HasPrefix(k, wf+"/") {
						return false
					}
				}
				return true
			})
			// The planner closes the record once it has applied every
			// result, the aggregator's final output may come first.
			var rec *events.Workflow
			waitFor(t, 10*time.Second, "the record to be closed", func() bool {
				rec = must(e.cl.Workflow(e.ctl(), wf))(t)
				return rec.Status != events.WorkflowRunning
			})
			if rec.Status != events.WorkflowCompleted || rec.Outcome != tc.status {
				t.Errorf("record %s %s", rec.Status, rec.Outcome)
			}
		})
	}
}

// TestThresholdMissed_RetryRounds: a workflow that misses its threshold
// runs its failed tasks again; the second round completes them and the
// workflow succeeds with one final output.
func TestThresholdMissed_RetryRounds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	fl := &flaky{fails: map[string]int{"t-1": 1, "t-3": 2}}
	e.agent("worker", 4, map[string]agent.Handler{"flaky": fl.handler()})
	wf := e.submit(map[string]any{"id": "rounds", "on_threshold_missed": map[string]any{"retry_failed": 3},
		"steps": []map[string]any{{"id": "t", "type": "flaky", "split": 1, "retries": 0, "input": []int{0, 1, 2, 3}}}})
	out := e.final(wf, time.Minute)
	if out.Status != events.OutcomeSuccess || out.Metadata.Tasks.Completed != 4 {
		t.Fatalf("final %s %+v errors %+v", out.Status, out.Metadata.Tasks, out.Errors)
	}
	rounds := e.events(wf, events.EventRetryRound)
	if len(rounds) != 2 {
		t.Errorf("%d retry rounds, want 2 (t-3 fails twice)", len(rounds))
	}
	rec := must(e.cl.Workflow(e.ctl(), wf))(t)
	if rec.Rounds != 2 || rec.Status != events.WorkflowCompleted {
		t.Errorf("record rounds %d status %s", rec.Rounds, rec.Status)
	}
	if kinds := e.outputKinds(wf); slices.Index(kinds, events.OutputFinal) != len(kinds)-1 {
		t.Errorf("outputs %v: want one final output, last", kinds)
	}
}

// hook is a real HTTP server receiving escalation webhooks.
type hook struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []events.Escalation
	fail int // answer 503 this many times first
}

func newHook(t testing.TB) *hook {
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.fail > 0 {
			h.fail--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var esc events.Escalation
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &esc) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.got = append(h.got, esc)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) received(wf string) []events.Escalation {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []events.Escalation
	for _, e := range h.got {
		if e.Workflow == wf {
			out = append(out, e)
		}
	}
	return out
}

// TestEscalation_Resolve: a workflow short of its threshold after its
// retry round escalates (needs_attention, an escalated event, the webhook
// POSTed, its outcome recorded), waits across a planner restart, and each
// resolution ends it as it says; resolving what is not waiting is refused.
func TestEscalation_Resolve(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	h := newHook(t)
	h.fail = 1 // the first POST is answered 503: the sender tries again
	cfg := planner.Config{Webhook: h.srv.URL + "/planner"}
	stopPlanner := e.plannerWith(cfg)
	e.aggregator()
	fl := &flaky{def: 100}
	e.agent("worker", 4, map[string]agent.Handler{
		"flaky": fl.handler(),
		"echo":  agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) { return t.ID, nil }),
	})
	job := func(id string) map[string]any {
		return map[string]any{"id": id, "success_threshold": 0.75,
			"on_threshold_missed": map[string]any{"retry_failed": 1, "escalate": map[string]any{}},
			"steps": []map[string]any{
				{"id": "good", "type": "echo", "split": 1, "input": []int{1, 2}},
				{"id": "bad", "type": "flaky", "split": 1, "retries": 0, "input": []int{1, 2}},
			}}
	}
	wfs := []string{e.submit(job("esc-accept")), e.submit(job("esc-fail")), e.submit(job("esc-retry"))}
	for _, wf := range wfs {
		waitFor(t, time.Minute, wf+" to need attention", func() bool {
			rec := must(e.cl.Workflow(e.ctl(), wf))(t)
			return rec.Status == events.WorkflowNeedsAttention
		})
		rec := must(e.cl.Workflow(e.ctl(), wf))(t)
		if rec.Rounds != 1 || rec.Escalated.IsZero() {
			t.Errorf("%s: record rounds %d escalated %v", wf, rec.Rounds, rec.Escalated)
		}
		// The event is stored after the record is written.
		waitFor(t, 10*time.Second, wf+"'s escalated event", func() bool { return len(e.events(wf, events.EventEscalated)) >= 1 })
		if ev := e.events(wf, events.EventEscalated); len(ev) != 1 {
			t.Errorf("%s: %d escalated events", wf, len(ev))
		}
		waitFor(t, 30*time.Second, wf+"'s webhook", func() bool { return len(h.received(wf)) == 1 })
		got := h.received(wf)[0]
		if got.Status != events.WorkflowNeedsAttention || got.Counts.Completed != 2 || got.Counts.Failed != 2 || len(got.Failed) != 2 {
			t.Errorf("%s: webhook body %+v", wf, got)
		}
		waitFor(t, 10*time.Second, wf+"'s webhook event", func() bool { return len(e.events(wf, events.EventWebhook)) == 1 })
		if _, err := e.cl.Final(e.ctl(), wf); !errors.Is(err, client.ErrNeedsAttention) {
			t.Errorf("%s: final: %v, want ErrNeedsAttention", wf, err)
		}
	}
	var ok int
	for _, ev := range append(e.events(wfs[0], events.EventWebhook), append(e.events(wfs[1], events.EventWebhook), e.events(wfs[2], events.EventWebhook)...)...) {
		if strings.HasPrefix(ev.Message, "delivered") {
			ok++
		}
	}
	if ok != 3 {
		t.Errorf("%d webhooks recorded delivered, want 3", ok)
	}

	// The wait is in the record: a new planner carries on from it.
	stopPlanner()
	e.plannerWith(cfg)
	e.waitReady()
	for _, wf := range wfs {
		if rec := must(e.cl.Workflow(e.ctl(), wf))(t); rec.Status != events.WorkflowNeedsAttention {
			t.Fatalf("%s after the restart: %s", wf, rec.Status)
		}
	}
	if _, err := e.cl.Resolve(e.ctl(), wfs[0], "maybe"); !errors.Is(err, events.ErrBadRequest) {
		t.Errorf("bad resolution: %v", err)
	}
	if _, err := e.cl.Resolve(e.ctl(), "no-such-workflow", events.ResolveAccept); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("unknown workflow: %v", err)
	}

	r := must(e.cl.Resolve(e.ctl(), wfs[0], events.ResolveAccept))(t)
	if r.Outcome != events.OutcomePartial || r.Status != events.WorkflowCompleted {
		t.Errorf("accept reply %+v", r)
	}
	if out := e.final(wfs[0], 30*time.Second); out.Status != events.OutcomePartial || out.Metadata.Tasks.Completed != 2 || len(out.Missing) != 2 {
		t.Errorf("accepted: final %s %+v missing %v", out.Status, out.Metadata.Tasks, out.Missing)
	}
	if _, err := e.cl.Resolve(e.ctl(), wfs[0], events.ResolveAccept); !errors.Is(err, events.ErrConflict) {
		t.Errorf("resolving a finished workflow: %v, want a conflict", err)
	}

	must(e.cl.Resolve(e.ctl(), wfs[1], events.ResolveFail))(t)
	if out := e.final(wfs[1], 30*time.Second); out.Status != events.OutcomeFailed || out.Metadata.Tasks.Failed != 2 {
		t.Errorf("failed: final %s %+v", out.Status, out.Metadata.Tasks)
	}
	if rec := must(e.cl.Workflow(e.ctl(), wfs[1]))(t); rec.Status != events.WorkflowFailed || rec.Resolution != events.ResolveFail {
		t.Errorf("failed: record %s %s", rec.Status, rec.Resolution)
	}

	fl.heal()
	rr := must(e.cl.Resolve(e.ctl(), wfs[2], events.ResolveRetryFailed))(t)
	if len(rr.Queued) != 2 || rr.Status != events.WorkflowRunning {
		t.Errorf("retry reply %+v", rr)
	}
	if out := e.final(wfs[2], 30*time.Second); out.Status != events.OutcomeSuccess || out.Metadata.Tasks.Completed != 4 {
		t.Errorf("retried: final %s %+v", out.Status, out.Metadata.Tasks)
	}
	if _, err := e.cl.Resolve(e.ctl(), wfs[2], events.ResolveRetryFailed); !errors.Is(err, events.ErrConflict) {
		t.Errorf("resolving a finished workflow: %v, want a conflict", err)
	}
}

// TestEscalation_JobWebhooks: a job may name its own webhook only on a host
// the planner allows; one it may not is rejected at submit, and the
// planner's own URL is used when the job names none.
func TestEscalation_JobWebhooks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	h := newHook(t)
	u := must(url.Parse(h.srv.URL))(t)
	e.plannerWith(planner.Config{WebhookHosts: []string{u.Host}})
	e.aggregator()
	e.agent("worker", 2, map[string]agent.Handler{"flaky": (&flaky{def: 100}).handler()})
	e.waitReady()
	job := func(id, hook string) []byte {
		b, _ := json.Marshal(map[string]any{"id": id,
			"on_threshold_missed": map[string]any{"escalate": map[string]any{"webhook": hook}},
			"steps":               []map[string]any{{"id": "x", "type": "flaky", "retries": 0}}})
		return b
	}
	_, err := e.cl.Submit(e.ctl(), job("elsewhere", "http://127.0.0.1:1/steal"))
	var ve *events.ValidationError
	if !errors.As(err, &ve) || ve.Field != "on_threshold_missed.escalate.webhook" || !strings.Contains(ve.Reason, "allow") {
		t.Fatalf("a job's webhook to a host not allowed: %v", err)
	}
	wf := e.submit(job("own-hook", h.srv.URL+"/job"))
	waitFor(t, 30*time.Second, "the job's webhook", func() bool { return len(h.received(wf)) == 1 })
	if rec := must(e.cl.Workflow(e.ctl(), wf))(t); rec.Status != events.WorkflowNeedsAttention || rec.Rounds != 0 {
		t.Errorf("record %s rounds %d", rec.Status, rec.Rounds)
	}
}

// TestFinish_Rejections: the new fields are checked at submit, with the
// field and the reason.
func TestFinish_Rejections(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.waitReady()
	step := []map[string]any{{"id": "a", "type": "echo", "split": 1, "input": []int{1, 2}}}
	for _, tc := range []struct {
		name, field, says string
		job               map[string]any
	}{
		{"stop after more than there is", "stop_when.completed", "more than the job's 2 tasks", map[string]any{"stop_when": map[string]any{"completed": 3}}},
		{"stop_when both", "stop_when", "not both", map[string]any{"stop_when": map[string]any{"completed": 1, "threshold": true}}},
		{"unknown mode", "collect", "want stream, batch, hybrid", map[string]any{"collect": "lazy"}},
		{"too many rounds", "on_threshold_missed.retry_failed", "out of range", map[string]any{"on_threshold_missed": map[string]any{"retry_failed": 50}}},
		{"job webhook without allow-list", "on_threshold_missed.escalate.webhook", "does not allow", map[string]any{"on_threshold_missed": map[string]any{"escalate": map[string]any{"webhook": "https://hooks.example/x"}}}},
		{"webhook not http", "on_threshold_missed.escalate.webhook", "only http and https", map[string]any{"on_threshold_missed": map[string]any{"escalate": map[string]any{"webhook": "gopher://x/"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.job["steps"] = step
			b, _ := json.Marshal(tc.job)
			_, err := e.cl.Submit(e.ctl(), b)
			var ve *events.ValidationError
			if !errors.As(err, &ve) || ve.Field != tc.field || !strings.Contains(ve.Reason, tc.says) {
				t.Errorf("got %v, want %s: %s", err, tc.field, tc.says)
			}
		})
	}
}

// TestRestart_RetryFailedOfFinished: a finished workflow's failed tasks
// run again with restart --retry-failed; the completed ones do not; a new
// final output comes (the old one stays in the stream), and Final and
// Follow give the new one — also when no aggregator runs while the retried
// tasks run and the planner closes the workflow again. A finished workflow
// with nothing failed, or a restart without retry_failed, is a conflict.
func TestRestart_RetryFailedOfFinished(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	stopAggregator := e.aggregator()
	fl := &flaky{fails: map[string]int{}}
	e.agent("worker", 4, map[string]agent.Handler{"flaky": fl.handler()})
	e.waitReady()
	closed := func(wf string) *events.Workflow {
		t.Helper()
		var rec *events.Workflow
		waitFor(t, 30*time.Second, wf+"'s record to close", func() bool {
			rec = must(e.cl.Workflow(e.ctl(), wf))(t)
			return !events.WorkflowOpen(rec.Status)
		})
		return rec
	}
	for _, aggregatorDown := range []bool{false, true} {
		wf := fmt.Sprintf("finished-retry-%v", aggregatorDown)
		fl.mu.Lock()
		fl.fails[wf+"-1"], fl.fails[wf+"-2"] = 100, 100
		fl.mu.Unlock()
		e.submit(map[string]any{"id": wf, "success_threshold": 0.5,
			"steps": []map[string]any{{"id": wf, "type": "flaky", "split": 1, "retries": 0, "input": []int{0, 1, 2, 3}}}})
		first := e.final(wf, 30*time.Second)
		if first.Status != events.OutcomePartial || first.Metadata.Tasks.Failed != 2 {
			t.Fatalf("%s: first final %s %+v", wf, first.Status, first.Metadata.Tasks)
		}
		closed(wf)
		if _, err := e.cl.Restart(e.ctl(), wf, client.RestartOptions{}); !errors.Is(err, events.ErrConflict) {
			t.Errorf("%s: restart of a finished workflow without retry_failed: %v, want a conflict", wf, err)
		}
		if !aggregatorDown {
			// A forged result of a later generation (no lease token)
			// for the finished workflow: refused, and it must not hide the
			// real reopening that follows from the aggregator.
			forged, err := events.Encode(&events.Result{Workflow: wf, Task: wf + "-1", Step: wf, Index: 1, Type: "flaky",
				Status: events.StateCompleted, Final: true, Attempts: 1, Gen: 7, Data: json.RawMessage(`"evil"`)})
			if err != nil {
				t.Fatal(err)
			}
			msg := nats.NewMsg(e.cfg.Subjects().Result(wf, wf+"-1"))
			msg.Data = forged
			if _, err := e.js.PublishMsg(e.ctl(), msg); err != nil {
				t.Fatal(err)
			}
		}
		fl.heal()
		if aggregatorDown {
			stopAggregator()
		}
		rr := must(e.cl.Restart(e.ctl(), wf, client.RestartOptions{RetryFailed: true}))(t)
		if !slices.Equal(rr.Queued, []string{wf + "-1", wf + "-2"}) || rr.Status != events.WorkflowRunning {
			t.Fatalf("%s: restart reply %+v", wf, rr)
		}
		if aggregatorDown {
			closed(wf) // the planner is done before an aggregator sees a result
			stopAggregator = e.aggregator()
		}
		out := e.final(wf, 30*time.Second)
		if out.Status != events.OutcomeSuccess || out.Metadata.Tasks.Completed != 4 || len(out.Errors) != 0 {
			t.Fatalf("%s: new final %s %+v errors %+v", wf, out.Status, out.Metadata.Tasks, out.Errors)
		}
		if strings.Contains(string(out.Data), "evil") {
			t.Errorf("%s: the forged result is in the output: %s", wf, out.Data)
		}
		if f := must(e.cl.Final(e.ctl(), wf))(t); f.Status != events.OutcomeSuccess {
			t.Errorf("%s: Final gives %s", wf, f.Status)
		}
		if kinds := e.outputKinds(wf); len(slices.DeleteFunc(slices.Clone(kinds), func(k string) bool { return k != events.OutputFinal })) != 2 {
			t.Errorf("%s: outputs %v: want the old final and the new one", wf, kinds)
		}
		fl.mu.Lock()
		runs := maps.Clone(fl.runs)
		fl.mu.Unlock()
		for task, n := range runs {
			if !strings.HasPrefix(task, wf+"-") {
				continue
			}
			if want := map[bool]int{true: 2, false: 1}[task == wf+"-1" || task == wf+"-2"]; n != want {
				t.Errorf("task %s ran %d times, want %d", task, n, want)
			}
		}
		rec := closed(wf)
		if rec.Outcome != events.OutcomeSuccess || rec.Reopened != 1 || rec.Counts.Completed != 4 {
			t.Errorf("%s: record %s %s reopened %d counts %+v", wf, rec.Status, rec.Outcome, rec.Reopened, rec.Counts)
		}
		if _, err := e.cl.Restart(e.ctl(), wf, client.RestartOptions{RetryFailed: true}); !errors.Is(err, events.ErrConflict) {
			t.Errorf("%s: retry of a finished workflow with nothing failed: %v, want a conflict", wf, err)
		}
	}
}

// TestThresholdMissed_RoundSurvivesPlannerRestart: the planner is
// restarted while a retry round runs; the new one carries on from the
// record (round, generation, tasks retried): the retried task is not run a
// third time, no second round starts, the workflow succeeds.
func TestThresholdMissed_RoundSurvivesPlannerRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	stopPlanner := e.planner()
	e.aggregator()
	g := newGate()
	var mu sync.Mutex
	runs := map[string]int{}
	e.agent("worker", 4, map[string]agent.Handler{
		"echo": agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) { return t.ID, nil }),
		"second-time": agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) {
			mu.Lock()
			runs[t.ID]++
			n := runs[t.ID]
			mu.Unlock()
			if n == 1 {
				return nil, agent.Permanent(errors.New("first run fails"))
			}
			return g.handler().Handle(ctx, t)
		}),
	})
	wf := e.submit(map[string]any{"id": "round-restart", "on_threshold_missed": map[string]any{"retry_failed": 2},
		"steps": []map[string]any{
			{"id": "ok", "type": "echo", "split": 1, "input": []int{1, 2}},
			{"id": "flaky", "type": "second-time", "retries": 0},
		}})
	waitFor(t, 30*time.Second, "the retry round to run", func() bool { return g.holding() == 1 })
	stopPlanner()
	e.planner()
	e.waitReady()
	if rec := must(e.cl.Workflow(e.ctl(), wf))(t); rec.Status != events.WorkflowRunning || rec.Rounds != 1 || rec.Retry["flaky"] != rec.Gen {
		t.Fatalf("record after the restart: status %s rounds %d gen %d retry %v", rec.Status, rec.Rounds, rec.Gen, rec.Retry)
	}
	g.open()
	out := e.final(wf, 30*time.Second)
	if out.Status != events.OutcomeSuccess || out.Metadata.Tasks.Completed != 3 {
		t.Fatalf("final %s %+v errors %+v", out.Status, out.Metadata.Tasks, out.Errors)
	}
	mu.Lock()
	defer mu.Unlock()
	if runs["flaky"] != 2 {
		t.Errorf("the retried task ran %d times, want 2", runs["flaky"])
	}
	if n := len(e.events(wf, events.EventRetryRound)); n != 1 {
		t.Errorf("%d retry rounds, want 1", n)
	}
}

// TestFollow_FinalAloneMakesNoConsumer: Follow without a callback (what
// Run and `baton run` use) waits for the final output on its subject and
// reads OUTPUTS for one stored before, creating no consumer: it returns
// the final of a job that finished before the call and of one that
// finishes during it. Messages stored on the subject after the final
// output that are not the workflow's final (forged: another workflow's, a
// partial, not JSON) are passed over: Follow reads the subject in order
// then, and returns the real final.
func TestFollow_FinalAloneMakesNoConsumer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	release := e.nowAndHeld()
	e.waitReady()
	// Follow creates no consumer on OUTPUTS, nor looks the workflows
	// bucket up per call (a stream-info request).
	createSubject := "$JS.API.CONSUMER.CREATE." + e.cfg.WithDefaults().OutputsStream() + ".>"
	lookupSubject := "$JS.API.STREAM.INFO." + streams.BucketStream(e.cfg.WithDefaults().WorkflowsBucket())
	var creates, lookups int
	ta := e.newTally(func(m *nats.Msg) {
		if m.Subject == lookupSubject {
			lookups++
		} else {
			creates++
		}
	}, createSubject, lookupSubject)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	follow := func(wf string) { // Errorf: it runs on a goroutine of its own too
		t.Helper()
		out, err := e.cl.Follow(ctx, wf, nil)
		if err != nil || out.Workflow != wf || out.Kind != events.OutputFinal || out.Status != events.OutcomeSuccess {
			t.Errorf("follow of %s: %+v, %v", wf, out, err)
		}
	}

	done := e.submit([]byte(`{"steps": [{"id": "s", "type": "now"}]}`))
	e.final(done, 30*time.Second)
	follow(done)

	held := e.submit([]byte(`{"steps": [{"id": "s", "type": "held"}]}`))
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		follow(held)
	}()
	close(release)
	select {
	case <-followed:
	case <-ctx.Done():
		t.Fatal("Follow did not return the final output")
	}
	ta.settle(e.nc) // the client's requests go out on e.nc
	if lookups > 1 {
		t.Errorf("%d lookups of the workflows bucket for two follows, want one at most", lookups)
	}
	if creates != 0 {
		t.Errorf("%d consumers created on OUTPUTS to wait for final outputs", creates)
	}

	// Stored after the final, on its subject: none of them is it.
	subject := e.cfg.Subjects().Output(held, events.OutputFinal)
	for _, body := range []string{`{"workflow":"` + done + `","kind":"final","status":"success"}`,
		`{"workflow":"` + held + `","kind":"partial","status":"running"}`, `not json`, `null`} {
		if _, err := e.js.Publish(ctx, subject, []byte(body)); err != nil {
			t.Fatal(err)
		}
		follow(held)
	}
}
