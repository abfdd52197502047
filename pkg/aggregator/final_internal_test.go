package aggregator

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/baton-dev/baton/pkg/events"
)

// newTestState builds a workflow's state the way open does from its record,
// then feeds it final results. It needs no server: final is a pure function
// of the state.
func newTestState(tb testing.TB, rec events.Workflow, results ...events.Result) *state {
	tb.Helper()
	s := &state{rec: rec, collect: map[string]int{}, critical: map[string]bool{},
		final: newFinals(&rec), agents: map[string]bool{}}
	for i, step := range rec.Collect {
		s.collect[step] = i
	}
	for _, t := range rec.Critical {
		s.critical[t] = true
	}
	if rec.Aggregate.Strategy == events.StrategyReduce {
		s.reducer = &Reducer{Op: rec.Aggregate.Op, Field: rec.Aggregate.Field}
	}
	for i := range results {
		r := results[i]
		if s.final.get(r.Task, r.Step, r.Index) != nil {
			tb.Fatalf("result for %s given twice", r.Task)
		}
		if _, collected := s.collect[r.Step]; collected && r.Status == events.StateCompleted && s.reducer != nil {
			s.reducer.Add(r.Data)
			r.Data = nil
		}
		if r.Agent != "" {
			s.agents[r.Agent] = true
		}
		s.attempts += r.Attempts
		s.last = max(s.last, r.Finished)
		s.final.put(&r)
	}
	if s.final.len() != rec.Counts.Total {
		tb.Fatalf("%d results for %d tasks", s.final.len(), rec.Counts.Total)
	}
	return s
}

func completedResult(task, step string, index int, data string) events.Result {
	return events.Result{Task: task, Step: step, Index: index, Type: "x", Status: events.StateCompleted, Final: true,
		Data: json.RawMessage(data), Attempts: 1, Agent: "agent-1"}
}

func failedResult(task, step string, index int, kind string) events.Result {
	return events.Result{Task: task, Step: step, Index: index, Type: "x", Status: events.StateFailed, Final: true,
		Error: "it broke", ErrorKind: kind, Attempts: 3, Agent: "agent-2"}
}

func cancelledResult(task, step string, index int) events.Result {
	return events.Result{Task: task, Step: step, Index: index, Type: "x", Status: events.StateCancelled, Final: true,
		ErrorKind: events.KindDependency}
}

// TestAggregator_Final checks how the final output's status follows from the
// workflow's success threshold and critical tasks (the planner copies both
// from the job into the workflow record), and what the output says about
// the tasks that did not complete.
func TestAggregator_Final(t *testing.T) {
	t.Parallel()
	rec := func(threshold float64, critical ...string) events.Workflow {
		return events.Workflow{ID: "wf", Counts: events.Counts{Total: 4}, Collect: []string{"s"},
			SuccessThreshold: threshold, Critical: critical, Submitted: time.Unix(100, 0).UTC()}
	}
	for _, tc := range []struct {
		name        string
		rec         events.Workflow
		results     []events.Result
		wantStatus  string
		wantRate    float64
		wantData    string
		wantMissing []string
		wantErrors  []string // task:kind:critical
		wantCounts  events.Counts
	}{
		{
			name:       "every task completed",
			rec:        rec(1),
			results:    []events.Result{completedResult("s-3", "s", 3, `"d"`), completedResult("s-0", "s", 0, `"a"`), completedResult("s-2", "s", 2, `"c"`), completedResult("s-1", "s", 1, `"b"`)},
			wantStatus: events.OutcomeSuccess, wantRate: 1, wantData: `["a","b","c","d"]`,
			wantCounts: events.Counts{Total: 4, Completed: 4},
		},
		{
			name:       "one failed, threshold reached",
			rec:        rec(0.75),
			results:    []events.Result{completedResult("s-0", "s", 0, `"a"`), failedResult("s-1", "s", 1, events.KindPermanent), completedResult("s-2", "s", 2, `"c"`), completedResult("s-3", "s", 3, `"d"`)},
			wantStatus: events.OutcomePartial, wantRate: 0.75, wantData: `["a","c","d"]`,
			wantMissing: []string{"s-1"}, wantErrors: []string{"s-1:permanent:false"},
			wantCounts: events.Counts{Total: 4, Completed: 3, Failed: 1},
		},
		{
			name:       "one failed, default threshold",
			rec:        rec(1),
			results:    []events.Result{completedResult("s-0", "s", 0, `"a"`), failedResult("s-1", "s", 1, events.KindError), completedResult("s-2", "s", 2, `"c"`), completedResult("s-3", "s", 3, `"d"`)},
			wantStatus: events.OutcomeFailed, wantRate: 0.75, wantData: `["a","c","d"]`,
			wantMissing: []string{"s-1"}, wantErrors: []string{"s-1:error:false"},
			wantCounts: events.Counts{Total: 4, Completed: 3, Failed: 1},
		},
		{
			name:       "two failed, below the threshold",
			rec:        rec(0.6),
			results:    []events.Result{failedResult("s-2", "s", 2, events.KindTimeout), completedResult("s-0", "s", 0, `"a"`), failedResult("s-1", "s", 1, events.KindError), completedResult("s-3", "s", 3, `"d"`)},
			wantStatus: events.OutcomeFailed, wantRate: 0.5, wantData: `["a","d"]`,
			wantMissing: []string{"s-1", "s-2"}, wantErrors: []string{"s-1:error:false", "s-2:timeout:false"},
			wantCounts: events.Counts{Total: 4, Completed: 2, Failed: 2},
		},
		{
			name:       "critical task failed",
			rec:        rec(0, "s-2"),
			results:    []events.Result{completedResult("s-0", "s", 0, `"a"`), completedResult("s-1", "s", 1, `"b"`), failedResult("s-2", "s", 2, events.KindError), completedResult("s-3", "s", 3, `"d"`)},
			wantStatus: events.OutcomeFailed, wantRate: 0.75, wantData: `["a","b","d"]`,
			wantMissing: []string{"s-2"}, wantErrors: []string{"s-2:error:true"},
			wantCounts: events.Counts{Total: 4, Completed: 3, Failed: 1},
		},
		{
			name:       "critical task completed, another failed",
			rec:        rec(0.5, "s-0"),
			results:    []events.Result{completedResult("s-0", "s", 0, `"a"`), completedResult("s-1", "s", 1, `"b"`), failedResult("s-2", "s", 2, events.KindError), completedResult("s-3", "s", 3, `"d"`)},
			wantStatus: events.OutcomePartial, wantRate: 0.75, wantData: `["a","b","d"]`,
			wantMissing: []string{"s-2"}, wantErrors: []string{"s-2:error:false"},
			wantCounts: events.Counts{Total: 4, Completed: 3, Failed: 1},
		},
		{
			name:       "dependents of a failed critical task cancelled",
			rec:        rec(0.25, "s-1"),
			results:    []events.Result{completedResult("s-0", "s", 0, `"a"`), failedResult("s-1", "s", 1, events.KindPanic), cancelledResult("s-2", "s", 2), cancelledResult("s-3", "s", 3)},
			wantStatus: events.OutcomeFailed, wantRate: 0.25, wantData: `["a"]`,
			wantMissing: []string{"s-1", "s-2", "s-3"}, wantErrors: []string{"s-1:panic:true", "s-2:dependency:false", "s-3:dependency:false"},
			wantCounts: events.Counts{Total: 4, Completed: 1, Failed: 1, Cancelled: 2},
		},
		{
			name: "fallback data stands in",
			rec: func() events.Workflow {
				r := rec(0.5)
				r.Aggregate.Fallback = json.RawMessage(`"?"`)
				return r
			}(),
			results:    []events.Result{completedResult("s-0", "s", 0, `"a"`), failedResult("s-1", "s", 1, events.KindError), completedResult("s-2", "s", 2, `"c"`), cancelledResult("s-3", "s", 3)},
			wantStatus: events.OutcomePartial, wantRate: 0.5, wantData: `["a","?","c","?"]`,
			wantMissing: []string{"s-1", "s-3"}, wantErrors: []string{"s-1:error:false", "s-3:dependency:false"},
			wantCounts: events.Counts{Total: 4, Completed: 2, Failed: 1, Cancelled: 1},
		},
		{
			name:       "only collected steps make the data, in collect then chunk order",
			rec:        events.Workflow{ID: "wf", Counts: events.Counts{Total: 4}, Collect: []string{"late", "early"}, SuccessThreshold: 1},
			results:    []events.Result{completedResult("early-1", "early", 1, `"e1"`), completedResult("mid", "mid", 0, `"not collected"`), completedResult("late", "late", 0, `"l"`), completedResult("early-0", "early", 0, `"e0"`)},
			wantStatus: events.OutcomeSuccess, wantRate: 1, wantData: `["l","e0","e1"]`,
			wantCounts: events.Counts{Total: 4, Completed: 4},
		},
		{
			name: "reduce with fallback",
			rec: func() events.Workflow {
				r := rec(0.5)
				r.Aggregate = events.Aggregate{Strategy: events.StrategyReduce, Op: "sum", Field: ".", Fallback: json.RawMessage(`100`)}
				return r
			}(),
			results:    []events.Result{completedResult("s-0", "s", 0, `1`), completedResult("s-1", "s", 1, `[2,3]`), failedResult("s-2", "s", 2, events.KindError), completedResult("s-3", "s", 3, `4`)},
			wantStatus: events.OutcomePartial, wantRate: 0.75, wantData: `{"count":5,"field":".","op":"sum","skipped":0,"value":110}`,
			wantMissing: []string{"s-2"}, wantErrors: []string{"s-2:error:false"},
			wantCounts: events.Counts{Total: 4, Completed: 3, Failed: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := (&Aggregator{}).final(newTestState(t, tc.rec, tc.results...), false)
			if err != nil {
				t.Fatalf("final: %v", err)
			}
			if out.Status != tc.wantStatus || out.Kind != events.OutputFinal || out.Workflow != "wf" {
				t.Errorf("status %q kind %q workflow %q, want %q final wf", out.Status, out.Kind, out.Workflow, tc.wantStatus)
			}
			if string(out.Data) != tc.wantData {
				t.Errorf("data %s, want %s", out.Data, tc.wantData)
			}
			if !slices.Equal(out.Missing, tc.wantMissing) {
				t.Errorf("missing %q, want %q", out.Missing, tc.wantMissing)
			}
			var errs []string
			for _, e := range out.Errors {
				errs = append(errs, e.Task+":"+e.Kind+":"+map[bool]string{true: "true", false: "false"}[e.Critical])
				if e.Remediation == "" || e.Message == "" || e.Status == "" {
					t.Errorf("error entry without status, message or remediation: %+v", e)
				}
			}
			if !slices.Equal(errs, tc.wantErrors) {
				t.Errorf("errors %q, want %q", errs, tc.wantErrors)
			}
			if out.Errors == nil {
				t.Error("errors is nil: the output must carry an empty list")
			}
			m := out.Metadata
			if m == nil {
				t.Fatal("no metadata")
			}
			if m.SuccessRate != tc.wantRate || m.Threshold != tc.rec.SuccessThreshold || m.Tasks != tc.wantCounts {
				t.Errorf("rate %v threshold %v counts %+v; want %v, %v, %+v", m.SuccessRate, m.Threshold, m.Tasks, tc.wantRate, tc.rec.SuccessThreshold, tc.wantCounts)
			}
			if p := out.Progress; p.Done != 4 || p.Total != 4 || p.Percent != 100 {
				t.Errorf("progress %+v, want 4 of 4, 100%%", p)
			}
		})
	}
}

func TestAggregator_FinalMetadata(t *testing.T) {
	t.Parallel()
	rec := events.Workflow{ID: "wf", Counts: events.Counts{Total: 3}, Collect: []string{"s"}, SuccessThreshold: 1,
		Submitted: time.Unix(100, 0).UTC()}
	for _, tc := range []struct {
		name         string
		results      []events.Result
		wantRecovery string
		wantRecov    int
		wantAttempts int
		wantAgents   []string
	}{
		{
			name:         "nothing went wrong",
			results:      []events.Result{completedResult("s-0", "s", 0, `1`), completedResult("s-1", "s", 1, `2`), completedResult("s-2", "s", 2, `3`)},
			wantRecovery: events.RecoveryNone, wantAttempts: 3, wantAgents: []string{"agent-1"},
		},
		{
			name: "a retry and a fallback recovered",
			results: func() []events.Result {
				retried, fellBack := completedResult("s-1", "s", 1, `2`), completedResult("s-2", "s", 2, `3`)
				retried.Attempts, retried.Agent = 2, "agent-3"
				fellBack.Round = 1
				return []events.Result{completedResult("s-0", "s", 0, `1`), retried, fellBack}
			}(),
			wantRecovery: events.RecoveryRecovered, wantRecov: 2, wantAttempts: 4, wantAgents: []string{"agent-1", "agent-3"},
		},
		{
			name:         "a task failed",
			results:      []events.Result{completedResult("s-0", "s", 0, `1`), failedResult("s-1", "s", 1, events.KindError), completedResult("s-2", "s", 2, `3`)},
			wantRecovery: events.RecoveryIncomplete, wantAttempts: 5, wantAgents: []string{"agent-1", "agent-2"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			results := slices.Clone(tc.results)
			for i := range results {
				results[i].Finished = time.Unix(100, int64(i+1)*int64(time.Millisecond)).UnixNano()
			}
			out, err := (&Aggregator{}).final(newTestState(t, rec, results...), false)
			if err != nil {
				t.Fatalf("final: %v", err)
			}
			m := out.Metadata
			if m.Recovery != tc.wantRecovery || m.Recovered != tc.wantRecov || m.Attempts != tc.wantAttempts {
				t.Errorf("recovery %q recovered %d attempts %d; want %q, %d, %d", m.Recovery, m.Recovered, m.Attempts, tc.wantRecovery, tc.wantRecov, tc.wantAttempts)
			}
			if !slices.Equal(m.Agents, tc.wantAgents) || m.AgentsUsed != len(tc.wantAgents) {
				t.Errorf("agents %q (%d), want %q", m.Agents, m.AgentsUsed, tc.wantAgents)
			}
			// Finished is the last result's time: 3ms after the submission.
			if want := time.Unix(100, 3*int64(time.Millisecond)).UTC(); !m.Finished.Equal(want) || m.ElapsedMS != 3 {
				t.Errorf("finished %v elapsed %vms, want %v and 3ms", m.Finished, m.ElapsedMS, want)
			}
		})
	}
}
