package tests

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/builtin"
	"github.com/baton-dev/baton/pkg/events"
)

// leader returns which of procs holds the lead of key, by the process id
// in the lead's replica id.
func (e *env) leader(key string, procs ...*proc) *proc {
	e.t.Helper()
	kv, err := e.js.KeyValue(e.ctl(), e.cfg.LeasesBucket())
	if err != nil {
		e.t.Fatal(err)
	}
	entry, err := kv.Get(e.ctl(), key)
	if err != nil {
		return nil
	}
	id := string(entry.Value())
	for _, p := range procs {
		if strings.Contains(id, "-"+strconv.Itoa(p.cmd.Process.Pid)+"-") {
			return p
		}
	}
	return nil
}

// TestReplicas_PlannerAndAggregatorTakeOver runs two planner and two
// aggregator processes: SIGKILL of the leading planner mid-workflow, then
// of the leading aggregator, each hands the lead to the standby within the
// stated bound (lease TTL + TTL/8, 3.4 s by default), and the workflow
// finishes with every task run once, one final result each, and one final
// output.
func TestReplicas_PlannerAndAggregatorTakeOver(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	var calls counter
	for i := 1; i <= 2; i++ {
		e.agent(fmt.Sprintf("agent-%d", i), 4, map[string]agent.Handler{
			"sleep": calls.wrap(agent.HandlerFunc(builtin.Sleep)),
			"write": calls.wrap(agent.HandlerFunc(builtin.Write)),
		})
	}
	planners := []*proc{e.start("planner-1", "planner"), e.start("planner-2", "planner")}
	aggregators := []*proc{e.start("aggregator-1", "aggregator"), e.start("aggregator-2", "aggregator")}
	var pl, ag *proc
	waitFor(t, 30*time.Second, "a planner and an aggregator to lead", func() bool {
		pl, ag = e.leader("planner", planners...), e.leader("aggregator", aggregators...)
		return pl != nil && ag != nil
	})
	naps := make([]int, 40)
	for i := range naps {
		naps[i] = 200
	}
	wf := e.submit(map[string]any{"steps": []map[string]any{
		{"id": "naps", "type": "sleep", "split": 1, "input": naps},
		{"id": "report", "type": "write", "after": []string{"naps"}},
	}})
	done := func(n int) func() bool {
		return func() bool { f, _ := e.results(wf); return len(f) >= n }
	}
	bound := streams.DefaultLeaseTTL + streams.DefaultLeaseTTL/8

	waitFor(t, 30*time.Second, "8 results", done(8))
	pl.kill(t)
	killed := time.Now()
	var next *proc
	waitFor(t, 2*bound, "the standby planner to lead", func() bool {
		next = e.leader("planner", planners...)
		return next != nil && next != pl
	})
	plTakeover := time.Since(killed)

	waitFor(t, 30*time.Second, "24 results", done(24))
	ag.kill(t)
	killed = time.Now()
	waitFor(t, 2*bound, "the standby aggregator to lead", func() bool {
		next = e.leader("aggregator", aggregators...)
		return next != nil && next != ag
	})
	agTakeover := time.Since(killed)
	t.Logf("takeover after SIGKILL: planner %v, aggregator %v (bound %v)", plTakeover.Round(time.Millisecond), agTakeover.Round(time.Millisecond), bound)
	if plTakeover > bound+time.Second || agTakeover > bound+time.Second {
		t.Errorf("takeover slower than the bound %v (+1 s of polling by this test)", bound)
	}

	out := e.final(wf, time.Minute)
	if out.Status != events.OutcomeSuccess {
		t.Fatalf("status %s, errors %+v", out.Status, out.Errors)
	}
	if c := out.Metadata.Tasks; c.Total != 41 || c.Completed != 41 {
		t.Errorf("tasks %+v, want 41 of 41 completed", c)
	}
	finals, _ := e.results(wf)
	for task, n := range calls.counts() {
		if n != 1 || finals[task] != 1 {
			t.Errorf("task %s ran %d times with %d final results; want 1 and 1", task, n, finals[task])
		}
	}
	if len(finals) != 41 {
		t.Errorf("%d tasks with results, want 41", len(finals))
	}
	if outs := e.stored(e.cfg.OutputsStream(), e.cfg.Subjects().Output(wf, "final")); len(outs) != 1 {
		t.Errorf("%d final outputs stored, want 1", len(outs))
	}
}
