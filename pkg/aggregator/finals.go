package aggregator

import (
	"encoding/json"
	"strconv"

	"github.com/baton-dev/baton/pkg/events"
)

// finals holds the first final result of each task of a workflow until
// its final output, in as little memory as a million tasks need: a
// completed task of a planned step is 12 bytes in slots (plus its data,
// when the final output needs it); a failed or cancelled one, and every
// result of a record that predates recorded steps, is a Result in other.
type finals struct {
	wf    string
	base  map[string]int  // step → position of its first task in slots
	sizes map[string]int  // step → its tasks (1 for a whole step)
	whole map[string]bool // a step of one task whose id is the step's
	slots []slot
	data  []json.RawMessage // per slot; made when a first data is kept
	other map[string]*events.Result
	// n counts the tasks with a result; by status, how many of each.
	n                            int
	completed, failed, cancelled int
}

// slot is a completed task's result, without what its position says.
type slot struct {
	done     bool
	round    uint8
	attempts uint32
	gen      int32
}

func newFinals(rec *events.Workflow) *finals {
	f := &finals{wf: rec.ID, other: map[string]*events.Result{}}
	if rec.Steps == nil {
		return f
	}
	f.base, f.sizes, f.whole = make(map[string]int, len(rec.Steps)), make(map[string]int, len(rec.Steps)), map[string]bool{}
	n := 0
	for step, chunks := range rec.Steps { // 0 chunks: a whole step (PlanTask)
		f.base[step], f.sizes[step] = n, max(chunks, 1)
		if chunks == 0 {
			f.whole[step] = true
		}
		n += max(chunks, 1)
	}
	f.slots = make([]slot, n)
	return f
}

// pos is the slot of the task at index of step, or -1.
func (f *finals) pos(step string, index int) int {
	b, ok := f.base[step]
	if !ok || index < 0 || index >= f.sizes[step] {
		return -1
	}
	return b + index
}

// get returns the task's result (step and index: where the plan puts it),
// or nil. A completed one is made up from its slot: a copy.
func (f *finals) get(task, step string, index int) *events.Result {
	if r := f.other[task]; r != nil {
		return r
	}
	if p := f.pos(step, index); p >= 0 && f.slots[p].done {
		return f.result(step, index, p)
	}
	return nil
}

func (f *finals) result(step string, index, p int) *events.Result {
	s := f.slots[p]
	task := step
	if !f.whole[step] {
		task = step + "-" + strconv.Itoa(index)
	}
	r := &events.Result{Workflow: f.wf, Task: task, Step: step, Index: index, Round: int(s.round),
		Status: events.StateCompleted, Final: true, Attempts: int(s.attempts), Gen: int(s.gen)}
	if f.data != nil {
		r.Data = f.data[p]
	}
	return r
}

// put records r, the task's result from now on (the caller decided it
// supersedes any earlier one).
func (f *finals) put(r *events.Result) {
	prev := f.get(r.Task, r.Step, r.Index)
	if prev == nil {
		f.n++
	} else {
		f.count(prev.Status, -1)
		delete(f.other, r.Task)
	}
	f.count(r.Status, +1)
	p := f.pos(r.Step, r.Index)
	if r.Status != events.StateCompleted || p < 0 {
		f.other[r.Task] = r
		return
	}
	f.slots[p] = slot{done: true, round: uint8(r.Round), attempts: uint32(min(r.Attempts, 1<<31)), gen: int32(r.Gen)}
	if r.Data != nil {
		if f.data == nil {
			f.data = make([]json.RawMessage, len(f.slots))
		}
		f.data[p] = r.Data
	}
}

func (f *finals) count(status string, d int) {
	switch status {
	case events.StateCompleted:
		f.completed += d
	case events.StateFailed:
		f.failed += d
	default:
		f.cancelled += d
	}
}

// len is how many tasks have a result.
func (f *finals) len() int { return f.n }

// each calls fn with every result: those in other, then the completed
// ones, each a copy made for the call.
func (f *finals) each(fn func(r *events.Result)) {
	for _, r := range f.other {
		fn(r)
	}
	for step, b := range f.base {
		for i := range f.sizes[step] {
			if f.slots[b+i].done {
				fn(f.result(step, i, b+i))
			}
		}
	}
}

// unfinished calls fn with every failed or cancelled result.
func (f *finals) unfinished(fn func(r *events.Result)) {
	for _, r := range f.other {
		if r.Status != events.StateCompleted {
			fn(r)
		}
	}
}
