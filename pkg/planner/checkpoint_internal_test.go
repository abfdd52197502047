package planner

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/baton-dev/baton/pkg/events"
)

// TestCheckpoint_Bounded: the checkpoint of a workflow of 100,000 tasks
// with the longest ids, taken while 1,000 agents (and an idle one) each report 50 of its
// tasks running (and 50 of others), stays a few kilobytes in the record, and its digest
// tells the sets apart.
func TestCheckpoint_Bounded(t *testing.T) {
	t.Parallel()
	const n = 100_000
	pad := strings.Repeat("x", 56)
	// Task ids of up to 64 characters, the longest there are.
	stepID := strings.Repeat("s", 58)
	step := &StepPlan{Step: stepID, Chunks: n, Type: "t"}
	plan := &Plan{Steps: map[string]*StepPlan{stepID: step}}
	for i := range n {
		plan.Tasks = append(plan.Tasks, PlannedTask{StepPlan: step, Index: i, Priority: 3})
	}
	f := newFlow(events.Workflow{ID: strings.Repeat("w", 64), Status: events.WorkflowPaused}, &events.Job{}, plan)
	for i := range n / 2 {
		f.st[i] = taskState{state: done, status: completed}
	}
	run := map[string]string{}
	// An idle agent, first by id, comes after those running the workflow.
	replies := []events.AgentReply{{Agent: "a-idle"}}
	for a := range 1000 {
		r := events.AgentReply{Agent: fmt.Sprintf("%s-%04d", pad, a)}
		for k := range 100 {
			if i := n/2 + a*50 + k%50; k < 50 {
				id := plan.Tasks[i].ID()
				run[f.rec.ID+"/"+id] = r.Agent
				r.Running = append(r.Running, f.rec.ID+"/"+id)
			} else {
				r.Running = append(r.Running, fmt.Sprintf("other/%s-%d", pad, k))
			}
		}
		replies = append(replies, r)
	}
	cp := f.checkpoint(run)
	rec := f.newCheckpoint(&cp, replies, false)
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 32<<10 {
		t.Errorf("the checkpoint takes %d bytes in the record, want at most 32 KiB", len(b))
	}
	if rec.Seq != 1 || rec.Done != n/2 || rec.Running != 50_000 || rec.Pending != 0 ||
		len(rec.Agents) != events.MaxCheckpointAgents || rec.AgentsOmitted != 1001-events.MaxCheckpointAgents || rec.Agents[0].Agent == "a-idle" ||
		rec.Agents[0].Running != 50 || len(rec.Agents[0].Tasks) != events.MaxCheckpointAgentTasks {
		t.Errorf("checkpoint %+v", rec)
	}
	// One task more done: another digest, the next number.
	f.st[n-1] = taskState{state: done, status: completed}
	cp = f.checkpoint(run)
	if again := f.newCheckpoint(&cp, replies, false); again.Digest == rec.Digest || again.Seq != 2 {
		t.Errorf("after a change: digest %s (was %s), seq %d", again.Digest, rec.Digest, again.Seq)
	}
	t.Logf("checkpoint of %d tasks and %d agents: %d bytes", n, len(replies), len(b))
}
