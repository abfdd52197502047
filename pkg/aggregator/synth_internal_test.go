package aggregator

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-dev/baton/pkg/events"
)

// synthState builds a workflow's state with open's newState and feeds it
// results the way onResult does (fold keeps what the final output needs).
func synthState(tb testing.TB, agg events.Aggregate, results ...events.Result) *state {
	tb.Helper()
	rec := events.Workflow{ID: "wf", Counts: events.Counts{Total: len(results)}, Collect: []string{"s"},
		SuccessThreshold: 0.5, Aggregate: agg, Submitted: time.Unix(100, 0).UTC()}
	s := newState(rec)
	for i := range results {
		r := results[i]
		if _, collected := s.collect[r.Step]; collected && r.Status == events.StateCompleted {
			r.Data = s.fold(r.Data)
		}
		s.final.put(&r)
	}
	return s
}

// parseAggregate reads an aggregate the way a job gives it, validated.
func parseAggregate(tb testing.TB, agg string) events.Aggregate {
	tb.Helper()
	job, err := events.ParseJob([]byte(`{"steps":[{"id":"s","type":"x"}],"aggregate":`+agg+`}`), events.Limits{})
	if err != nil {
		tb.Fatalf("aggregate %s: %v", agg, err)
	}
	return job.Aggregate
}

func finalOf(tb testing.TB, a *Aggregator, s *state) *events.Output {
	tb.Helper()
	out, err := a.final(s, false)
	if err != nil {
		tb.Fatalf("final: %v", err)
	}
	return out
}

// requireJSON fails unless got and want are the same JSON value.
func requireJSON(tb testing.TB, what string, got json.RawMessage, want string) {
	tb.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		tb.Fatalf("%s: %s is not JSON: %v", what, got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		tb.Fatalf("%s: want %s is not JSON: %v", what, want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		tb.Errorf("%s:\n got %s\nwant %s", what, gb, wb)
	}
}

// The brief's example: {"summary": merge(texts), "confidence": avg(scores)}.
const briefAggregate = `{"fields":{"summary":{"field":"text","join":" "},"confidence":{"op":"avg","field":"score"}}}`

func TestSynthesis_NamedFields(t *testing.T) {
	t.Parallel()
	docs := []events.Result{
		completedResult("s-0", "s", 0, `{"text":"Sales rose.","score":0.75,"region":"north"}`),
		completedResult("s-1", "s", 1, `[{"text":"Costs fell.","score":0.5,"region":"south"},{"text":"Sales rose.","score":0.25,"region":"north"}]`),
		completedResult("s-2", "s", 2, `{"text":"Margins held.","score":1,"region":"east"}`),
	}
	for _, tc := range []struct {
		name, agg, want string
		results         []events.Result
	}{
		{name: "merge and avg (the brief's example)", agg: briefAggregate, results: docs,
			want: `{"summary":"Sales rose. Costs fell. Sales rose. Margins held.","confidence":0.625}`},
		{name: "merge deduplicated and sorted, as a list", agg: `{"fields":{"texts":{"field":"text","dedupe_by":"text","sort_by":"score","desc":true}}}`,
			results: docs, want: `{"texts":["Margins held.","Sales rose.","Costs fell."]}`},
		{name: "merge whole items", agg: `{"fields":{"all":{"strategy":"merge","sort_by":"score"}}}`,
			results: docs[2:], want: `{"all":[{"text":"Margins held.","score":1,"region":"east"}]}`},
		{name: "every reduce op", agg: `{"fields":{"sum":{"op":"sum","field":"score"},"min":{"op":"min","field":"score"},` +
			`"max":{"strategy":"reduce","op":"max","field":"score"},"n":{"op":"count"},"named":{"op":"count","field":"region"},"none":{"op":"avg","field":"nope"}}}`,
			results: docs, want: `{"sum":2.5,"min":0.25,"max":1,"n":4,"named":0,"none":null}`},
		{name: "transform with select and compute", agg: `{"fields":{"rows":{"strategy":"transform","select":{"r":"region"},` +
			`"compute":{"pct":"round(item.score * 100)","grade":"item.score >= 0.6 ? \"high\" : \"low\"","n":"index"}}}}`,
			results: docs[:2], want: `{"rows":[{"r":"north","pct":75,"grade":"high","n":0},{"r":"south","pct":50,"grade":"low","n":1},{"r":"north","pct":25,"grade":"low","n":2}]}`},
		{name: "transform compute alone keeps the item, then a field of it", agg: `{"fields":{"pcts":{"strategy":"transform","compute":{"pct":"item.score * 100"},"field":"pct"}}}`,
			results: docs[:1], want: `{"pcts":[75]}`},
		{name: "expression fields see the others and the items", agg: `{"fields":{"confidence":{"op":"avg","field":"score"},` +
			`"label":{"expr":"fields.confidence > 0.6 ? \"confident\" : \"unsure\""},"regions":{"expr":"len(filter(items, #.region == \"north\"))"}}}`,
			results: docs, want: `{"confidence":0.625,"label":"confident","regions":2}`},
		{name: "no results", agg: briefAggregate, results: []events.Result{failedResult("s-0", "s", 0, events.KindError)},
			want: `{"summary":"","confidence":null}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := finalOf(t, &Aggregator{}, synthState(t, parseAggregate(t, tc.agg), tc.results...))
			requireJSON(t, "data", out.Data, tc.want)
			for _, e := range out.Errors {
				if e.Kind == events.KindExpression {
					t.Errorf("expression error: %+v", e)
				}
			}
		})
	}
}

// TestSynthesis_TopLevelCompute: transform's compute adds fields to each item
// of a plain (not named) output.
func TestSynthesis_TopLevelCompute(t *testing.T) {
	t.Parallel()
	agg := parseAggregate(t, `{"strategy":"transform","select":{"name":"n"},"compute":{"double":"item.v * 2"},"sort_by":"double","desc":true}`)
	out := finalOf(t, &Aggregator{}, synthState(t, agg,
		completedResult("s-0", "s", 0, `[{"n":"a","v":1},{"n":"b","v":3}]`), completedResult("s-1", "s", 1, `{"n":"c","v":2}`)))
	requireJSON(t, "data", out.Data, `[{"name":"b","double":6},{"name":"c","double":4},{"name":"a","double":2}]`)
}

func TestSynthesis_Interpolation(t *testing.T) {
	t.Parallel()
	nums := []events.Result{
		completedResult("s-0", "s", 0, `10`), failedResult("s-1", "s", 1, events.KindError),
		completedResult("s-2", "s", 2, `20`), completedResult("s-3", "s", 3, `60`), failedResult("s-4", "s", 4, events.KindTimeout),
	}
	objs := []events.Result{
		failedResult("s-0", "s", 0, events.KindError),
		completedResult("s-1", "s", 1, `{"text":"a","score":0.2,"m":{"w":4}}`),
		completedResult("s-2", "s", 2, `{"text":"b","score":0.6,"m":{"w":8}}`),
		failedResult("s-3", "s", 3, events.KindError),
		completedResult("s-4", "s", 4, `{"text":"c","score":1.0,"m":{"w":"x"}}`),
	}
	for _, tc := range []struct {
		name, agg, want string
		results         []events.Result
		interpolated    []string
	}{
		{name: "mean of numbers", agg: `{"fallback":{"interpolate":"mean"}}`, results: nums,
			want: `[10,30,20,60,30]`, interpolated: []string{"s-1", "s-4"}},
		{name: "median of numbers", agg: `{"fallback":{"interpolate":"median"}}`, results: nums,
			want: `[10,20,20,60,20]`, interpolated: []string{"s-1", "s-4"}},
		{name: "previous number", agg: `{"fallback":{"interpolate":"previous"}}`, results: nums,
			want: `[10,10,20,60,60]`, interpolated: []string{"s-1", "s-4"}},
		{name: "previous without an earlier task", agg: `{"fallback":{"interpolate":"previous"}}`, results: objs,
			want:         `[{"text":"a","score":0.2,"m":{"w":4}},{"text":"b","score":0.6,"m":{"w":8}},{"score":0.6,"interpolated":true},{"text":"c","score":1.0,"m":{"w":"x"}}]`,
			interpolated: []string{"s-3"}},
		{name: "reduce with interpolated stand-ins", agg: `{"strategy":"reduce","op":"sum","field":".","fallback":{"interpolate":"mean"}}`, results: nums,
			want: `{"op":"sum","field":".","count":5,"skipped":0,"value":150}`, interpolated: []string{"s-1", "s-4"}},
		{name: "named fields: the reduced path and numeric fields", agg: `{"fields":{"confidence":{"op":"sum","field":"score"},"w":{"op":"max","field":"m.w"},` +
			`"texts":{"field":"text"}},"fallback":{"interpolate":"median"}}`, results: objs,
			want: `{"confidence":3,"w":8,"texts":["a","b","c"]}`, interpolated: []string{"s-0", "s-3"}},
		{name: "none succeeded", agg: `{"fallback":{"interpolate":"mean"}}`,
			results: []events.Result{failedResult("s-0", "s", 0, events.KindError), failedResult("s-1", "s", 1, events.KindError)},
			want:    `[]`},
		{name: "no numbers: no stand-in", agg: `{"fallback":{"interpolate":"mean"}}`,
			results: []events.Result{completedResult("s-0", "s", 0, `"text"`), completedResult("s-1", "s", 1, `{"text":"b"}`), failedResult("s-2", "s", 2, events.KindError)},
			want:    `["text",{"text":"b"}]`},
		{name: "a literal fallback object is not an interpolation", agg: `{"fallback":{"interpolate":"mean","score":0}}`,
			results: []events.Result{completedResult("s-0", "s", 0, `1`), failedResult("s-1", "s", 1, events.KindError)},
			want:    `[1,{"interpolate":"mean","score":0}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := finalOf(t, &Aggregator{}, synthState(t, parseAggregate(t, tc.agg), tc.results...))
			requireJSON(t, "data", out.Data, tc.want)
			if !slices.Equal(out.Metadata.Interpolated, tc.interpolated) {
				t.Errorf("interpolated %q, want %q", out.Metadata.Interpolated, tc.interpolated)
			}
			if want := parseAggregate(t, tc.agg).Interpolation(); out.Metadata.Interpolation != want {
				t.Errorf("interpolation %q, want %q", out.Metadata.Interpolation, want)
			}
			var failed []string
			for _, r := range tc.results {
				if r.Status != events.StateCompleted {
					failed = append(failed, r.Task)
				}
			}
			if !slices.Equal(out.Missing, failed) {
				t.Errorf("missing %q, want every failed task %q, interpolated or not", out.Missing, failed)
			}
		})
	}
}

// TestSynthesis_ExpressionErrors: an expression that fails on an item makes
// its value null and an error of the output; the other items and fields are
// computed; the errors are bounded; a spent time budget stops the rest.
func TestSynthesis_ExpressionErrors(t *testing.T) {
	t.Parallel()
	agg := parseAggregate(t, `{"strategy":"transform","compute":{"inv":"1 / item.v","up":"item.v - 1"}}`)
	out := finalOf(t, &Aggregator{}, synthState(t, agg,
		completedResult("s-0", "s", 0, `{"v":2}`), completedResult("s-1", "s", 1, `[{"v":0},{"v":"x"}]`), failedResult("s-2", "s", 2, events.KindError)))
	requireJSON(t, "data", out.Data, `[{"v":2,"inv":0.5,"up":1},{"v":0,"inv":null,"up":-1},{"v":"x","inv":null,"up":null}]`)
	var got []string
	for _, e := range out.Errors {
		got = append(got, e.Task+" "+e.Kind+" "+e.Message)
		if e.Kind == events.KindExpression && (e.Remediation == "" || e.RetryRecommended || e.Status != events.StateCompleted) {
			t.Errorf("expression error %+v: want a remediation, no retry, the task's status", e)
		}
	}
	want := []string{
		"s-2 error it broke",
		"s-1 expression aggregate.compute.inv: item 1: the value cannot be written as JSON: json: unsupported value: +Inf",
		"s-1 expression aggregate.compute.inv: item 2: line 1, column 3: invalid operation: int / string",
		"s-1 expression aggregate.compute.up: item 2: line 1, column 8: invalid operation: string - int",
	}
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if out.Status != events.OutcomePartial {
		t.Errorf("status %q: expression errors do not change the outcome", out.Status)
	}

	// Many failures: the first ones listed, the rest counted.
	var many []events.Result
	for i := range 30 {
		many = append(many, completedResult("s-"+string(rune('a'+i)), "s", i, `{"v":"x"}`))
	}
	out = finalOf(t, &Aggregator{}, synthState(t, parseAggregate(t, `{"fields":{"x":{"strategy":"transform","compute":{"y":"item.v * 2"}}}}`), many...))
	if n := len(out.Errors); n != maxExprErrors+1 || out.Errors[n-1].Message != "20 more expression errors" {
		t.Errorf("%d errors, last %+v; want %d and a count of the rest", n, out.Errors[n-1], maxExprErrors+1)
	}

	// A spent budget: nothing more is computed, and the output says so.
	out = finalOf(t, &Aggregator{cfg: Config{ExprTime: time.Nanosecond}}, synthState(t, parseAggregate(t, briefAggregate[:len(briefAggregate)-2]+`,"n":{"expr":"len(items)"}}}`),
		completedResult("s-0", "s", 0, `{"text":"a","score":1}`)))
	requireJSON(t, "data", out.Data, `{"summary":"a","confidence":1,"n":null}`)
	if len(out.Errors) != 1 || !strings.Contains(out.Errors[0].Message, "expressions took more than 1ns") {
		t.Errorf("errors %+v, want one saying the time budget ran out", out.Errors)
	}
}

// TestSynthesis_Partials: partial outputs of named fields carry the reduce
// fields so far; the data is kept for the final output.
func TestSynthesis_Partials(t *testing.T) {
	t.Parallel()
	s := synthState(t, parseAggregate(t, briefAggregate),
		completedResult("s-0", "s", 0, `{"text":"a","score":1}`), completedResult("s-1", "s", 1, `{"text":"b","score":0}`))
	requireJSON(t, "partial data", s.partialData(), `{"confidence":0.5}`)
	if d := s.final.get("s-1", "s", 1).Data; string(d) != `{"text":"b","score":0}` {
		t.Errorf("kept data %s, want the result's data", d)
	}
	plain := synthState(t, parseAggregate(t, `{"strategy":"reduce","op":"sum","field":"."}`), completedResult("s-0", "s", 0, `1`))
	if plain.final.get("s-0", "s", 0).Data != nil {
		t.Error("a reduce without interpolation keeps the data: it should fold it and drop it")
	}
	if d := synthState(t, parseAggregate(t, `{"fields":{"t":{"field":"text"}}}`)).partialData(); d != nil {
		t.Errorf("partial data %s for an output without reduce fields, want none", d)
	}
}

// TestSynthesis_HostileExpressionTime: an expression made to run as long as
// it may on each of many items stops at its per-run bound, and all of them
// together at the output's budget: the final output comes, on time, with
// the remaining values null and the errors bounded. Unbounded, each run
// would take some 20 s.
func TestSynthesis_HostileExpressionTime(t *testing.T) {
	t.Parallel()
	slow := `all(1..9990, ` + strings.Repeat(`lastIndexOf(item.t, item.u) < 0 && `, 12) + `true)`
	agg := parseAggregate(t, `{"strategy":"transform","compute":{"slow":"`+slow+`"}}`)
	item := `{"t":"` + strings.Repeat("x", 30_000) + `","u":"` + strings.Repeat("x", 14_999) + `y"}`
	var results []events.Result
	for i := range 50 {
		results = append(results, completedResult(fmt.Sprintf("s-%03d", i), "s", i, item))
	}
	start := time.Now()
	out := finalOf(t, &Aggregator{cfg: Config{ExprTime: 300 * time.Millisecond}}, synthState(t, agg, results...))
	elapsed := time.Since(start)
	if elapsed > 5*time.Second { // 300ms of expressions, the rest decoding and encoding (slow under -race)
		t.Errorf("final output took %v, want about the 300ms budget", elapsed)
	}
	if n := len(out.Errors); n > maxExprErrors+2 || !strings.Contains(out.Errors[n-1].Message, "expressions took more than 300ms") {
		t.Errorf("%d errors, last %+v; want a bounded list ending with the spent budget", n, out.Errors[n-1])
	}
	var items []map[string]any
	if err := json.Unmarshal(out.Data, &items); err != nil || len(items) != 50 || items[49]["slow"] != nil {
		t.Errorf("data: %d items, err %v; want 50, the last without a value", len(items), err)
	}
	t.Logf("50 hostile items: final output in %v, %d errors", elapsed, len(out.Errors))
}
