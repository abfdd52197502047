package events_test

import (
	"testing"

	"github.com/baton-dev/baton/pkg/events"
)

func TestWorkflow_PlanTask(t *testing.T) {
	t.Parallel()
	w := &events.Workflow{Steps: map[string]int{"summary": 0, "research": 3, "a-1": 0, "x-y": 2}}
	for _, tc := range []struct {
		task  string
		step  string
		index int
		ok    bool
	}{
		{"summary", "summary", 0, true},
		{"research-0", "research", 0, true},
		{"research-2", "research", 2, true},
		{"research-3", "", 0, false},  // past the chunks
		{"research", "", 0, false},    // a split step has no bare task
		{"research-01", "", 0, false}, // not how the planner spells 1
		{"research--1", "", 0, false}, // negative
		{"summary-0", "", 0, false},   // a single task has no suffix
		{"a-1", "a-1", 0, true},       // a step whose id looks like a chunk
		{"x-y-1", "x-y", 1, true},     // a step id with a dash
		{"fake", "", 0, false},
		{"", "", 0, false},
	} {
		step, index, ok := w.PlanTask(tc.task)
		if ok != tc.ok || ok && (step != tc.step || index != tc.index) {
			t.Errorf("PlanTask(%q) = %q, %d, %v; want %q, %d, %v", tc.task, step, index, ok, tc.step, tc.index, tc.ok)
		}
	}
	old := &events.Workflow{}
	if _, index, ok := old.PlanTask("anything"); !ok || index != -1 {
		t.Errorf("a record without steps must trust the result")
	}
}
