package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/baton-dev/baton/examples"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/builtin"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/planner"
	"github.com/nats-io/nats.go/jetstream"
)

// TestSeed_ParallelFasterThanSequential is the seed's check: ten tasks of
// 200 ms on four agents take less than half the time the same ten take on
// one agent with one slot. It runs alone (not parallel) so that the timing
// is not skewed by other tests.
func TestSeed_ParallelFasterThanSequential(t *testing.T) {
	job, err := examples.Job("parallel")
	if err != nil {
		t.Fatal(err)
	}
	run := func(agents, concurrency int) *events.Output {
		e := newEnv(t, streams.Config{})
		e.planner()
		e.aggregator()
		for i := 1; i <= agents; i++ {
			e.agent(fmt.Sprintf("agent-%d", i), concurrency, map[string]agent.Handler{"sleep": agent.HandlerFunc(builtin.Sleep)})
		}
		out := e.final(e.submit(job), time.Minute)
		var sum struct{ Value float64 }
		if err := json.Unmarshal(out.Data, &sum); err != nil || out.Status != events.OutcomeSuccess || sum.Value != 2000 {
			t.Fatalf("status %s data %s, want success and 2000 ms slept", out.Status, out.Data)
		}
		return out
	}
	par := run(4, 3)
	seq := run(1, 1)
	if par.Metadata.AgentsUsed < 4 {
		t.Errorf("parallel run used %d agents, want 4", par.Metadata.AgentsUsed)
	}
	ratio := par.Metadata.ElapsedMS / seq.Metadata.ElapsedMS
	t.Logf("parallel %.0f ms, sequential %.0f ms: %.0f%%", par.Metadata.ElapsedMS, seq.Metadata.ElapsedMS, 100*ratio)
	if seq.Metadata.ElapsedMS < 2000 {
		t.Errorf("sequential run took %.0f ms, less than the 2000 ms its tasks sleep", seq.Metadata.ElapsedMS)
	}
	if ratio >= 0.5 {
		t.Errorf("parallel took %.0f%% of the sequential time, want < 50%%", 100*ratio)
	}
}

// TestAgent_KilledMidTask kills an agent process with SIGKILL while it runs
// ten tasks; after the ack wait they are redelivered to another agent, the
// workflow succeeds and each task has exactly one result.
func TestAgent_KilledMidTask(t *testing.T) {
	t.Parallel()
	cfg := streams.Config{AckWait: time.Second}
	e := newEnv(t, cfg)
	e.planner()
	e.aggregator()
	doomed := e.start("doomed", "agent", "--types", "sleep", "--id", "doomed", "--concurrency", "10", "--ack-wait", "1s")
	wf := e.submit(map[string]any{"steps": []map[string]any{
		{"id": "nap", "type": "sleep", "split": 1, "input": []int{1500, 1500, 1500, 1500, 1500, 1500, 1500, 1500, 1500, 1500}},
	}})
	waitFor(t, 30*time.Second, "the doomed agent to start all ten tasks", func() bool {
		return len(e.events(wf, events.EventStarted)) == 10
	})
	doomed.kill(t)
	e.start("survivor", "agent", "--types", "sleep", "--id", "survivor", "--concurrency", "10", "--ack-wait", "1s")

	out := e.final(wf, time.Minute)
	if out.Status != events.OutcomeSuccess || out.Metadata.Tasks.Completed != 10 {
		t.Fatalf("status %s, tasks %+v", out.Status, out.Metadata.Tasks)
	}
	if fmt.Sprint(out.Metadata.Agents) != "[survivor]" {
		t.Errorf("results came from %v, want only the survivor", out.Metadata.Agents)
	}
	finals, all := e.results(wf)
	if len(finals) != 10 || len(all) != 10 {
		t.Errorf("%d results for %d tasks, want 10 for 10", len(all), len(finals))
	}
	for task, n := range finals {
		if n != 1 {
			t.Errorf("task %s has %d results", task, n)
		}
	}
	for _, r := range all {
		if r.Attempts != 2 {
			t.Errorf("task %s finished on attempt %d, want 2 (the first holder died)", r.Task, r.Attempts)
		}
	}
	starts := map[string]int{}
	for _, ev := range e.heardStarts(wf, atLeast(20)) {
		starts[ev.Agent]++
	}
	if starts["doomed"] != 10 || starts["survivor"] != 10 {
		t.Errorf("starts per agent %v, want 10 each", starts)
	}
}

// TestAgent_DrainsOnSIGTERM stops an agent process with SIGTERM while it
// runs five tasks: it starts no new task, lets the five finish, exits
// cleanly, and another agent does the rest; every task runs once.
func TestAgent_DrainsOnSIGTERM(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	drainer := e.start("drainer", "agent", "--types", "sleep", "--id", "drainer", "--concurrency", "5")
	naps := []int{800, 800, 800, 800, 800, 800, 800, 800, 800, 800}
	wf := e.submit(map[string]any{"steps": []map[string]any{{"id": "nap", "type": "sleep", "split": 1, "input": naps}}})
	waitFor(t, 30*time.Second, "five tasks to start", func() bool {
		return len(e.events(wf, events.EventStarted)) == 5
	})
	drainer.stop(t)
	if finals, _ := e.results(wf); len(finals) != 5 {
		t.Fatalf("%d results when the drained agent exited, want its 5 running tasks", len(finals))
	}
	e.start("finisher", "agent", "--types", "sleep", "--id", "finisher", "--concurrency", "5")
	out := e.final(wf, time.Minute)
	if out.Status != events.OutcomeSuccess || out.Metadata.Tasks.Completed != 10 {
		t.Fatalf("status %s tasks %+v", out.Status, out.Metadata.Tasks)
	}
	_, all := e.results(wf)
	byAgent := map[string]int{}
	for _, r := range all {
		byAgent[r.Agent]++
		if r.Attempts != 1 {
			t.Errorf("task %s finished on attempt %d, want 1: nothing was handed back", r.Task, r.Attempts)
		}
	}
	if len(all) != 10 || byAgent["drainer"] != 5 || byAgent["finisher"] != 5 {
		t.Errorf("%d results, by agent %v; want 10, 5 each", len(all), byAgent)
	}
	if n := len(e.heardStarts(wf, atLeast(10))); n != 10 {
		t.Errorf("%d task starts, want 10", n)
	}
}

// counter counts handler invocations per task.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) wrap(h agent.Handler) agent.Handler {
	return agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) {
		c.mu.Lock()
		if c.n == nil {
			c.n = map[string]int{}
		}
		c.n[t.ID]++
		c.mu.Unlock()
		return h.Handle(ctx, t)
	})
}

func (c *counter) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

// TestRestart_PlannerAndAggregator kills the planner, then the aggregator,
// each a separate process, in the middle of a workflow and starts them
// again: the workflow finishes, every task ran once, and the output counts
// each task once.
func TestRestart_PlannerAndAggregator(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	var calls counter
	for i := 1; i <= 2; i++ {
		e.agent(fmt.Sprintf("agent-%d", i), 2, map[string]agent.Handler{
			"sleep": calls.wrap(agent.HandlerFunc(builtin.Sleep)),
			"write": calls.wrap(agent.HandlerFunc(builtin.Write)),
		})
	}
	pl := e.start("planner", "planner")
	ag := e.start("aggregator", "aggregator")
	naps := make([]int, 16)
	for i := range naps {
		naps[i] = 250
	}
	wf := e.submit(map[string]any{"steps": []map[string]any{
		{"id": "naps", "type": "sleep", "split": 1, "input": naps},
		{"id": "report", "type": "write", "after": []string{"naps"}},
	}})
	done := func(n int) func() bool {
		return func() bool { f, _ := e.results(wf); return len(f) >= n }
	}
	waitFor(t, 30*time.Second, "4 results", done(4))
	pl.kill(t)
	waitFor(t, 30*time.Second, "6 results while the planner is down", done(6))
	e.start("planner again", "planner")
	waitFor(t, 30*time.Second, "10 results", done(10))
	ag.kill(t)
	e.start("aggregator again", "aggregator")

	out := e.final(wf, time.Minute)
	if out.Status != events.OutcomeSuccess {
		t.Fatalf("status %s, errors %+v", out.Status, out.Errors)
	}
	if c := out.Metadata.Tasks; c.Total != 17 || c.Completed != 17 {
		t.Errorf("tasks %+v, want 17 of 17 completed", c)
	}
	if out.Progress.Done != 17 {
		t.Errorf("progress %+v", out.Progress)
	}
	var summaries []builtin.Summary
	if err := json.Unmarshal(out.Data, &summaries); err != nil || len(summaries) != 1 || summaries[0].Sources != 16 {
		t.Errorf("data %s: want one summary of 16 sources", out.Data)
	}
	// The partial outputs, replayed from the start, hold each task once,
	// those that finished while the aggregator was down included.
	seen := map[string]int{}
	for _, m := range e.stored(e.cfg.OutputsStream(), e.cfg.Subjects().Output(wf, events.OutputPartial)) {
		var p events.Output
		if err := json.Unmarshal(m.Data(), &p); err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Results {
			seen[r.Task]++
		}
	}
	if len(seen) != 17 {
		t.Errorf("%d tasks in the partial outputs, want 17", len(seen))
	}
	for task, n := range seen {
		if n != 1 {
			t.Errorf("task %s in %d partial outputs, want 1", task, n)
		}
	}
	finals, _ := e.results(wf)
	runs := calls.counts()
	if len(finals) != 17 || len(runs) != 17 {
		t.Errorf("%d tasks with results, %d run; want 17", len(finals), len(runs))
	}
	for task, n := range runs {
		if n != 1 || finals[task] != 1 {
			t.Errorf("task %s ran %d times with %d final results; want 1 and 1", task, n, finals[task])
		}
	}
}

// TestFaults_FinishedRecordWrittenAgain: when the write of a finished
// workflow's record fails (the workflows bucket unreachable, as while its
// stream elects a leader), the planner writes it again at its next
// checkpoints until it is stored: the record does not stay "running".
func TestFaults_FinishedRecordWrittenAgain(t *testing.T) {
	t.Parallel()
	cfg := streams.Config{}
	e := newEnv(t, cfg)
	e.plannerWith(planner.Config{Checkpoint: 100 * time.Millisecond})
	e.aggregator()
	release := e.nowAndHeld()
	e.waitReady()
	wf := e.submit([]byte(`{"steps": [{"id": "a", "type": "now"}, {"id": "b", "type": "held"}]}`))
	// The aggregator has the workflow open once a partial output is stored.
	waitFor(t, 30*time.Second, "a partial output", func() bool {
		return len(e.stored(e.cfg.OutputsStream(), e.cfg.Subjects().Output(wf, events.OutputPartial))) > 0
	})
	ctx := t.Context()
	bucket := "KV_" + e.cfg.WithDefaults().WorkflowsBucket()
	if err := e.js.DeleteStream(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	close(release)
	waitFor(t, 30*time.Second, "the final output", func() bool {
		return len(e.stored(e.cfg.OutputsStream(), e.cfg.Subjects().Output(wf, events.OutputFinal))) > 0
	})
	// The planner has closed the workflow, its record write refused; the
	// bucket comes back (empty, as a bucket restored elsewhere would).
	waitFor(t, 30*time.Second, "the planner to close the workflow", func() bool {
		return len(e.events(wf, events.EventCompleted)) > 0
	})
	if err := streams.Ensure(ctx, e.js, e.cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the finished record to be written again", func() bool {
		rec, err := e.cl.Workflow(ctx, wf)
		return err == nil && rec.Status == events.WorkflowCompleted && rec.Outcome == events.OutcomeSuccess
	})
}

// TestFaults_StoppingPlannerHandsBackJobs: jobs a planner had taken from
// JOBS and not planned when it stopped (its lead lost, or a shutdown) are
// handed back, and the next planner plans them at once, not after the
// consumer's ack wait (here 5 minutes). Each is planned once.
func TestFaults_StoppingPlannerHandsBackJobs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{AckWait: 5 * time.Minute})
	// The JOBS consumer's state; nil until the planner creates it.
	state := func() *jetstream.ConsumerInfo {
		jobs, err := e.js.Consumer(e.ctl(), e.cfg.JobsStream(), e.cfg.Planner().Durable)
		if err != nil {
			return nil
		}
		info, err := jobs.Info(e.ctl())
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	stop := e.planner()
	waitFor(t, 30*time.Second, "the planner to pull jobs", func() bool { s := state(); return s != nil && s.NumWaiting > 0 })

	// More jobs than one planner plans in the moment it is given: some
	// are in its consumer's buffer or its loop's when it stops.
	const n = 2000
	for range n {
		if _, err := e.js.PublishAsync(e.cfg.Subjects().Submit(), []byte(`{"steps": [{"id": "n", "type": "noop"}]}`)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-e.js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("jobs not stored within 30 s")
	}
	stop()
	if got := state(); got.NumAckPending == 0 {
		t.Fatalf("the planner had taken no job it did not plan when it stopped (%d not taken): nothing to hand back, the test shows nothing", got.NumPending)
	}

	e.planner()
	waitFor(t, time.Minute, "every job planned, well within the 5 minute ack wait", func() bool {
		got := state()
		return got.NumPending == 0 && got.NumAckPending == 0
	})
	kv, err := e.js.KeyValue(e.ctl(), e.cfg.WorkflowsBucket())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeysFiltered(e.ctl(), "*") // records; not the specs (<id>.spec)
	if err != nil {
		t.Fatal(err)
	}
	planned := 0
	for range keys.Keys() {
		planned++
	}
	if planned != n {
		t.Errorf("%d workflows for %d jobs, want one each", planned, n)
	}
}
