package tests

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
)

// gated returns a handler whose tasks run until gate is closed (or their
// context ends), and counts its starts on started.
func gated(gate <-chan struct{}, started chan<- string) agent.Handler {
	return agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) {
		select {
		case started <- t.Workflow + "/" + t.ID:
		default:
		}
		select {
		case <-gate:
			return map[string]string{"task": t.ID}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
}

// refused checks that a control request failed with want and that its
// message says what (a word of the precise reason).
func refused(t testing.TB, what string, err, want error, says string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
	if !strings.Contains(err.Error(), says) {
		t.Errorf("%s: %q does not say %q", what, err, says)
	}
}

// TestCheckpoint_ResumeToken: pause returns a checkpoint with a resume
// token, stored in the workflow's record; the token resumes the workflow
// after the planner was restarted; it is refused as stale after a cancel,
// a stop (another checkpoint), a reprioritize and a resume; a forged
// token, another workflow's and a megabyte one are refused as bad
// requests; a refused resume changes nothing; resume without a token still
// works, and the workflow ends with every task run once.
func TestCheckpoint_ResumeToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	stopPlanner := e.planner()
	e.aggregator()
	gate := make(chan struct{})
	started := make(chan string, 64)
	e.agent("cp-agent", 1, map[string]agent.Handler{"gate": gated(gate, started)})
	e.waitReady()
	job := func(id string) map[string]any {
		return map[string]any{"id": id, "success_threshold": 0,
			"steps": []map[string]any{{"id": "g", "type": "gate", "split": 1, "input": []int{1, 2, 3, 4, 5, 6}}}}
	}
	wf := e.submit(job("cp-a"))
	<-started // one task runs (the agent has one slot), five wait
	ctx := e.ctl()

	cp := must(e.cl.Pause(ctx, wf, client.PauseOptions{}))(t)
	rec := cp.Checkpoint
	if cp.Token == "" || rec == nil || rec.Seq != 1 || rec.Status != events.WorkflowPaused || rec.Done != 0 || rec.Running != 1 || rec.Pending != 5 {
		t.Fatalf("checkpoint %+v (record %+v)", cp, rec)
	}
	if len(rec.Agents) != 1 || rec.Agents[0].Agent != "cp-agent" || rec.Agents[0].Running != 1 || len(rec.Agents[0].Tasks) != 1 || rec.Agents[0].Tasks[0] != cp.Running[0] {
		t.Errorf("agents at the checkpoint: %+v, want cp-agent running %v", rec.Agents, cp.Running)
	}
	stored := must(e.cl.Checkpoint(ctx, wf))(t)
	if stored == nil || stored.Seq != 1 || stored.Digest != rec.Digest || stored.Stale != "" {
		t.Fatalf("stored checkpoint %+v, want %+v", stored, rec)
	}

	// Another workflow's token, a forged one, malformed ones.
	other := e.submit(job("cp-b"))
	otherCP := must(e.cl.Pause(ctx, other, client.PauseOptions{}))(t)
	_, err := e.cl.ResumeFrom(ctx, wf, otherCP.Token)
	refused(t, "another workflow's token", err, events.ErrBadRequest, "not a checkpoint of workflow "+wf)
	forged := cp.Token[:len(cp.Token)-4] + "AAAA"
	if forged == cp.Token {
		forged = cp.Token[:len(cp.Token)-4] + "BBBB"
	}
	_, err = e.cl.ResumeFrom(ctx, wf, forged)
	refused(t, "a forged token", err, events.ErrBadRequest, "not a checkpoint")
	_, err = e.cl.ResumeFrom(ctx, wf, "cp2"+cp.Token[3:]) // a MAC of checkpoint 1 under number 2
	refused(t, "a renumbered token", err, events.ErrBadRequest, "not a checkpoint")
	_, err = e.cl.ResumeFrom(ctx, wf, strings.Repeat("x", 1000*1000))
	refused(t, "a megabyte token", err, events.ErrBadRequest, "at most")
	for _, bad := range []string{"cp0.abc", "cp1", "cp01.abc", "xx1.abc", "cp1.a b", "cp1.é"} {
		_, err = e.cl.ResumeFrom(ctx, wf, bad)
		refused(t, "token "+bad, err, events.ErrBadRequest, "token")
	}
	if st := must(e.cl.Workflow(ctx, wf))(t); st.Status != events.WorkflowPaused || st.Checkpoint.Stale != "" {
		t.Fatalf("after refused resumes: status %s, checkpoint %+v", st.Status, st.Checkpoint)
	}

	// A planner that follows honours its predecessor's token.
	stopPlanner()
	e.planner()
	e.waitReady()
	rr := must(e.cl.ResumeFrom(ctx, wf, cp.Token))(t)
	if rr.Status != events.WorkflowRunning || len(rr.Queued) != 5 || len(rr.Running) != 1 {
		t.Fatalf("resume with the token: %+v", rr)
	}
	_, err = e.cl.ResumeFrom(ctx, wf, cp.Token)
	refused(t, "a used token", err, events.ErrConflict, "not paused")

	// Stale after: a resume, a cancel, another checkpoint, a reprioritize.
	cp2 := must(e.cl.Pause(ctx, wf, client.PauseOptions{}))(t)
	if cp2.Checkpoint.Seq != 2 || cp2.Token == cp.Token {
		t.Fatalf("second checkpoint %+v", cp2)
	}
	_, err = e.cl.ResumeFrom(ctx, wf, cp.Token)
	refused(t, "a token of a resumed checkpoint", err, events.ErrConflict, "stale")
	must(e.cl.Cancel(ctx, client.CancelSelector{Workflow: wf, Tasks: []string{cp2.Pending[0]}}))(t)
	_, err = e.cl.ResumeFrom(ctx, wf, cp2.Token)
	refused(t, "a token from before a cancel", err, events.ErrConflict, "cancelled in part")
	cp3 := must(e.cl.Stop(ctx, wf))(t)
	_, err = e.cl.ResumeFrom(ctx, wf, cp2.Token)
	refused(t, "a replaced token", err, events.ErrConflict, "replaced by checkpoint 3")
	must(e.cl.Reprioritize(ctx, wf, "", 2))(t)
	_, err = e.cl.Restart(ctx, wf, client.RestartOptions{Token: cp3.Token})
	refused(t, "a token from before a reprioritize", err, events.ErrConflict, "reprioritized")
	if st := must(e.cl.Workflow(ctx, wf))(t); st.Status != events.WorkflowStopped {
		t.Fatalf("after a refused restart: status %s", st.Status)
	}

	// Without a token, resume and restart still work.
	must(e.cl.Restart(ctx, wf, client.RestartOptions{}))(t)
	must(e.cl.Resume(ctx, other))(t)
	close(gate)
	for _, id := range []string{wf, other} {
		out := e.final(id, time.Minute)
		finals, all := e.results(id)
		if len(finals) != 6 || len(all) != 6 {
			t.Errorf("%s: %d results for %d tasks, want 6 and 6", id, len(all), len(finals))
		}
		if id == wf && (out.Metadata.Tasks.Completed != 5 || out.Metadata.Tasks.Cancelled != 1) {
			t.Errorf("%s: tasks %+v, want 5 completed and the one cancelled", id, out.Metadata.Tasks)
		}
	}
	if rec := must(e.cl.Checkpoint(ctx, wf))(t); rec == nil || rec.Seq != 3 || !strings.Contains(rec.Stale, "reprioritized") {
		t.Errorf("last checkpoint %+v, want 3, stale since the reprioritize", rec)
	}
}
