package planner_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/planner"
)

// Example registers a custom decomposer that makes one task per page of a
// document. A service registers it the same way, in
// planner.Config{Decomposers: map[string]planner.Decomposer{"pages": pages}},
// and a job picks it with "decompose": "pages".
func Example() {
	pages := planner.DecomposerFunc(func(_ context.Context, s events.Step) ([]json.RawMessage, error) {
		var doc struct {
			Name  string `json:"name"`
			Pages int    `json:"pages"`
		}
		if err := json.Unmarshal(s.Input, &doc); err != nil {
			return nil, err
		}
		out := make([]json.RawMessage, doc.Pages)
		for i := range out {
			out[i], _ = json.Marshal(map[string]any{"name": doc.Name, "page": i + 1})
		}
		return out, nil
	})
	job, err := events.ParseJob([]byte(`{"steps":[
		{"id":"ocr","type":"analysis","decompose":"pages","input":{"name":"q4.pdf","pages":3}},
		{"id":"report","type":"writing","after":["ocr"],"priority":1}
	]}`), events.Limits{})
	if err != nil {
		fmt.Println(err)
		return
	}
	plan, err := planner.Decompose(context.Background(), job, map[string]planner.Decomposer{"pages": pages}, planner.DefaultRoutes, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	for i, t := range plan.Tasks {
		fmt.Println(t.ID(), t.Type, t.Priority, t.Depth, string(t.Input()), plan.Deps(i))
	}
	fmt.Println("lanes:", plan.Lanes())
	// Output:
	// ocr-0 research 3 2 {"name":"q4.pdf","page":1} []
	// ocr-1 research 3 2 {"name":"q4.pdf","page":2} []
	// ocr-2 research 3 2 {"name":"q4.pdf","page":3} []
	// report write 1 1 null [0 1 2]
	// lanes: [research.3 write.1]
}

// ExampleSplit cuts a text input into tasks of two words each.
func ExampleSplit() {
	chunks, err := planner.Split(json.RawMessage(`"to be or not to be"`), 2, "words")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range chunks {
		fmt.Println(string(c))
	}
	// Output:
	// "to be"
	// "or not"
	// "to be"
}
