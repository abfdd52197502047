package aggregator

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/expression"
)

// This file builds the outputs that need every item at the end: named
// fields, computed fields (expressions) and interpolated fallbacks
// (Aggregate.NeedsItems). Outputs of the other jobs are built as before, in
// aggregator.go and Combine.

// entry is one item of the collected results with the task it came from.
type entry struct {
	v                  any
	task, step, status string
}

// shaping is what merge and transform do to items.
type shaping struct {
	strategy, dedupeBy, sortBy string
	desc                       bool
	sel, compute               map[string]string
	path                       string // where the options are in the job, for errors
}

func shapingOf(a events.Aggregate) shaping {
	return shaping{strategy: a.Strategy, dedupeBy: a.DedupeBy, sortBy: a.SortBy, desc: a.Desc,
		sel: a.Select, compute: a.Compute, path: "aggregate"}
}

func fieldShaping(name string, f events.NamedField) shaping {
	return shaping{strategy: f.Strategy, dedupeBy: f.DedupeBy, sortBy: f.SortBy, desc: f.Desc,
		sel: f.Select, compute: f.Compute, path: "aggregate.fields." + name}
}

// maxExprErrors bounds the expression errors an output lists one by one.
const maxExprErrors = 10

// evaluator runs a job's expressions within a time budget, keeping the
// errors for the output.
type evaluator struct {
	deadline time.Time
	budget   time.Duration
	progs    map[string]*expression.Program
	errs     []events.TaskError
	more     int  // errors beyond maxExprErrors
	spent    bool // the budget ran out: expressions are no longer run
}

func newEvaluator(budget time.Duration) *evaluator {
	return &evaluator{deadline: time.Now().Add(budget), budget: budget, progs: map[string]*expression.Program{}}
}

func (e *evaluator) program(src string, env expression.Env) (*expression.Program, error) {
	key := fmt.Sprint(env, ":", src)
	if p := e.progs[key]; p != nil {
		return p, nil
	}
	p, err := expression.Compile(src, env)
	if err != nil {
		return nil, err
	}
	e.progs[key] = p
	return p, nil
}

// over reports whether the time budget is spent, saying so in the errors
// the first time.
func (e *evaluator) over() bool {
	if !e.spent && time.Now().After(e.deadline) {
		e.spent = true
		e.errs = append(e.errs, events.TaskError{Kind: events.KindExpression,
			Message:     fmt.Sprintf("expressions took more than %v: the values not yet computed are null", e.budget),
			Remediation: "make the expressions cheaper, or compute fewer values"})
	}
	return e.spent
}

// item computes one computed field of one item; nil where it fails.
func (e *evaluator) item(path, src string, it entry, index int) any {
	if e.over() {
		return nil
	}
	p, err := e.program(src, expression.Item)
	if err == nil {
		var v any
		if v, err = p.RunItem(it.v, index, e.deadline); err == nil {
			return v
		}
	}
	e.fail(it, fmt.Sprintf("%s: item %d: %v", path, index, err))
	return nil
}

// field computes an expression field; nil where it fails.
func (e *evaluator) field(path, src string, items []any, fields map[string]any) any {
	if e.over() {
		return nil
	}
	p, err := e.program(src, expression.Fields)
	if err == nil {
		var v any
		if v, err = p.RunFields(items, fields, e.deadline); err == nil {
			return v
		}
	}
	e.fail(entry{}, fmt.Sprintf("%s: %v", path, err))
	return nil
}

func (e *evaluator) fail(it entry, msg string) {
	if len(e.errs) >= maxExprErrors {
		e.more++
		return
	}
	remedy, retry := Remedy(events.KindExpression, "")
	e.errs = append(e.errs, events.TaskError{Task: it.task, Step: it.step, Status: it.status, Kind: events.KindExpression,
		Message: events.Clip(msg, 512), Remediation: remedy, RetryRecommended: retry})
}

// errors are the expression errors for the output.
func (e *evaluator) errors() []events.TaskError {
	if e.more > 0 {
		return append(e.errs, events.TaskError{Kind: events.KindExpression,
			Message: fmt.Sprintf("%d more expression errors", e.more), Remediation: "see the errors above"})
	}
	return e.errs
}

// synthesis is the data of an output built by synthesize, and what to say
// about it.
type synthesis struct {
	data         json.RawMessage
	interpolated []string
	errs         []events.TaskError
}

// synthesize builds the output data from the collected results in plan
// order (completed ones with their data), with stand-ins for the others:
// a literal fallback, or the one interpolation computes.
func synthesize(a events.Aggregate, ordered []*events.Result, budget time.Duration) (synthesis, error) {
	var syn synthesis
	method := a.Interpolation()
	var stand map[string]any
	if method != "" {
		stand = standIns(method, reducePaths(a), ordered)
	}
	var all []entry
	for _, r := range ordered {
		switch {
		case r.Status == events.StateCompleted:
			for _, it := range items(r.Data) {
				all = append(all, entry{v: it, task: r.Task, step: r.Step, status: r.Status})
			}
		case method != "":
			if v, ok := stand[r.Task]; ok {
				all = append(all, entry{v: v, task: r.Task, step: r.Step, status: r.Status})
				syn.interpolated = append(syn.interpolated, r.Task)
			}
		default:
			for _, it := range items(a.Fallback) {
				all = append(all, entry{v: it, task: r.Task, step: r.Step, status: r.Status})
			}
		}
	}
	ev := newEvaluator(budget)
	var data any
	switch {
	case a.Fields != nil:
		data = namedFields(a.Fields, all, ev)
	case a.Strategy == events.StrategyReduce:
		red := &Reducer{Op: a.Op, Field: a.Field}
		for _, e := range all {
			red.addItem(e.v)
		}
		data = red.Value()
	default:
		data = values(shape(shapingOf(a), all, ev))
	}
	b, err := json.Marshal(data)
	if err != nil {
		return syn, fmt.Errorf("aggregate: %w", err)
	}
	syn.data, syn.errs = b, ev.errors()
	return syn, nil
}

// namedFields computes the value of each named field: the reduce, merge and
// transform fields first, then the expression fields, which see them.
func namedFields(fields map[string]events.NamedField, all []entry, ev *evaluator) map[string]any {
	out := make(map[string]any, len(fields))
	names := slices.Sorted(maps.Keys(fields))
	for _, name := range names {
		f := fields[name]
		switch {
		case f.Expr != "":
			continue
		case f.Op != "":
			red := &Reducer{Op: f.Op, Field: f.Field}
			for _, e := range all {
				red.addItem(e.v)
			}
			out[name] = red.result()
		default:
			vals := []any{}
			for _, e := range shape(fieldShaping(name, f), slices.Clone(all), ev) {
				if f.Field == "" {
					vals = append(vals, e.v)
				} else if v, ok := field(e.v, f.Field); ok {
					vals = append(vals, v)
				}
			}
			if f.Join == nil {
				out[name] = vals
				continue
			}
			var texts []string
			for _, v := range vals {
				if s, ok := v.(string); ok {
					texts = append(texts, s)
				}
			}
			out[name] = strings.Join(texts, *f.Join)
		}
	}
	plain := maps.Clone(out)
	var itemsAll []any
	for _, name := range names {
		if f := fields[name]; f.Expr != "" {
			if itemsAll == nil {
				itemsAll = values(all)
			}
			out[name] = ev.field("aggregate.fields."+name+".expr", f.Expr, itemsAll, plain)
		}
	}
	return out
}

// reducePaths are the numeric fields the aggregation reduces, other than
// the item itself.
func reducePaths(a events.Aggregate) []string {
	var paths []string
	add := func(op, path string) {
		if op != "" && path != "" && path != "." && !slices.Contains(paths, path) {
			paths = append(paths, path)
		}
	}
	if a.Fields != nil {
		for _, f := range a.Fields {
			add(f.Op, f.Field)
		}
	} else if a.Strategy == events.StrategyReduce {
		add(a.Op, a.Field)
	}
	slices.Sort(paths)
	return paths
}

// standIns computes the interpolated stand-in of each failed or cancelled
// task from the completed tasks of the same step (ordered is in plan order).
// When the step's items are objects, a stand-in is an object holding, at
// each numeric path (the reduced fields, and every top-level field that
// holds a number in some completed item), the interpolated number, and
// "interpolated": true; when they are not, a stand-in is a number
// interpolated from the items that are numbers. A task gets no stand-in when
// there is no number to interpolate from.
func standIns(method string, reduced []string, ordered []*events.Result) map[string]any {
	out := map[string]any{}
	for start := 0; start < len(ordered); {
		end := start + 1
		for end < len(ordered) && ordered[end].Step == ordered[start].Step {
			end++
		}
		stepStandIns(method, reduced, ordered[start:end], out)
		start = end
	}
	return out
}

// stepStandIns does standIns for the results of one step, in index order.
func stepStandIns(method string, reduced []string, results []*events.Result, out map[string]any) {
	type done struct {
		index int
		items []any
	}
	var dones []done
	objects := false
	numericKeys := map[string]bool{}
	for _, r := range results {
		if r.Status != events.StateCompleted {
			continue
		}
		its := items(r.Data)
		dones = append(dones, done{index: r.Index, items: its})
		for _, it := range its {
			if m, ok := it.(map[string]any); ok {
				objects = true
				for k, v := range m {
					if _, num := v.(float64); num {
						numericKeys[k] = true
					}
				}
			}
		}
	}
	paths := []string{"."}
	if objects {
		paths = slices.Clone(reduced)
		for k := range numericKeys {
			if !slices.Contains(paths, k) {
				paths = append(paths, k)
			}
		}
		slices.Sort(paths)
	}
	numbers := func(its []any, path string) []float64 {
		var xs []float64
		for _, it := range its {
			if objects && path == "." {
				continue
			}
			if _, isObj := it.(map[string]any); !objects && isObj {
				continue
			}
			if v, ok := field(it, path); ok {
				if x, ok := v.(float64); ok {
					xs = append(xs, x)
				}
			}
		}
		return xs
	}
	for _, r := range results {
		if r.Status == events.StateCompleted {
			continue
		}
		got := map[string]float64{}
		for _, p := range paths {
			var x float64
			var ok bool
			switch method {
			case events.InterpolatePrevious:
				for i := len(dones) - 1; i >= 0 && !ok; i-- {
					if dones[i].index < r.Index {
						if xs := numbers(dones[i].items, p); len(xs) > 0 {
							x, ok = xs[len(xs)-1], true
						}
					}
				}
			default:
				var xs []float64
				for _, d := range dones {
					xs = append(xs, numbers(d.items, p)...)
				}
				x, ok = summarize(method, xs)
			}
			if ok {
				got[p] = x
			}
		}
		if len(got) == 0 {
			continue
		}
		if !objects {
			out[r.Task] = got["."]
			continue
		}
		obj := map[string]any{"interpolated": true}
		for _, p := range slices.Sorted(maps.Keys(got)) {
			setPath(obj, p, got[p])
		}
		out[r.Task] = obj
	}
}

// summarize is the mean or the median of xs; false when there is none (or
// it is beyond float64).
func summarize(method string, xs []float64) (float64, bool) {
	if len(xs) == 0 {
		return 0, false
	}
	var v float64
	if method == events.InterpolateMedian {
		s := slices.Clone(xs)
		slices.Sort(s)
		v = s[len(s)/2]
		if len(s)%2 == 0 {
			v = s[len(s)/2-1]/2 + s[len(s)/2]/2
		}
	} else {
		for i, x := range xs { // a running mean: no sum to overflow
			v += (x - v) / float64(i+1)
		}
	}
	return v, !math.IsInf(v, 0) && !math.IsNaN(v)
}

// setPath sets a dotted path in obj, making the objects on the way.
func setPath(obj map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	cur := obj
	for _, part := range parts[:len(parts)-1] {
		next, ok := cur[part].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[part] = next
		}
		cur = next
	}
	cur[parts[len(parts)-1]] = v
}
