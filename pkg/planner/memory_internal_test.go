package planner

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"

	"github.com/baton-dev/baton/pkg/events"
)

// BenchmarkFlow_Memory reports the live heap a workflow of a million
// tasks holds in the planner (its plan and its flow): bytes per task.
//
//	go test ./pkg/planner -run '^$' -bench Flow_Memory -benchtime 1x
func BenchmarkFlow_Memory(b *testing.B) {
	const n = 1_000_000
	job := &events.Job{Steps: []events.Step{{ID: "s", Type: "x", Split: 1, SplitBy: events.SplitRange,
		Input: json.RawMessage(fmt.Sprintf(`{"count":%d}`, n))}}}
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		plan, err := Decompose(context.Background(), job, nil, nil, n)
		if err != nil {
			b.Fatal(err)
		}
		f := newFlow(events.Workflow{ID: "wf"}, job, plan)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/task")
		runtime.KeepAlive(f)
	}
}
