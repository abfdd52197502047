package planner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/planner"
)

func parse(t *testing.T, doc string) *events.Job {
	t.Helper()
	job, err := events.ParseJob([]byte(doc), events.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return job
}

func TestSplit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, input string
		size        int
		by, want    string
	}{
		{"list by 2", `[1,2,3,4,5]`, 2, "", `[[1,2] [3,4] [5]]`},
		{"list by 1", `[{"a":1},"x"]`, 1, "", `[[{"a":1}] ["x"]]`},
		{"words", `"a b  c\nd e"`, 2, "", `["a b" "c d" "e"]`},
		{"lines", `"one\n\ntwo\nthree"`, 2, "lines", `["one\ntwo" "three"]`},
		{"empty list", `[]`, 3, "", `[]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parts, err := planner.Split(json.RawMessage(tc.input), tc.size, tc.by)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range parts {
				got = append(got, string(p))
			}
			if s := "[" + strings.Join(got, " ") + "]"; s != tc.want {
				t.Errorf("got %s, want %s", s, tc.want)
			}
		})
	}
	if _, err := planner.Split(json.RawMessage(`42`), 1, ""); err == nil {
		t.Error("a number split")
	}
}

func TestDecompose_DAGPrioritiesRoutes(t *testing.T) {
	t.Parallel()
	job := parse(t, `{"steps":[
		{"id":"read","type":"analysis","split":2,"input":[1,2,3],"priority":2},
		{"id":"crunch","type":"processing","input":[1]},
		{"id":"side","type":"processing","input":[1],"fallback":"backup","retries":0,"timeout":"3s"},
		{"id":"write","type":"writing","after":["read","crunch"],"critical":true}
	]}`)
	plan, err := planner.Decompose(context.Background(), job, nil, planner.DefaultRoutes, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, task := range plan.Tasks {
		got = append(got, fmt.Sprintf("%s:%s:p%d:d%d:deps%v", task.ID, task.Type, task.Priority, task.Depth, task.Deps))
	}
	want := "[read-0:research:p2:d2:deps[] read-1:research:p2:d2:deps[] crunch:data:p3:d2:deps[] side:data:p3:d1:deps[] write:write:p3:d1:deps[0 1 2]]"
	if fmt.Sprint(got) != want {
		t.Errorf("tasks\n%v\nwant\n%s", got, want)
	}
	side := plan.Tasks[plan.ByID["side"]]
	if side.MaxAttempts != 1 || side.Fallback != "backup" || side.Timeout.String() != "3s" {
		t.Errorf("side: %+v", side)
	}
	if w := plan.Tasks[plan.ByID["write"]]; !w.Critical || len(w.Dependents) != 0 {
		t.Errorf("write: %+v", w)
	}
	if fmt.Sprint(plan.Collect) != "[side write]" {
		t.Errorf("collect %v: want the steps nothing waits for", plan.Collect)
	}
	if fmt.Sprint(plan.Lanes()) != "[data.3 research.2 write.3]" {
		t.Errorf("lanes %v", plan.Lanes())
	}
}

func TestDecompose_MaxTasks(t *testing.T) {
	t.Parallel()
	job := parse(t, `{"steps":[{"id":"a","type":"x","split":1,"input":[1,2,3,4]}]}`)
	_, err := planner.Decompose(context.Background(), job, nil, nil, 3)
	var ve *events.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(ve.Error(), "3") {
		t.Errorf("error %v, want the task limit named", err)
	}
}

func TestDecompose_CustomDecomposer(t *testing.T) {
	t.Parallel()
	pages := planner.DecomposerFunc(func(_ context.Context, s events.Step) ([]json.RawMessage, error) {
		var n int
		if err := json.Unmarshal(s.Input, &n); err != nil {
			return nil, err
		}
		out := make([]json.RawMessage, n)
		for i := range out {
			out[i] = json.RawMessage(fmt.Sprintf(`{"page":%d}`, i+1))
		}
		return out, nil
	})
	job := parse(t, `{"steps":[{"id":"book","type":"ocr","decompose":"pages","input":3}]}`)
	plan, err := planner.Decompose(context.Background(), job, map[string]planner.Decomposer{"pages": pages}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Tasks) != 3 || string(plan.Tasks[2].Input) != `{"page":3}` {
		t.Errorf("tasks %+v", plan.Tasks)
	}
	_, err = planner.Decompose(context.Background(), parse(t, `{"steps":[{"id":"b","type":"ocr","decompose":"nope","input":3}]}`), nil, nil, 0)
	var ve *events.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(ve.Field, "decompose") {
		t.Errorf("unknown decomposer: %v", err)
	}
}

// Example registers a decomposer that splits a document into pages.
func Example() {
	pages := planner.DecomposerFunc(func(_ context.Context, s events.Step) ([]json.RawMessage, error) {
		return []json.RawMessage{json.RawMessage(`1`), json.RawMessage(`2`)}, nil
	})
	job, _ := events.ParseJob([]byte(`{"steps":[{"id":"doc","type":"ocr","decompose":"pages"}]}`), events.Limits{})
	plan, err := planner.Decompose(context.Background(), job, map[string]planner.Decomposer{"pages": pages}, nil, 0)
	if err != nil {
		panic(err)
	}
	for _, t := range plan.Tasks {
		fmt.Println(t.ID, t.Type, string(t.Input))
	}
	// In a service: planner.New(nc, planner.Config{Decomposers: map[string]planner.Decomposer{"pages": pages}})
	// Output:
	// doc-0 ocr 1
	// doc-1 ocr 2
}
