package aggregator

import (
	"slices"
	"testing"

	"github.com/baton-dev/baton/pkg/events"
)

// TestFinals_SlotsAndOthers: completed results of planned steps go to
// slots and come back as they went in, ids included; failures stay whole;
// a later completion supersedes a failure; counts follow.
func TestFinals_SlotsAndOthers(t *testing.T) {
	t.Parallel()
	rec := events.Workflow{ID: "wf", Steps: map[string]int{"a": 0, "s": 3, "one": 1}}
	f := newFinals(&rec)
	put := func(r events.Result) { f.put(&r) }
	put(events.Result{Workflow: "wf", Task: "s-0", Step: "s", Index: 0, Status: events.StateCompleted, Attempts: 2, Round: 1, Gen: 3, Data: []byte(`7`)})
	put(events.Result{Workflow: "wf", Task: "s-2", Step: "s", Index: 2, Status: events.StateCompleted, Attempts: 1})
	put(events.Result{Workflow: "wf", Task: "one-0", Step: "one", Index: 0, Status: events.StateCompleted, Attempts: 1})
	put(events.Result{Workflow: "wf", Task: "a", Step: "a", Index: 0, Status: events.StateFailed, Error: "boom", Attempts: 3})
	if f.len() != 4 || f.completed != 3 || f.failed != 1 || len(f.other) != 1 {
		t.Fatalf("len %d, completed %d, failed %d, others %d", f.len(), f.completed, f.failed, len(f.other))
	}
	if r := f.get("s-0", "s", 0); r == nil || r.Task != "s-0" || r.Attempts != 2 || r.Round != 1 || r.Gen != 3 || string(r.Data) != "7" || !r.Final {
		t.Fatalf("s-0 back as %+v", r)
	}
	if r := f.get("s-1", "s", 1); r != nil {
		t.Fatalf("s-1 has no result, got %+v", r)
	}
	if r := f.get("a", "a", 0); r == nil || r.Error != "boom" {
		t.Fatalf("a back as %+v", r)
	}
	put(events.Result{Workflow: "wf", Task: "a", Step: "a", Index: 0, Status: events.StateCompleted, Attempts: 1, Gen: 1})
	if f.len() != 4 || f.completed != 4 || f.failed != 0 || len(f.other) != 0 {
		t.Fatalf("after the retry: len %d, completed %d, failed %d, others %d", f.len(), f.completed, f.failed, len(f.other))
	}
	var ids []string
	f.each(func(r *events.Result) { ids = append(ids, r.Task) })
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"a", "one-0", "s-0", "s-2"}) {
		t.Fatalf("each gave %v", ids)
	}
	// A record without steps (older planners) keeps every result whole.
	old := newFinals(&events.Workflow{ID: "wf"})
	r := events.Result{Task: "x-1", Step: "x", Index: 1, Status: events.StateCompleted}
	old.put(&r)
	if old.get("x-1", "", -1) != &r || old.len() != 1 {
		t.Fatal("a result of a record without steps is not kept whole")
	}
}
