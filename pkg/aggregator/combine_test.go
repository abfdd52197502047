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
	// Three task results: a list of two items, one item, a list of one.
	people := raws(`[{"id":2,"name":"b","score":5},{"id":1,"name":"a","score":9}]`, `{"id":2,"name":"b2","score":7}`, `[{"id":3,"name":"c"}]`)
	const (
		b  = `{"id":2,"name":"b","score":5}`
		a  = `{"id":1,"name":"a","score":9}`
		b2 = `{"id":2,"name":"b2","score":7}`
		c  = `{"id":3,"name":"c"}`
	)
	for _, tc := range []struct {
		name    string
		agg     events.Aggregate
		results []json.RawMessage
		want    string
	}{
		{name: "concatenate in order", agg: events.Aggregate{}, results: people, want: `[` + b + `,` + a + `,` + b2 + `,` + c + `]`},
		{name: "merge named", agg: events.Aggregate{Strategy: events.StrategyMerge}, results: people, want: `[` + b + `,` + a + `,` + b2 + `,` + c + `]`},
		{name: "scalars and lists", agg: events.Aggregate{}, results: raws(`1`, `[2,[3]]`, `"x"`, `null`), want: `[1,2,[3],"x",null]`},
		{name: "no results", agg: events.Aggregate{}, results: nil, want: `[]`},
		{name: "empty and unreadable data skipped", agg: events.Aggregate{}, results: raws(``, `[]`, `{oops`, `[1]`), want: `[1]`},

		{name: "dedupe by key, first wins", agg: events.Aggregate{DedupeBy: "id"}, results: people, want: `[` + b + `,` + a + `,` + c + `]`},
		{name: "dedupe whole items", agg: events.Aggregate{DedupeBy: "."}, results: raws(`[1,2,2]`, `[2,3]`, `"x"`, `"x"`, `{"k":[1]}`, `{"k":[1]}`), want: `[1,2,3,"x",{"k":[1]}]`},
		{name: "dedupe keeps items without the key", agg: events.Aggregate{DedupeBy: "k"}, results: raws(`[{"k":1},{"v":1},{"v":2},{"k":1}]`), want: `[{"k":1},{"v":1},{"v":2}]`},
		{name: "dedupe tells numbers from strings", agg: events.Aggregate{DedupeBy: "k"}, results: raws(`[{"k":1},{"k":"1"},{"k":1.0}]`), want: `[{"k":1},{"k":"1"}]`},
		{name: "dedupe by nested key", agg: events.Aggregate{DedupeBy: "m.id"}, results: raws(`[{"m":{"id":"x"},"n":1},{"m":{"id":"y"}},{"m":{"id":"x"},"n":2}]`), want: `[{"m":{"id":"x"},"n":1},{"m":{"id":"y"}}]`},

		{name: "sort numbers, missing last", agg: events.Aggregate{SortBy: "score"}, results: people, want: `[` + b + `,` + b2 + `,` + a + `,` + c + `]`},
		{name: "sort numbers descending, missing still last", agg: events.Aggregate{SortBy: "score", Desc: true}, results: people, want: `[` + a + `,` + b2 + `,` + b + `,` + c + `]`},
		{name: "sort strings", agg: events.Aggregate{SortBy: "name"}, results: people, want: `[` + a + `,` + b + `,` + b2 + `,` + c + `]`},
		{name: "dedupe then sort descending", agg: events.Aggregate{SortBy: "name", Desc: true, DedupeBy: "id"}, results: people, want: `[` + c + `,` + b + `,` + a + `]`},
		{name: "sort the items themselves", agg: events.Aggregate{SortBy: "."}, results: raws(`[3,1]`, `2`, `[-4.5]`), want: `[-4.5,1,2,3]`},
		{
			name:    "sort kinds: numbers, strings, then the rest",
			agg:     events.Aggregate{SortBy: "v"},
			results: raws(`[{"v":"b"},{"v":2},{"v":null},{"v":"a"},{"v":10},{"v":true},{}]`),
			want:    `[{"v":2},{"v":10},{"v":"a"},{"v":"b"},{"v":null},{"v":true},{}]`,
		},
		{
			name:    "sort kinds descending: each kind reversed, the rest still last",
			agg:     events.Aggregate{SortBy: "v", Desc: true},
			results: raws(`[{"v":"b"},{"v":2},{"v":null},{"v":"a"},{"v":10},{"v":true},{}]`),
			want:    `[{"v":10},{"v":2},{"v":"b"},{"v":"a"},{"v":null},{"v":true},{}]`,
		},
		{
			name:    "sort is stable",
			agg:     events.Aggregate{SortBy: "s"},
			results: raws(`[{"s":1,"n":"first"},{"s":0}]`, `{"s":1,"n":"second"}`),
			want:    `[{"s":0},{"n":"first","s":1},{"n":"second","s":1}]`,
		},
		{
			name:    "sort descending is stable",
			agg:     events.Aggregate{SortBy: "s", Desc: true},
			results: raws(`[{"s":1,"n":"first"},{"s":0}]`, `{"s":1,"n":"second"}`),
			want:    `[{"n":"first","s":1},{"n":"second","s":1},{"s":0}]`,
		},
		{name: "sort by nested field", agg: events.Aggregate{SortBy: "m.r"}, results: raws(`[{"m":{"r":2}},{"m":1},{"m":{"r":1}}]`), want: `[{"m":{"r":1}},{"m":{"r":2}},{"m":1}]`},

		{
			name:    "transform selects and renames",
			agg:     events.Aggregate{Strategy: events.StrategyTransform, Select: map[string]string{"who": "name", "points": "score"}},
			results: people,
			want:    `[{"points":5,"who":"b"},{"points":9,"who":"a"},{"points":7,"who":"b2"},{"points":null,"who":"c"}]`,
		},
		{
			name:    "transform nested and whole items",
			agg:     events.Aggregate{Strategy: events.StrategyTransform, Select: map[string]string{"x": "a.b", "all": "."}},
			results: raws(`[{"a":{"b":1}},{"a":2},7]`),
			want:    `[{"all":{"a":{"b":1}},"x":1},{"all":{"a":2},"x":null},{"all":7,"x":null}]`,
		},
		{
			name:    "transform, then dedupe and sort on the new names",
			agg:     events.Aggregate{Strategy: events.StrategyTransform, Select: map[string]string{"key": "id", "who": "name"}, DedupeBy: "key", SortBy: "who", Desc: true},
			results: people,
			want:    `[{"key":3,"who":"c"},{"key":2,"who":"b"},{"key":1,"who":"a"}]`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := aggregator.Combine(tc.agg, tc.results)
			if err != nil {
				t.Fatalf("Combine: %v", err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestCombine_DoesNotChangeInput(t *testing.T) {
	t.Parallel()
	in := raws(`[{"k":2},{"k":1},{"k":2}]`)
	before := string(in[0])
	if _, err := aggregator.Combine(events.Aggregate{DedupeBy: "k", SortBy: "k"}, in); err != nil {
		t.Fatalf("Combine: %v", err)
	}
	if string(in[0]) != before {
		t.Errorf("input changed to %s", in[0])
	}
}

func TestReducer_Value(t *testing.T) {
	t.Parallel()
	// Six items: n is 4, -1 and 10 on three of them (sum 13), missing or not
	// a number on the other three.
	mixed := raws(`[{"n":4},{"n":-1}]`, `{"n":10}`, `{"m":1}`, `[{"n":"x"}]`, `{"n":{"deep":1}}`)
	for _, tc := range []struct {
		name, op, field string
		data            []json.RawMessage
		want            string
	}{
		{name: "sum", op: "sum", field: "n", data: mixed, want: `{"count":3,"field":"n","op":"sum","skipped":3,"value":13}`},
		{name: "avg", op: "avg", field: "n", data: mixed, want: `{"count":3,"field":"n","op":"avg","skipped":3,"value":4.333333333333333}`},
		{name: "min", op: "min", field: "n", data: mixed, want: `{"count":3,"field":"n","op":"min","skipped":3,"value":-1}`},
		{name: "max", op: "max", field: "n", data: mixed, want: `{"count":3,"field":"n","op":"max","skipped":3,"value":10}`},
		{name: "count items", op: "count", field: ".", data: mixed, want: `{"count":6,"field":".","op":"count","skipped":0,"value":6}`},
		{name: "count without a field", op: "count", field: "", data: mixed, want: `{"count":6,"field":"","op":"count","skipped":0,"value":6}`},
		{name: "count a field counts its numbers", op: "count", field: "n", data: mixed, want: `{"count":3,"field":"n","op":"count","skipped":3,"value":3}`},
		{name: "nested field", op: "sum", field: "n.deep", data: mixed, want: `{"count":1,"field":"n.deep","op":"sum","skipped":5,"value":1}`},
		{name: "no numbers", op: "max", field: "zzz", data: mixed, want: `{"count":0,"field":"zzz","op":"max","skipped":6,"value":null}`},
		{name: "nothing added", op: "sum", field: "n", data: nil, want: `{"count":0,"field":"n","op":"sum","skipped":0,"value":null}`},
		{name: "nothing counted", op: "count", field: ".", data: nil, want: `{"count":0,"field":".","op":"count","skipped":0,"value":0}`},
		{name: "the items themselves", op: "sum", field: ".", data: raws(`[1,2.5]`, `3`, `"x"`), want: `{"count":3,"field":".","op":"sum","skipped":1,"value":6.5}`},
		{name: "max of negatives", op: "max", field: ".", data: raws(`[-5,-3,-9]`), want: `{"count":3,"field":".","op":"max","skipped":0,"value":-3}`},
		{name: "min of positives", op: "min", field: ".", data: raws(`[5,3,9]`), want: `{"count":3,"field":".","op":"min","skipped":0,"value":3}`},
		{name: "avg of one", op: "avg", field: "v", data: raws(`{"v":-2}`), want: `{"count":1,"field":"v","op":"avg","skipped":0,"value":-2}`},
		{name: "unreadable data skipped", op: "sum", field: ".", data: raws(`{oops`, ``, `[2]`), want: `{"count":1,"field":".","op":"sum","skipped":0,"value":2}`},
		// JSON has no infinity: a sum past the float range has no value,
		// but the output stays JSON.
		{name: "sum out of range", op: "sum", field: ".", data: raws(`[1.5e308,1.5e308]`), want: `{"count":2,"field":".","op":"sum","skipped":0,"value":null}`},
		{name: "avg out of range", op: "avg", field: ".", data: raws(`[1.5e308,1.5e308]`), want: `{"count":2,"field":".","op":"avg","skipped":0,"value":null}`},
		{name: "max of huge numbers", op: "max", field: ".", data: raws(`[1.5e308,1.6e308]`), want: `{"count":2,"field":".","op":"max","skipped":0,"value":1.6e+308}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := &aggregator.Reducer{Op: tc.op, Field: tc.field}
			for _, d := range tc.data {
				r.Add(d)
			}
			got := r.Value()
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestReducer_Add(t *testing.T) {
	t.Parallel()
	// A reducer folds results as they arrive: the value after each result
	// is that of everything so far, and reading it changes nothing.
	r := &aggregator.Reducer{Op: "avg", Field: "v"}
	for _, step := range []struct {
		data string
		want string
	}{
		{data: `{"v":2}`, want: `{"count":1,"field":"v","op":"avg","skipped":0,"value":2}`},
		{data: `[{"v":4},{"v":"no"}]`, want: `{"count":2,"field":"v","op":"avg","skipped":1,"value":3}`},
		{data: `[]`, want: `{"count":2,"field":"v","op":"avg","skipped":1,"value":3}`},
		{data: `[{"v":9},{"v":-3}]`, want: `{"count":4,"field":"v","op":"avg","skipped":1,"value":3}`},
	} {
		r.Add(json.RawMessage(step.data))
		for range 2 {
			if got := string(r.Value()); got != step.want {
				t.Errorf("after %s: got %s, want %s", step.data, got, step.want)
			}
		}
	}
}

func TestRemedy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind, status string
		wantRetry    bool
	}{
		{kind: events.KindError, status: events.StateFailed, wantRetry: true},
		{kind: events.KindTimeout, status: events.StateFailed, wantRetry: true},
		{kind: events.KindLost, status: events.StateFailed, wantRetry: true},
		{kind: events.KindDependency, status: events.StateCancelled, wantRetry: true},
		{kind: events.KindCancelled, status: events.StateCancelled, wantRetry: true},
		{kind: events.KindPermanent, status: events.StateFailed, wantRetry: false},
		{kind: events.KindPanic, status: events.StateFailed, wantRetry: false},
		{kind: events.KindUnknown, status: events.StateFailed, wantRetry: false},
		{kind: "", status: events.StateCancelled, wantRetry: true},
	} {
		t.Run(tc.kind+"/"+tc.status, func(t *testing.T) {
			t.Parallel()
			text, retry := aggregator.Remedy(tc.kind, tc.status)
			if text == "" {
				t.Error("no remediation")
			}
			if retry != tc.wantRetry {
				t.Errorf("retry recommended %v, want %v", retry, tc.wantRetry)
			}
		})
	}
}

func TestRemedy_Distinct(t *testing.T) {
	t.Parallel()
	// Each kind gets its own advice; a generic error, or a failure of no
	// known kind, gets the generic one.
	generic, _ := aggregator.Remedy(events.KindError, events.StateFailed)
	if other, _ := aggregator.Remedy("", events.StateFailed); other != generic {
		t.Errorf("no kind: %q, want the generic advice %q", other, generic)
	}
	seen := map[string]string{generic: events.KindError}
	for _, kind := range []string{events.KindTimeout, events.KindLost, events.KindDependency, events.KindCancelled,
		events.KindPermanent, events.KindPanic, events.KindUnknown} {
		text, _ := aggregator.Remedy(kind, events.StateFailed)
		if prev, dup := seen[text]; dup {
			t.Errorf("%s gives the same advice as %s: %q", kind, prev, text)
		}
		seen[text] = kind
	}
	if text, _ := aggregator.Remedy("", events.StateCancelled); seen[text] != "" {
		t.Errorf("a cancellation of no kind gets the advice for %s", seen[text])
	}
}

// FuzzCombine: whatever JSON results agents send, merging, deduping,
// sorting, transforming and reducing them never panics and yields JSON.
func FuzzCombine(f *testing.F) {
	f.Add(`[{"a":1,"b":"x"}]`, `{"a":2}`, "a")
	f.Add(`"text"`, `[1,[2,3],null]`, ".")
	f.Add(`{"a":{"b":[1]}}`, `[]`, "a.b")
	f.Add(`[1.5e308]`, `1.5e308`, ".")
	f.Fuzz(func(t *testing.T, x, y, path string) {
		in := raws(x, y)
		for _, d := range in {
			if !json.Valid(d) {
				return // the codec only lets valid JSON through
			}
		}
		for _, agg := range []events.Aggregate{
			{DedupeBy: path, SortBy: path},
			{DedupeBy: path, SortBy: path, Desc: true},
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
