package events_test

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/baton-dev/baton/pkg/events"
)

// A planner parses the job a user submitted, and turns its steps into tasks
// that travel as msgpack on the lane of their type and priority; the agent
// decodes them. Every failure is a typed error.
func Example() {
	job, err := events.ParseJob([]byte(`{
		"name": "word-count",
		"steps": [
			{"id": "count", "type": "words", "split": 2, "input": ["a b", "c", "d e f"]},
			{"id": "total", "type": "sum", "after": ["count"], "priority": 1}
		]
	}`), events.Limits{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(job.Name, len(job.Steps), "steps; total waits for", job.Steps[1].After)

	// A job that cannot run says which field is at fault, and why.
	_, err = events.ParseJob([]byte(`{"steps":[{"id":"a","type":"x","after":["b"]}]}`), events.Limits{})
	var invalid *events.ValidationError
	if errors.As(err, &invalid) {
		fmt.Printf("rejected: field %s: %s\n", invalid.Field, invalid.Reason)
	}

	step := job.Steps[0]
	data, err := events.Encode(&events.Task{
		Workflow: "wf-1", ID: "count-0", Step: step.ID, Chunks: 2, Type: step.Type,
		Priority: events.PriorityDefault, Input: json.RawMessage(`["a b","c"]`), MaxAttempts: 3,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	subject := events.Subjects{}.Task(step.Type, events.PriorityDefault, "wf-1", "count-0")

	task, err := events.DecodeTask(data)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(subject, "→", task.ID, string(task.Input))

	_, err = events.DecodeTask([]byte("not msgpack"))
	fmt.Println("garbage is ErrDecode:", errors.Is(err, events.ErrDecode))
	// Output:
	// word-count 2 steps; total waits for [count]
	// rejected: field steps[0].after[0]: no step is called "b"
	// baton.tasks.words.3.wf-1.count-0 → count-0 ["a b","c"]
	// garbage is ErrDecode: true
}
