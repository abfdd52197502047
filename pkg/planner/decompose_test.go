package planner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/planner"
)

// parseJob parses and validates a JSON job the way the planner receives it.
func parseJob(tb testing.TB, doc string) *events.Job {
	tb.Helper()
	job, err := events.ParseJob([]byte(doc), events.Limits{})
	if err != nil {
		tb.Fatalf("parse job: %v", err)
	}
	return job
}

// decompose plans job with the default routes and no custom decomposers.
func decompose(tb testing.TB, doc string) *planner.Plan {
	tb.Helper()
	plan, err := planner.Decompose(context.Background(), parseJob(tb, doc), nil, planner.DefaultRoutes, 0)
	if err != nil {
		tb.Fatalf("decompose: %v", err)
	}
	return plan
}

// wantValidationError fails unless err is a *events.ValidationError on field
// whose reason contains every word of reason.
func wantValidationError(tb testing.TB, err error, field string, reason ...string) {
	tb.Helper()
	var ve *events.ValidationError
	if !errors.As(err, &ve) {
		tb.Fatalf("error %v (%T), want a *events.ValidationError", err, err)
	}
	if !errors.Is(err, events.ErrInvalidJob) {
		tb.Errorf("error %v does not wrap events.ErrInvalidJob", err)
	}
	if ve.Field != field {
		tb.Errorf("field %q, want %q (reason: %s)", ve.Field, field, ve.Reason)
	}
	for _, r := range reason {
		if !strings.Contains(ve.Reason, r) {
			tb.Errorf("reason %q does not mention %q", ve.Reason, r)
		}
	}
}

func ids(p *planner.Plan) []string {
	out := make([]string, len(p.Tasks))
	for i, t := range p.Tasks {
		out[i] = t.ID()
	}
	return out
}

func inputs(p *planner.Plan) []string {
	out := make([]string, len(p.Tasks))
	for i, t := range p.Tasks {
		out[i] = string(t.Input())
	}
	return out
}

func raws(rs []json.RawMessage) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

func TestSplit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		input string
		size  int
		by    string
		want  []string
	}{
		{name: "list in pairs, short last chunk", input: `[1,2,3,4,5]`, size: 2, want: []string{`[1,2]`, `[3,4]`, `[5]`}},
		{name: "list in ones keeps item JSON", input: `[{"a":1},"x",null]`, size: 1, want: []string{`[{"a":1}]`, `["x"]`, `[null]`}},
		{name: "list smaller than one chunk", input: `[1,2]`, size: 10, want: []string{`[1,2]`}},
		{name: "list size divides evenly", input: `[1,2,3,4]`, size: 2, want: []string{`[1,2]`, `[3,4]`}},
		{name: "list after leading whitespace", input: " \n\t[true,false]", size: 1, want: []string{`[true]`, `[false]`}},
		{name: "list items compacted", input: `[ {"a": [1, 2]} , 3 ]`, size: 2, want: []string{`[{"a":[1,2]},3]`}},
		{name: "nested lists stay whole", input: `[[1,2],[3]]`, size: 1, want: []string{`[[1,2]]`, `[[3]]`}},
		{name: "empty list has no chunks", input: `[]`, size: 3, want: []string{}},
		{name: "words by default", input: `"a b  c\nd e"`, size: 2, want: []string{`"a b"`, `"c d"`, `"e"`}},
		{name: "words named", input: `"one two three"`, size: 2, by: "words", want: []string{`"one two"`, `"three"`}},
		{name: "lines skip blank ones", input: `"one\n\ntwo\n  \nthree"`, size: 2, by: "lines", want: []string{`"one\ntwo"`, `"three"`}},
		{name: "lines keep their spaces", input: `" a b \nc"`, size: 1, by: "lines", want: []string{`" a b "`, `"c"`}},
		{name: "blank text has no chunks", input: `"  \n "`, size: 1, want: []string{}},
		{name: "escaped text", input: `"caf\u00e9 \"au\" lait"`, size: 2, want: []string{`"café \"au\""`, `"lait"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := planner.Split(json.RawMessage(tc.input), tc.size, tc.by)
			if err != nil {
				t.Fatalf("Split: %v", err)
			}
			if g := raws(got); !slices.Equal(g, tc.want) {
				t.Errorf("chunks %q, want %q", g, tc.want)
			}
		})
	}
}

func TestSplit_Errors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		input string
		size  int
	}{
		{name: "number", input: `42`, size: 1},
		{name: "object", input: `{"a":[1,2]}`, size: 1},
		{name: "null", input: `null`, size: 1},
		{name: "no input", input: ``, size: 1},
		{name: "malformed list", input: `[1,`, size: 1},
		{name: "malformed text", input: `"abc`, size: 1},
		// A size below one used to loop for ever.
		{name: "zero size list", input: `[1,2]`, size: 0},
		{name: "zero size text", input: `"a b"`, size: 0},
		{name: "negative size", input: `[1,2]`, size: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := planner.Split(json.RawMessage(tc.input), tc.size, "")
			if err == nil {
				t.Errorf("Split(%s, %d) = %q, want an error", tc.input, tc.size, raws(got))
			}
		})
	}
}

func TestDecompose_Routes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		routes       map[string]string
		typ          string
		fallback     string
		wantType     string
		wantFallback string
	}{
		{name: "analysis to research", routes: planner.DefaultRoutes, typ: "analysis", wantType: "research"},
		{name: "writing to write", routes: planner.DefaultRoutes, typ: "writing", wantType: "write"},
		{name: "processing to data", routes: planner.DefaultRoutes, typ: "processing", wantType: "data"},
		{name: "unrouted type runs as itself", routes: planner.DefaultRoutes, typ: "ocr", wantType: "ocr"},
		{name: "agent type runs as itself", routes: planner.DefaultRoutes, typ: "research", wantType: "research"},
		{name: "fallback is routed too", routes: planner.DefaultRoutes, typ: "ocr", fallback: "analysis", wantType: "ocr", wantFallback: "research"},
		{name: "unrouted fallback", routes: planner.DefaultRoutes, typ: "analysis", fallback: "human", wantType: "research", wantFallback: "human"},
		{name: "no routes", routes: nil, typ: "analysis", fallback: "writing", wantType: "analysis", wantFallback: "writing"},
		{name: "custom routes", routes: map[string]string{"ocr": "vision", "analysis": "llm"}, typ: "ocr", fallback: "analysis", wantType: "vision", wantFallback: "llm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			step := map[string]any{"id": "s", "type": tc.typ}
			if tc.fallback != "" {
				step["fallback"] = tc.fallback
			}
			doc, err := json.Marshal(map[string]any{"steps": []any{step}})
			if err != nil {
				t.Fatal(err)
			}
			plan, err := planner.Decompose(context.Background(), parseJob(t, string(doc)), nil, tc.routes, 0)
			if err != nil {
				t.Fatalf("Decompose: %v", err)
			}
			if len(plan.Tasks) != 1 {
				t.Fatalf("%d tasks, want 1", len(plan.Tasks))
			}
			if got := plan.Tasks[0]; got.Type != tc.wantType || got.Fallback != tc.wantFallback {
				t.Errorf("type %q fallback %q, want %q and %q", got.Type, got.Fallback, tc.wantType, tc.wantFallback)
			}
		})
	}
}

// taskView is what a planned task says of itself.
type taskView struct {
	Step     planner.StepPlan
	ID       string
	Priority int
	Input    string
	Key      string
}

func TestDecompose_Defaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		step string
		want taskView
	}{
		{
			name: "defaults",
			step: `{"id":"s","type":"x"}`,
			want: taskView{Step: planner.StepPlan{Step: "s", Chunks: 1, Type: "x", MaxAttempts: 3, Backoff: 200 * time.Millisecond, MaxBackoff: 30 * time.Second, Timeout: 5 * time.Minute, Depth: 1, Whole: true}, ID: "s", Priority: 3, Input: `null`},
		},
		{
			name: "everything set",
			step: `{"id":"s","type":"x","input":{"k":1},"priority":1,"retries":0,"backoff":"1s","max_backoff":"4s","timeout":2500,"fallback":"y","critical":true}`,
			want: taskView{Step: planner.StepPlan{Step: "s", Chunks: 1, Type: "x", MaxAttempts: 1, Backoff: time.Second, MaxBackoff: 4 * time.Second, Timeout: 2500 * time.Millisecond, Fallback: "y", Critical: true, Depth: 1, Whole: true}, ID: "s", Priority: 1, Input: `{"k":1}`},
		},
		{
			name: "concurrency key from the input, rate",
			step: `{"id":"s","type":"x","input":{"customer":"acme"},"concurrency":{"key":"c-{input.customer}","limit":2},"rate":"5/s","burst":3}`,
			want: taskView{Step: planner.StepPlan{Step: "s", Chunks: 1, Type: "x", MaxAttempts: 3, Backoff: 200 * time.Millisecond, MaxBackoff: 30 * time.Second, Timeout: 5 * time.Minute, Depth: 1, Limit: 2, Rate: "5/s", Burst: 3, Whole: true}, ID: "s", Priority: 3, Input: `{"customer":"acme"}`, Key: "c-acme"},
		},
		{
			name: "many retries",
			step: `{"id":"s","type":"x","input":"t","retries":7,"priority":5}`,
			want: taskView{Step: planner.StepPlan{Step: "s", Chunks: 1, Type: "x", MaxAttempts: 8, Backoff: 200 * time.Millisecond, MaxBackoff: 30 * time.Second, Timeout: 5 * time.Minute, Depth: 1, Whole: true}, ID: "s", Priority: 5, Input: `"t"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			plan := decompose(t, `{"steps":[`+tc.step+`]}`)
			if len(plan.Tasks) != 1 {
				t.Fatalf("%d tasks, want 1", len(plan.Tasks))
			}
			pt := plan.Tasks[0]
			got := taskView{Step: pt.StepPlan.Exported(), ID: pt.ID(), Priority: pt.Priority, Input: string(pt.Input()), Key: pt.Key()}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("task\n%+v\nwant\n%+v", got, tc.want)
			}
			if i, ok := plan.Index(tc.want.ID); !ok || i != 0 {
				t.Errorf("Index(%q) = %d, %v; want 0, true", tc.want.ID, i, ok)
			}
		})
	}
}

func TestDecompose_SplitChunks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		step       string
		wantStep   string
		wantIDs    []string
		wantInputs []string
	}{
		{
			name:       "list",
			wantStep:   "nums",
			step:       `{"id":"nums","type":"data","split":2,"input":[1,2,3,4,5]}`,
			wantIDs:    []string{"nums-0", "nums-1", "nums-2"},
			wantInputs: []string{`[1,2]`, `[3,4]`, `[5]`},
		},
		{
			name:       "text by words",
			wantStep:   "doc",
			step:       `{"id":"doc","type":"research","split":3,"input":"the quick brown fox jumps"}`,
			wantIDs:    []string{"doc-0", "doc-1"},
			wantInputs: []string{`"the quick brown"`, `"fox jumps"`},
		},
		{
			name:       "text by lines",
			wantStep:   "log",
			step:       `{"id":"log","type":"research","split":1,"split_by":"lines","input":"a b\n\nc d\n"}`,
			wantIDs:    []string{"log-0", "log-1"},
			wantInputs: []string{`"a b"`, `"c d"`},
		},
		{
			// A step that is split is named by chunk even with one chunk, so
			// that its task ids do not depend on the input's size.
			name:       "one chunk still numbered",
			wantStep:   "one",
			step:       `{"id":"one","type":"data","split":10,"input":[1,2]}`,
			wantIDs:    []string{"one-0"},
			wantInputs: []string{`[1,2]`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			plan := decompose(t, `{"steps":[`+tc.step+`]}`)
			if got := ids(plan); !slices.Equal(got, tc.wantIDs) {
				t.Fatalf("ids %q, want %q", got, tc.wantIDs)
			}
			if got := inputs(plan); !slices.Equal(got, tc.wantInputs) {
				t.Errorf("inputs %q, want %q", got, tc.wantInputs)
			}
			for k, task := range plan.Tasks {
				if task.Index != k || task.Chunks != len(tc.wantIDs) || task.Step != tc.wantStep {
					t.Errorf("task %d: index %d, chunks %d, step %q", k, task.Index, task.Chunks, task.Step)
				}
				if i, ok := plan.Index(task.ID()); !ok || i != k {
					t.Errorf("Index(%q) = %d, %v; want %d", task.ID(), i, ok, k)
				}
			}
		})
	}
}

func TestDecompose_EmptySplit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, doc, field string
	}{
		{name: "empty list", doc: `{"steps":[{"id":"a","type":"x"},{"id":"b","type":"x","split":2,"input":[]}]}`, field: "steps[1].input"},
		{name: "blank text", doc: `{"steps":[{"id":"a","type":"x","split":2,"input":"   "}]}`, field: "steps[0].input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := planner.Decompose(context.Background(), parseJob(t, tc.doc), nil, nil, 0)
			wantValidationError(t, err, tc.field, "nothing to do")
		})
	}
}

// TestDecompose_DAG checks dependencies both ways and Depth: the number of
// steps on the longest chain from a task to the end, itself included.
func TestDecompose_DAG(t *testing.T) {
	t.Parallel()
	// a ──┬─ b ──┬─ d ── e
	//     └─ c ──┘
	//     └─ f
	// g (alone, split in two)
	plan := decompose(t, `{"steps":[
		{"id":"a","type":"x"},
		{"id":"b","type":"x","after":["a"]},
		{"id":"c","type":"x","after":["a"]},
		{"id":"d","type":"x","after":["b","c"]},
		{"id":"e","type":"x","after":["d"]},
		{"id":"f","type":"x","after":["a"]},
		{"id":"g","type":"x","split":1,"input":[1,2]}
	]}`)
	type view struct {
		Depth            int
		Deps, Dependents []string
	}
	want := map[string]view{
		"a":   {Depth: 4, Dependents: []string{"b", "c", "f"}},
		"b":   {Depth: 3, Deps: []string{"a"}, Dependents: []string{"d"}},
		"c":   {Depth: 3, Deps: []string{"a"}, Dependents: []string{"d"}},
		"d":   {Depth: 2, Deps: []string{"b", "c"}, Dependents: []string{"e"}},
		"e":   {Depth: 1, Deps: []string{"d"}},
		"f":   {Depth: 1, Deps: []string{"a"}},
		"g-0": {Depth: 1},
		"g-1": {Depth: 1},
	}
	if len(plan.Tasks) != len(want) {
		t.Fatalf("tasks %q, want %d", ids(plan), len(want))
	}
	names := func(idx []int) []string {
		var out []string
		for _, i := range idx {
			out = append(out, plan.Tasks[i].ID())
		}
		slices.Sort(out)
		return out
	}
	for i, task := range plan.Tasks {
		got := view{Depth: task.Depth, Deps: names(plan.Deps(i)), Dependents: names(plan.Dependents(i))}
		if w, ok := want[task.ID()]; !ok || !reflect.DeepEqual(got, w) {
			t.Errorf("%s: %+v, want %+v", task.ID(), got, w)
		}
	}
	if got, want := plan.Collect, []string{"e", "f", "g"}; !slices.Equal(got, want) {
		t.Errorf("collect %q, want the steps nothing waits for, %q", got, want)
	}
}

func TestDecompose_SplitDependencies(t *testing.T) {
	t.Parallel()
	// Every chunk of a step waits for every chunk of the steps it is after.
	plan := decompose(t, `{"steps":[
		{"id":"in","type":"x","split":1,"input":[1,2]},
		{"id":"out","type":"x","split":1,"input":[1,2,3],"after":["in"]}
	]}`)
	want := map[string][]int{"in-0": nil, "in-1": nil, "out-0": {0, 1}, "out-1": {0, 1}, "out-2": {0, 1}}
	for i, task := range plan.Tasks {
		if !slices.Equal(plan.Deps(i), want[task.ID()]) {
			t.Errorf("%s deps %v, want %v", task.ID(), plan.Deps(i), want[task.ID()])
		}
	}
	for _, i := range []int{0, 1} {
		if got := plan.Dependents(i); !slices.Equal(got, []int{2, 3, 4}) {
			t.Errorf("%s dependents %v, want [2 3 4]", plan.Tasks[i].ID(), got)
		}
	}
	if d := []int{plan.Tasks[0].Depth, plan.Tasks[2].Depth}; !slices.Equal(d, []int{2, 1}) {
		t.Errorf("depths %v, want [2 1]", d)
	}
}

func TestDecompose_DuplicateAfter(t *testing.T) {
	t.Parallel()
	// A step listed twice in "after" is one dependency: the dependent gets
	// its result once.
	plan := decompose(t, `{"steps":[{"id":"a","type":"x"},{"id":"b","type":"x","after":["a","a"]}]}`)
	if got := plan.Deps(1); !slices.Equal(got, []int{0}) {
		t.Errorf("deps %v, want [0]", got)
	}
	if got := plan.Dependents(0); !slices.Equal(got, []int{1}) {
		t.Errorf("dependents %v, want [1]", got)
	}
}

func TestDecompose_Collect(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{name: "one step", doc: `{"steps":[{"id":"a","type":"x"}]}`, want: []string{"a"}},
		{name: "sinks in job order", doc: `{"steps":[{"id":"z","type":"x"},{"id":"a","type":"x"},{"id":"m","type":"x","after":["a"]}]}`, want: []string{"z", "m"}},
		{name: "chosen steps", doc: `{"steps":[{"id":"a","type":"x"},{"id":"b","type":"x","after":["a"]}],"aggregate":{"steps":["a","b"]}}`, want: []string{"a", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := decompose(t, tc.doc).Collect; !slices.Equal(got, tc.want) {
				t.Errorf("collect %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDecompose_MaxTasks(t *testing.T) {
	t.Parallel()
	// 4 + 1 + 3 = 8 tasks.
	const doc = `{"steps":[
		{"id":"a","type":"x","split":1,"input":[1,2,3,4]},
		{"id":"b","type":"x"},
		{"id":"c","type":"x","split":1,"input":[1,2,3]}
	]}`
	for _, tc := range []struct {
		name      string
		max       int
		wantField string // "" for no error
	}{
		{name: "exactly the limit", max: 8},
		{name: "above the limit", max: 100},
		{name: "zero means the default", max: 0},
		{name: "negative means the default", max: -5},
		{name: "last step over", max: 7, wantField: "steps[2]"},
		{name: "second step over", max: 4, wantField: "steps[1]"},
		{name: "first step over", max: 3, wantField: "steps[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			plan, err := planner.Decompose(context.Background(), parseJob(t, doc), nil, nil, tc.max)
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("Decompose: %v", err)
				}
				if len(plan.Tasks) != 8 {
					t.Errorf("%d tasks, want 8", len(plan.Tasks))
				}
				return
			}
			wantValidationError(t, err, tc.wantField, fmt.Sprintf("more than %d tasks", tc.max))
		})
	}
}

func TestDecompose_DefaultMaxTasks(t *testing.T) {
	t.Parallel()
	over := make([]int, 2)
	in, err := json.Marshal(over)
	if err != nil {
		t.Fatal(err)
	}
	// A range of the limit, then one task more.
	job := &events.Job{Steps: []events.Step{
		{ID: "big", Type: "x", Split: 1, SplitBy: events.SplitRange, Input: json.RawMessage(fmt.Sprintf(`{"count":%d}`, events.DefaultMaxTasks-1))},
		{ID: "more", Type: "x", Split: 1, Input: in}}}
	_, err = planner.Decompose(context.Background(), job, nil, nil, 0)
	wantValidationError(t, err, "steps[1]", fmt.Sprintf("more than %d tasks", events.DefaultMaxTasks))
}

func TestDecompose_TaskIDs(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("s", 63)
	for _, tc := range []struct {
		name, doc, field string
	}{
		{
			// 63 letters + "-0" is 65: too long for a subject token.
			name:  "chunk id too long",
			doc:   `{"steps":[{"id":"` + long + `","type":"x","split":1,"input":[1]}]}`,
			field: "steps[0].id",
		},
		{
			// Step "a" split in two makes task "a-1", which is also step "a-1".
			name:  "chunk id is another step's id",
			doc:   `{"steps":[{"id":"a-1","type":"x"},{"id":"a","type":"x","split":1,"input":[1,2]}]}`,
			field: "steps[1].id",
		},
		{
			name:  "step id is an earlier chunk's id",
			doc:   `{"steps":[{"id":"a","type":"x","split":1,"input":[1,2]},{"id":"a-0","type":"x"}]}`,
			field: "steps[1].id",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			plan, err := planner.Decompose(context.Background(), parseJob(t, tc.doc), nil, nil, 0)
			if err == nil {
				t.Fatalf("planned %q, want an error", ids(plan))
			}
			wantValidationError(t, err, tc.field)
		})
	}
	// 62 letters + "-0" fits.
	ok := strings.Repeat("s", 62)
	if plan := decompose(t, `{"steps":[{"id":"`+ok+`","type":"x","split":1,"input":[1]}]}`); plan.Tasks[0].ID() != ok+"-0" {
		t.Errorf("id %q, want %q", plan.Tasks[0].ID(), ok+"-0")
	}
}

// pages is a decomposer that makes one task per page of a document whose
// input is its page count.
var pages = planner.DecomposerFunc(func(_ context.Context, s events.Step) ([]json.RawMessage, error) {
	var n int
	if err := json.Unmarshal(s.Input, &n); err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, n)
	for i := range out {
		out[i] = json.RawMessage(fmt.Sprintf(`{"doc":%q,"page":%d}`, s.ID, i+1))
	}
	return out, nil
})

func TestDecompose_CustomDecomposer(t *testing.T) {
	t.Parallel()
	job := parseJob(t, `{"steps":[
		{"id":"book","type":"analysis","decompose":"pages","input":3,"priority":2},
		{"id":"sum","type":"writing","after":["book"]}
	]}`)
	plan, err := planner.Decompose(context.Background(), job, map[string]planner.Decomposer{"pages": pages}, planner.DefaultRoutes, 0)
	if err != nil {
		t.Fatalf("Decompose: %v", err)
	}
	wantIDs := []string{"book-0", "book-1", "book-2", "sum"}
	if got := ids(plan); !slices.Equal(got, wantIDs) {
		t.Fatalf("ids %q, want %q", got, wantIDs)
	}
	wantInputs := []string{`{"doc":"book","page":1}`, `{"doc":"book","page":2}`, `{"doc":"book","page":3}`, `null`}
	if got := inputs(plan); !slices.Equal(got, wantInputs) {
		t.Errorf("inputs %q, want %q", got, wantInputs)
	}
	for k, task := range plan.Tasks[:3] {
		if task.Type != "research" || task.Priority != 2 || task.Index != k || task.Chunks != 3 || task.Depth != 2 {
			t.Errorf("%s: %+v", task.ID(), task)
		}
	}
	if got := plan.Deps(3); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("sum deps %v, want [0 1 2]", got)
	}
}

func TestDecompose_DecomposerSeesStepAndContext(t *testing.T) {
	t.Parallel()
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "marker")
	var gotStep events.Step
	var gotValue any
	spy := planner.DecomposerFunc(func(ctx context.Context, s events.Step) ([]json.RawMessage, error) {
		gotStep, gotValue = s, ctx.Value(key{})
		return []json.RawMessage{json.RawMessage(`1`)}, nil
	})
	job := parseJob(t, `{"steps":[{"id":"s","type":"x","decompose":"spy","input":{"q":"v"},"critical":true}]}`)
	plan, err := planner.Decompose(ctx, job, map[string]planner.Decomposer{"spy": spy}, nil, 0)
	if err != nil {
		t.Fatalf("Decompose: %v", err)
	}
	if gotValue != "marker" {
		t.Errorf("decomposer saw context value %v, want the caller's context", gotValue)
	}
	if gotStep.ID != "s" || string(gotStep.Input) != `{"q":"v"}` || !gotStep.Critical {
		t.Errorf("decomposer saw step %+v", gotStep)
	}
	// A decomposed step's tasks are numbered even when there is one.
	if got := ids(plan); !slices.Equal(got, []string{"s-0"}) {
		t.Errorf("ids %q, want [s-0]", got)
	}
}

func TestDecompose_DecomposerErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	fixed := func(out []json.RawMessage, err error) planner.Decomposer {
		return planner.DecomposerFunc(func(context.Context, events.Step) ([]json.RawMessage, error) { return out, err })
	}
	for _, tc := range []struct {
		name       string
		registered map[string]planner.Decomposer
		field      string
		reason     []string
	}{
		{name: "not registered", registered: nil, field: "steps[1].decompose", reason: []string{`"d"`}},
		{name: "registered under another name", registered: map[string]planner.Decomposer{"e": pages}, field: "steps[1].decompose", reason: []string{`"d"`}},
		{name: "decomposer fails", registered: map[string]planner.Decomposer{"d": fixed(nil, boom)}, field: "steps[1].decompose", reason: []string{"boom"}},
		{name: "input not JSON", registered: map[string]planner.Decomposer{"d": fixed([]json.RawMessage{json.RawMessage(`1`), json.RawMessage(`{oops`)}, nil)}, field: "steps[1].decompose", reason: []string{"task 1", "not JSON"}},
		{name: "empty input", registered: map[string]planner.Decomposer{"d": fixed([]json.RawMessage{nil}, nil)}, field: "steps[1].decompose", reason: []string{"task 0"}},
		{name: "no tasks", registered: map[string]planner.Decomposer{"d": fixed(nil, nil)}, field: "steps[1].input", reason: []string{"nothing to do"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			job := parseJob(t, `{"steps":[{"id":"a","type":"x"},{"id":"b","type":"x","decompose":"d"}]}`)
			_, err := planner.Decompose(context.Background(), job, tc.registered, nil, 0)
			wantValidationError(t, err, tc.field, tc.reason...)
		})
	}
}

func TestPlan_Lanes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{name: "one", doc: `{"steps":[{"id":"a","type":"x"}]}`, want: []string{"x.3"}},
		{
			name: "routed, deduplicated and sorted",
			doc: `{"steps":[
				{"id":"w","type":"writing","priority":1},
				{"id":"r","type":"analysis","split":1,"input":[1,2],"priority":2},
				{"id":"d","type":"processing"},
				{"id":"d2","type":"data"},
				{"id":"r5","type":"research","priority":5}
			]}`,
			want: []string{"data.3", "research.2", "research.5", "write.1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := decompose(t, tc.doc).Lanes(); !slices.Equal(got, tc.want) {
				t.Errorf("lanes %q, want %q", got, tc.want)
			}
		})
	}
}

// FuzzSplit: whatever the input and size, Split never panics or hangs, and
// the chunks of a list hold its items in order, at most size in each.
func FuzzSplit(f *testing.F) {
	f.Add(`[1,2,3,4,5]`, 2)
	f.Add(`"a b\nc"`, 1)
	f.Add(`[[1],{"a":null}]`, 0)
	f.Fuzz(func(t *testing.T, input string, size int) {
		size %= 8 // keep the number of chunks small
		chunks, err := planner.Split(json.RawMessage(input), size, "")
		if err != nil {
			return
		}
		if size <= 0 {
			t.Fatalf("size %d split into %d chunks, want an error", size, len(chunks))
		}
		var whole []json.RawMessage
		if json.Unmarshal([]byte(input), &whole) != nil {
			return // a text
		}
		var joined []json.RawMessage
		for _, c := range chunks {
			var items []json.RawMessage
			if err := json.Unmarshal(c, &items); err != nil || len(items) == 0 || len(items) > size {
				t.Fatalf("chunk %s of %s by %d: %v", c, input, size, err)
			}
			joined = append(joined, items...)
		}
		if len(joined) != len(whole) {
			t.Fatalf("%d items in the chunks, %d in %s", len(joined), len(whole), input)
		}
	})
}

// TestDecompose_ConcurrencyKeyPerTask derives one key per chunk of a split
// list, and refuses a job whose input lacks the key's field.
func TestDecompose_ConcurrencyKeyPerTask(t *testing.T) {
	t.Parallel()
	plan := decompose(t, `{"steps":[{"id":"s","type":"x","split":1,"concurrency":{"key":"cust-{input.0.customer}","limit":1},
		"input":[{"customer":"acme"},{"customer":"zeta"},{"customer":"acme"}]}]}`)
	var keys []string
	for _, pt := range plan.Tasks {
		keys = append(keys, pt.Key())
		if pt.Limit != 1 {
			t.Errorf("task %s limit %d, want 1", pt.ID(), pt.Limit)
		}
	}
	if fmt.Sprint(keys) != "[cust-acme cust-zeta cust-acme]" {
		t.Errorf("keys %v", keys)
	}
	_, err := planner.Decompose(context.Background(), parseJob(t, `{"steps":[{"id":"s","type":"x","split":1,
		"concurrency":{"key":"cust-{input.0.customer}","limit":1},"input":[{"customer":"a"},{"name":"b"}]}]}`), nil, nil, 0)
	wantValidationError(t, err, "steps[0].concurrency.key", "task s-1", `no field "customer"`)
}

// TestSplitRange: a range splits as the list of its integers would.
func TestSplitRange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		input string
		size  int
		want  []string
	}{
		{`{"count":5}`, 2, []string{`[0,1]`, `[2,3]`, `[4]`}},
		{`{"from":-2,"count":3}`, 1, []string{`[-2]`, `[-1]`, `[0]`}},
		{`{"from":1099511627776,"count":1}`, 7, []string{`[1099511627776]`}},
	} {
		got, err := planner.SplitRange(json.RawMessage(tc.input), tc.size, 100)
		if err != nil {
			t.Fatalf("%s by %d: %v", tc.input, tc.size, err)
		}
		if g := raws(got); !slices.Equal(g, tc.want) {
			t.Errorf("%s by %d: chunks %q, want %q", tc.input, tc.size, g, tc.want)
		}
	}
	plan := decompose(t, `{"steps":[{"id":"s","type":"x","split":1,"split_by":"range","input":{"count":3}}]}`)
	if len(plan.Tasks) != 3 || plan.Tasks[2].ID() != "s-2" || string(plan.Tasks[2].Input()) != `[2]` {
		t.Fatalf("plan of a range: %+v", plan.Tasks)
	}
}

// TestSplitRange_Rejects: each refusal, before anything is made.
func TestSplitRange_Rejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		input      string
		size, room int
		says       string
	}{
		{`{"count":0}`, 1, 10, "count from 1"},
		{`{"count":-1}`, 1, 10, "count from 1"},
		{`{"from":3}`, 1, 10, "count from 1"},
		{`{"count":10000001}`, 10000001, 10, "count from 1"},
		{`{"count":5,"from":1099511627777}`, 1, 10, "starts between"},
		{`{"count":11}`, 1, 10, "makes 11 tasks"},
		{`{"count":3000000}`, 1, 1_000_000, "makes 3000000 tasks"},
		{`{"count":5,"to":9}`, 1, 10, "unknown field"},
		{`{"count":5} {}`, 1, 10, "data after it"},
		{`{"count":5}}`, 1, 10, "data after it"},      // found by FuzzSplitRange
		{"{\"count\":5}\n\f", 1, 10, "data after it"}, // found by FuzzSplitRange
		{"{\"count\":5}\u00a0", 1, 10, "data after it"},
		{`[1,2]`, 1, 10, "a range is"},
		{`{"count":1.5}`, 1, 10, "a range is"},
		{`{"count":5}`, 0, 10, "size must be at least 1"},
	} {
		_, err := planner.SplitRange(json.RawMessage(tc.input), tc.size, tc.room)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s by %d in room %d: error %v, want one saying %q", tc.input, tc.size, tc.room, err, tc.says)
		}
	}
	_, err := planner.Decompose(context.Background(), parseJob(t, `{"steps":[{"id":"s","type":"x","split":1,"split_by":"range","input":{"count":11}}]}`), nil, nil, 10)
	wantValidationError(t, err, "steps[0].input", "makes 11 tasks")
}

// FuzzSplitRange: whatever a range gives, it is what splitting the list of
// its integers gives.
func FuzzSplitRange(f *testing.F) {
	f.Add(`{"count":5}`, 2)
	f.Add(`{"from":-7,"count":3}`, 1)
	f.Fuzz(func(t *testing.T, input string, size int) {
		got, err := planner.SplitRange(json.RawMessage(input), size, 1000)
		if err != nil {
			return
		}
		var r struct{ From, Count int64 }
		if err := json.Unmarshal([]byte(input), &r); err != nil {
			t.Fatalf("accepted %s, which is not a range: %v", input, err)
		}
		list := make([]int64, r.Count)
		for i := range list {
			list[i] = r.From + int64(i)
		}
		whole, _ := json.Marshal(list)
		want, err := planner.Split(whole, size, "")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(raws(got), raws(want)) {
			t.Fatalf("%s by %d: %q, the list's split %q", input, size, raws(got), raws(want))
		}
	})
}

// FuzzPlanIndex: an id, forged or not, locates a task only if that task's
// id is exactly it (a result names its task by id, and anyone can publish
// one).
func FuzzPlanIndex(f *testing.F) {
	plan := decompose(f, `{"steps":[{"id":"a","type":"x"},{"id":"s","type":"x","split":1,"input":[1,2,3,4,5,6,7,8,9,10,11,12]},
		{"id":"s-1x","type":"x"},{"id":"r","type":"x","split":1,"split_by":"range","input":{"count":100}}]}`)
	for _, id := range []string{"a", "s-0", "s-11", "s-12", "s-01", "s-+1", "s--1", "s-1x", "r-99", "r-100", "a-0", "", "-", "s-", "r-9223372036854775808"} {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		i, ok := plan.Index(id)
		if !ok {
			for k := range plan.Tasks {
				if plan.Tasks[k].ID() == id {
					t.Fatalf("Index(%q) found nothing; task %d has that id", id, k)
				}
			}
			return
		}
		if got := plan.Tasks[i].ID(); got != id {
			t.Fatalf("Index(%q) = %d, whose id is %q", id, i, got)
		}
	})
}
