package planner

import (
	"container/heap"
	"context"
	"slices"
	"testing"

	"github.com/baton-dev/baton/pkg/events"
)

// TestReadyQueue_Order checks the order in which ready tasks are dispatched:
// most urgent priority first, then the longest remaining path (the critical
// path, Depth), then plan order.
func TestReadyQueue_Order(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		job  string
		want []string // ready tasks in dispatch order
	}{
		{
			name: "priority beats depth",
			job: `{"steps":[
				{"id":"deep","type":"x","priority":3},
				{"id":"next","type":"x","after":["deep"]},
				{"id":"urgent","type":"x","priority":1}
			]}`,
			want: []string{"urgent", "deep"},
		},
		{
			name: "critical path first among equals",
			job: `{"steps":[
				{"id":"short","type":"x"},
				{"id":"mid","type":"x"},
				{"id":"long","type":"x"},
				{"id":"m1","type":"x","after":["mid"]},
				{"id":"l1","type":"x","after":["long"]},
				{"id":"l2","type":"x","after":["l1"]}
			]}`,
			want: []string{"long", "mid", "short"},
		},
		{
			name: "fifo among equals",
			job: `{"steps":[
				{"id":"c","type":"x"},
				{"id":"a","type":"x"},
				{"id":"b","type":"x","split":1,"input":[1,2,3]}
			]}`,
			want: []string{"c", "a", "b-0", "b-1", "b-2"},
		},
		{
			name: "all three",
			job: `{"steps":[
				{"id":"p5","type":"x","priority":5},
				{"id":"p3flat","type":"x"},
				{"id":"p3deep","type":"x"},
				{"id":"p3tail","type":"x","after":["p3deep"]},
				{"id":"p1","type":"x","priority":1},
				{"id":"p3flat2","type":"x"},
				{"id":"p2","type":"x","priority":2,"after":["p5"]}
			]}`,
			want: []string{"p1", "p3deep", "p3flat", "p3flat2", "p5"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			job, err := events.ParseJob([]byte(tc.job), events.Limits{})
			if err != nil {
				t.Fatalf("parse job: %v", err)
			}
			plan, err := Decompose(context.Background(), job, nil, nil, 0)
			if err != nil {
				t.Fatalf("Decompose: %v", err)
			}
			f := newFlow(events.Workflow{ID: "wf"}, job, plan)
			var got []string
			for f.ready.Len() > 0 {
				got = append(got, plan.Tasks[heap.Pop(&f.ready).(int)].ID())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("dispatch order %q, want %q", got, tc.want)
			}
		})
	}
}

// TestFlow_Refresh checks the remaining critical path: the largest Depth of
// an unfinished task.
func TestFlow_Refresh(t *testing.T) {
	t.Parallel()
	job, err := events.ParseJob([]byte(`{"steps":[
		{"id":"a","type":"x"},
		{"id":"b","type":"x","after":["a"]},
		{"id":"c","type":"x","after":["b"]},
		{"id":"z","type":"x"}
	]}`), events.Limits{})
	if err != nil {
		t.Fatalf("parse job: %v", err)
	}
	plan, err := Decompose(context.Background(), job, nil, nil, 0)
	if err != nil {
		t.Fatalf("Decompose: %v", err)
	}
	f := newFlow(events.Workflow{ID: "wf"}, job, plan)
	for _, step := range []struct {
		finish       string // task to mark done before refreshing; "" for none
		wantPath     int
		wantPending  int
		wantComplete int
	}{
		{finish: "", wantPath: 3, wantPending: 4},
		{finish: "a", wantPath: 2, wantPending: 3, wantComplete: 1},
		{finish: "z", wantPath: 2, wantPending: 2, wantComplete: 2},
		{finish: "b", wantPath: 1, wantPending: 1, wantComplete: 3},
		{finish: "c", wantPath: 0, wantPending: 0, wantComplete: 4},
	} {
		if step.finish != "" {
			i, _ := plan.Index(step.finish)
			f.st[i] = taskState{state: done, status: completed}
		}
		f.refresh()
		if f.rec.CriticalPath != step.wantPath || f.rec.Counts.Pending != step.wantPending || f.rec.Counts.Completed != step.wantComplete {
			t.Errorf("after %q: critical path %d, pending %d, completed %d; want %d, %d, %d", step.finish,
				f.rec.CriticalPath, f.rec.Counts.Pending, f.rec.Counts.Completed, step.wantPath, step.wantPending, step.wantComplete)
		}
	}
}
