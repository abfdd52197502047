package planner

import (
	"container/heap"

	"github.com/baton-dev/baton/pkg/events"
)

// Task progress inside the planner.
const (
	waiting    = iota // dependencies not done
	ready             // may be dispatched, held back by max_parallel
	dispatched        // on a lane or running
	done              // a final result exists (or the planner decided one)
)

// outcome is a finished task's status in a byte (events.State*).
type outcome uint8

const (
	unfinished outcome = iota
	completed
	failed
	cancelled
)

func outcomeOf(status string) outcome {
	switch status {
	case events.StateCompleted:
		return completed
	case events.StateFailed:
		return failed
	case events.StateCancelled:
		return cancelled
	}
	return unfinished
}

// String is the events.State* the outcome is.
func (o outcome) String() string {
	switch o {
	case completed:
		return events.StateCompleted
	case failed:
		return events.StateFailed
	case cancelled:
		return events.StateCancelled
	}
	return ""
}

type taskState struct {
	state  uint8
	round  uint8
	status outcome // final status once done
	// confirmed is set when the final result was read back from RESULTS;
	// a result the planner decided (a cancellation) is unconfirmed until then.
	confirmed bool
}

// flow is one workflow's state, rebuilt from the job and RESULTS.
type flow struct {
	rec      events.Workflow
	job      *events.Job
	plan     *Plan
	st       []taskState
	waitFor  []int32                   // unfinished dependencies per task
	needed   []int32                   // undispatched dependents per task
	depData  map[int]*events.DepResult // results still needed by dependents
	ready    readyQueue
	inflight int
	finals   int
	dirty    bool
	// completed and critDone count completed tasks and completed critical
	// tasks; critical counts critical tasks (for stop_when).
	completed, critDone, critical int
	// stopDue says the job's stop_when holds and the rest is to be
	// cancelled (stopEarly).
	stopDue bool
	// reopening: a finished workflow's results are being read back
	// (reopen); it does not finish meanwhile.
	reopening bool
	// backlogged: in Planner.backlog, ready tasks waiting for a window.
	backlogged bool
}

func newFlow(rec events.Workflow, job *events.Job, plan *Plan) *flow {
	n := len(plan.Tasks)
	f := &flow{
		rec: rec, job: job, plan: plan,
		st: make([]taskState, n), waitFor: make([]int32, n), needed: make([]int32, n),
		depData: map[int]*events.DepResult{},
	}
	f.ready.tasks = plan.Tasks
	for i, t := range plan.Tasks {
		f.waitFor[i] = int32(len(plan.Deps(i)))
		f.needed[i] = int32(len(plan.Dependents(i)))
		if t.Critical {
			f.critical++
		}
		if f.waitFor[i] == 0 {
			f.st[i].state = ready
			f.ready.idx = append(f.ready.idx, i)
		}
	}
	heap.Init(&f.ready)
	return f
}

// refresh writes the live figures into the record: counts, and the
// remaining length of the critical path (the most steps any unfinished task
// still has ahead of it, itself included).
func (f *flow) refresh() {
	f.rec.Counts = f.counts()
	f.rec.CriticalPath = 0
	for i, s := range f.st {
		if s.state != done {
			f.rec.CriticalPath = max(f.rec.CriticalPath, f.plan.Tasks[i].Depth)
		}
	}
}

func (f *flow) counts() events.Counts {
	c := events.Counts{Total: len(f.st)}
	for _, s := range f.st {
		switch {
		case s.state != done:
			c.Pending++
		case s.status == completed:
			c.Completed++
		case s.status == failed:
			c.Failed++
		default:
			c.Cancelled++
		}
	}
	return c
}

// readyQueue orders dispatchable tasks: most urgent priority first, then the
// longest remaining path (the critical path), then plan order (FIFO).
type readyQueue struct {
	tasks []PlannedTask
	idx   []int
}

func (q readyQueue) Len() int { return len(q.idx) }
func (q readyQueue) Less(a, b int) bool {
	x, y := &q.tasks[q.idx[a]], &q.tasks[q.idx[b]]
	if x.Priority != y.Priority {
		return x.Priority < y.Priority
	}
	if x.Depth != y.Depth {
		return x.Depth > y.Depth
	}
	return q.idx[a] < q.idx[b]
}
func (q readyQueue) Swap(a, b int) { q.idx[a], q.idx[b] = q.idx[b], q.idx[a] }
func (q *readyQueue) Push(x any)   { q.idx = append(q.idx, x.(int)) }
func (q *readyQueue) Pop() any {
	n := len(q.idx) - 1
	v := q.idx[n]
	q.idx = q.idx[:n]
	return v
}
