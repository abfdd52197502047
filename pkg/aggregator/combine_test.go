package aggregator_test

import (
	"encoding/json"
	"testing"

	"github.com/baton-dev/baton/pkg/aggregator"
	"github.com/baton-dev/baton/pkg/events"
)

func raws(docs ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(docs))
	for i, d := range docs {
		out[i] = json.RawMessage(d)
	}
	return out
}

func TestCombine(t *testing.T) {
	t.Parallel()
	results := raws(`[{"id":2,"name":"b","score":5},{"id":1,"name":"a","score":9}]`, `{"id":2,"name":"b2","score":7}`, `[{"id":3,"name":"c"}]`)
	for _, tc := range []struct {
		name string
		agg  events.Aggregate
		want string
	}{
		{"concatenate", events.Aggregate{}, `[{"id":2,"name":"b","score":5},{"id":1,"name":"a","score":9},{"id":2,"name":"b2","score":7},{"id":3,"name":"c"}]`},
		{"dedupe by key", events.Aggregate{DedupeBy: "id"}, `[{"id":2,"name":"b","score":5},{"id":1,"name":"a","score":9},{"id":3,"name":"c"}]`},
		{"sort by field, missing last", events.Aggregate{SortBy: "score"}, `[{"id":2,"name":"b","score":5},{"id":2,"name":"b2","score":7},{"id":1,"name":"a","score":9},{"id":3,"name":"c"}]`},
		{"sort descending", events.Aggregate{SortBy: "name", Desc: true, DedupeBy: "id"}, `[{"id":3,"name":"c"},{"id":2,"name":"b","score":5},{"id":1,"name":"a","score":9}]`},
		{"transform", events.Aggregate{Strategy: events.StrategyTransform, Select: map[string]string{"who": "name", "points": "score"}}, `[{"points":5,"who":"b"},{"points":9,"who":"a"},{"points":7,"who":"b2"},{"points":null,"who":"c"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := aggregator.Combine(tc.agg, results)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	if got, _ := aggregator.Combine(events.Aggregate{}, nil); string(got) != "[]" {
		t.Errorf("no results: %s", got)
	}
}

func TestReducer(t *testing.T) {
	t.Parallel()
	data := raws(`[{"n":4},{"n":-1}]`, `{"n":10}`, `{"m":1}`, `[{"n":"x"}]`, `{"n":{"deep":1}}`)
	for _, tc := range []struct {
		op, field, want string
	}{
		{"sum", "n", `{"count":3,"field":"n","op":"sum","skipped":3,"value":13}`},
		{"avg", "n", `{"count":3,"field":"n","op":"avg","skipped":3,"value":4.333333333333333}`},
		{"min", "n", `{"count":3,"field":"n","op":"min","skipped":3,"value":-1}`},
		{"max", "n", `{"count":3,"field":"n","op":"max","skipped":3,"value":10}`},
		{"count", ".", `{"count":6,"field":".","op":"count","skipped":0,"value":6}`},
		{"sum", "n.deep", `{"count":1,"field":"n.deep","op":"sum","skipped":5,"value":1}`},
		{"max", "zzz", `{"count":0,"field":"zzz","op":"max","skipped":6,"value":null}`},
	} {
		r := &aggregator.Reducer{Op: tc.op, Field: tc.field}
		for _, d := range data {
			r.Add(d)
		}
		if got := string(r.Value()); got != tc.want {
			t.Errorf("%s %s: got %s, want %s", tc.op, tc.field, got, tc.want)
		}
	}
}

func TestOutcome(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		completed, total int
		threshold        float64
		critical         bool
		want             string
	}{
		{10, 10, 1, false, events.OutcomeSuccess},
		{8, 10, 0.8, false, events.OutcomePartial},
		{8, 10, 0.9, false, events.OutcomeFailed},
		{10, 10, 0.5, true, events.OutcomeFailed},
		{0, 0, 1, false, events.OutcomeSuccess},
	} {
		got, _ := aggregator.Outcome(events.Counts{Total: tc.total, Completed: tc.completed, Failed: tc.total - tc.completed}, tc.threshold, tc.critical)
		if got != tc.want {
			t.Errorf("%d/%d threshold %v critical %v: %s, want %s", tc.completed, tc.total, tc.threshold, tc.critical, got, tc.want)
		}
	}
}

func TestRemedy(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{events.KindError, events.KindPermanent, events.KindTimeout, events.KindPanic, events.KindLost, events.KindDependency, events.KindCancelled, events.KindUnknown} {
		text, retry := aggregator.Remedy(kind, events.StateFailed)
		if text == "" {
			t.Errorf("kind %s: no remediation", kind)
		}
		if want := kind != events.KindPermanent && kind != events.KindPanic && kind != events.KindUnknown; retry != want {
			t.Errorf("kind %s: retry recommended %v", kind, retry)
		}
	}
}

// FuzzCombine: whatever JSON results agents send, merging, deduping,
// sorting, transforming and reducing them never panics and yields JSON.
func FuzzCombine(f *testing.F) {
	f.Add(`[{"a":1,"b":"x"}]`, `{"a":2}`, "a")
	f.Add(`"text"`, `[1,[2,3],null]`, ".")
	f.Add(`{"a":{"b":[1]}}`, `[]`, "a.b")
	f.Fuzz(func(t *testing.T, x, y, path string) {
		in := raws(x, y)
		for _, d := range in {
			if !json.Valid(d) {
				return // the codec only lets valid JSON through
			}
		}
		for _, agg := range []events.Aggregate{
			{DedupeBy: path, SortBy: path},
			{Strategy: events.StrategyTransform, Select: map[string]string{"v": path}, SortBy: "v", Desc: true},
		} {
			out, err := aggregator.Combine(agg, in)
			if err != nil || !json.Valid(out) {
				t.Fatalf("%+v: %s, %v", agg, out, err)
			}
		}
		for _, op := range events.ReduceOps {
			r := &aggregator.Reducer{Op: op, Field: path}
			r.Add(in[0])
			r.Add(in[1])
			if !json.Valid(r.Value()) {
				t.Fatalf("%s: %s", op, r.Value())
			}
		}
	})
}
