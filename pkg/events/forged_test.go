package events_test

import (
	"errors"
	"testing"

	"github.com/baton-dev/baton/pkg/events"
)

func TestSubjects_DecodeResultMsg(t *testing.T) {
	t.Parallel()
	s := events.Subjects{}
	body, err := events.Encode(&events.Result{Workflow: "wf", Task: "t", Status: events.StateCompleted, Final: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, subject string
		forged        bool
	}{
		{"its own subject", "baton.results.wf.t", false},
		{"another task's subject", "baton.results.wf.u", true},
		{"another workflow's subject", "baton.results.x.t", true},
		{"another prefix", "other.results.wf.t", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := s.DecodeResultMsg(tc.subject, events.ContentMsgpack, body)
			if errors.Is(err, events.ErrForged) != tc.forged || (err == nil) == tc.forged {
				t.Fatalf("subject %s: %v, %v; forged %v", tc.subject, r, err, tc.forged)
			}
		})
	}
}

func TestSubjects_CheckTaskMsg(t *testing.T) {
	t.Parallel()
	s := events.Subjects{}
	task := &events.Task{Workflow: "wf", ID: "t", Type: "x", Priority: 2}
	for _, tc := range []struct {
		name, subject, lane string
		forged              bool
	}{
		{"its own lane", "baton.tasks.x.2.wf.t", "x", false},
		{"another type's lane", "baton.tasks.y.2.wf.t", "y", true},
		{"its type, another lane's consumer", "baton.tasks.x.2.wf.t", "y", true},
		{"another priority", "baton.tasks.x.1.wf.t", "x", true},
		{"another workflow's subject", "baton.tasks.x.2.other.t", "x", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := s.CheckTaskMsg(tc.subject, tc.lane, task); errors.Is(err, events.ErrForged) != tc.forged {
				t.Fatalf("%v, forged %v", err, tc.forged)
			}
		})
	}
	gpu := &events.Task{Workflow: "wf", ID: "t", Type: "x", Priority: 2, Requires: []string{"gpu"}}
	gpuLane := "baton.tasks.x.2-" + events.CapKey([]string{"gpu"}) + ".wf.t"
	for _, tc := range []struct {
		name    string
		subject string
		task    *events.Task
		forged  bool
	}{
		{"on its capability lane", gpuLane, gpu, false},
		{"requiring gpu on the plain lane", "baton.tasks.x.2.wf.t", gpu, true},
		{"plain on the gpu lane", gpuLane, task, true},
		{"requiring another set on the gpu lane", gpuLane, &events.Task{Workflow: "wf", ID: "t", Type: "x", Priority: 2, Requires: []string{"tpu"}}, true},
		{"requiring too many", gpuLane, &events.Task{Workflow: "wf", ID: "t", Type: "x", Priority: 2, Requires: make([]string, 100_000)}, true},
	} {
		if err := s.CheckTaskMsg(tc.subject, "x", tc.task); errors.Is(err, events.ErrForged) != tc.forged {
			t.Errorf("%s: %v, forged %v", tc.name, err, tc.forged)
		}
	}
}

func TestRefusals_ReportsAFewTimes(t *testing.T) {
	t.Parallel()
	var r events.Refusals
	var reported []uint64
	for range 100 {
		if ok, n := r.Note("baton.results.x.y", events.ErrForged); ok {
			reported = append(reported, n)
		}
	}
	if want := []uint64{1, 2, 4, 8, 16, 32, 64}; len(reported) != len(want) {
		t.Fatalf("reported at %v, want %v", reported, want)
	}
	if ok, n := r.Note("other.results.x.y", events.ErrForged); !ok || n != 1 {
		t.Fatalf("a new key: %v %d", ok, n)
	}
}
