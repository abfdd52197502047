package planner

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/control"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go/jetstream"
)

// withdraw removes queued tasks from the lanes by subject.
func (p *Planner) withdraw(ctx context.Context, subject string) error {
	s, err := p.js.Stream(ctx, p.cfg.Streams.TasksStream())
	if err != nil {
		return err
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		return fmt.Errorf("withdraw %s: %w", subject, err)
	}
	return nil
}

// hold takes back every dispatched task of f not in run: it is no longer
// on a lane (withdrawn), so it waits, ready, for the next dispatch.
func (f *flow) hold(run map[string]string, only func(int) bool) []string {
	var held []string
	for i := range f.st {
		if f.st[i].state != dispatched || run[f.rec.ID+"/"+f.plan.Tasks[i].ID()] != "" || only != nil && !only(i) {
			continue
		}
		f.st[i].state = ready
		f.inflight--
		heap.Push(&f.ready, i)
		held = append(held, f.plan.Tasks[i].ID())
	}
	return held
}

// pause stops the workflow's tasks from starting: agents are told to start
// none, its queued tasks are withdrawn from the lanes, and running tasks
// finish (or, with now, are cancelled and handed back).
func (p *Planner) pause(ctx context.Context, f *flow, status string, now bool) (any, error) {
	switch f.rec.Status {
	case events.WorkflowRunning:
	case events.WorkflowPaused:
		if status == events.WorkflowPaused {
			return nil, control.Errorf(409, "workflow %s is already paused", f.rec.ID)
		}
	default:
		return nil, control.Errorf(409, "workflow %s is already %s", f.rec.ID, f.rec.Status)
	}
	prev := f.rec.Status
	f.rec.Status = status
	f.refresh()
	if err := p.putRecord(ctx, &f.rec); err != nil {
		f.rec.Status = prev
		return nil, err
	}
	undo := func(err error) (any, error) {
		// Refused: put the workflow back as it was.
		f.rec.Status = prev
		if perr := p.putRecord(ctx, &f.rec); perr != nil {
			p.log.Error("undo pause", "workflow", f.rec.ID, "err", perr)
		}
		return nil, err
	}
	run, replies, err := p.running(ctx, events.AgentCommand{Op: events.AgentOpPause, Workflow: f.rec.ID, Now: now})
	if err != nil {
		return undo(err)
	}
	// The purge takes running tasks' messages too; resume queues again any
	// task that is neither finished nor running by then.
	if err := p.withdraw(ctx, p.subj.QueuedTasks(f.rec.ID, "*")); err != nil {
		return undo(err)
	}
	f.hold(run, nil)
	cp := f.checkpoint(run)
	// The checkpoint is stored before its token is given out: any planner
	// that follows can check the token against it.
	cp.Checkpoint = f.newCheckpoint(&cp, replies, now)
	if err := p.putRecord(ctx, &f.rec); err != nil {
		return nil, fmt.Errorf("workflow %s is %s, but its checkpoint was not stored (resume it without a token): %w", f.rec.ID, status, err)
	}
	p.log.Info("workflow "+status, "workflow", f.rec.ID, "running", len(cp.Running), "pending", len(cp.Pending), "now", now)
	detail, _ := json.Marshal(cp)
	p.event(events.Event{Workflow: f.rec.ID, Kind: status, Detail: detail,
		Message: fmt.Sprintf("%d done, %d running, %d pending", len(cp.Done), len(cp.Running), len(cp.Pending))})
	// The token goes to whoever paused, not into the event, which viewers read.
	cp.Token = events.CheckpointToken(cp.Checkpoint.Seq, p.key.Checkpoint(f.rec.ID, cp.Checkpoint.Seq))
	return cp, nil
}

func (f *flow) checkpoint(run map[string]string) events.Checkpoint {
	cp := events.Checkpoint{Workflow: f.rec.ID, Status: f.rec.Status, Gen: f.rec.Gen, Done: []string{}, Running: []string{}, Pending: []string{}}
	for i, s := range f.st {
		id := f.plan.Tasks[i].ID()
		switch {
		case s.state == done:
			cp.Done = append(cp.Done, id)
		case run[f.rec.ID+"/"+id] != "":
			cp.Running = append(cp.Running, id)
		default:
			cp.Pending = append(cp.Pending, id)
		}
	}
	return cp
}

// resume queues a paused or stopped workflow's tasks again, except those
// still running, under a new generation; retryFailed also runs its failed
// tasks again. With a token it goes ahead only if the token is that of the
// workflow's checkpoint and the workflow has not changed since (checkToken).
// verb ("resumed" or "restarted") makes the checkpoint stale.
func (p *Planner) resume(ctx context.Context, f *flow, retryFailed bool, token, verb string) (any, error) {
	if f.rec.Status != events.WorkflowPaused && f.rec.Status != events.WorkflowStopped && f.rec.Status != events.WorkflowNeedsAttention && !retryFailed {
		return nil, control.Errorf(409, "workflow %s is %s, not paused or stopped", f.rec.ID, f.rec.Status)
	}
	if token != "" {
		if err := p.checkToken(f, token); err != nil {
			return nil, err
		}
	}
	run, _, err := p.running(ctx, events.AgentCommand{Op: events.AgentOpResume, Workflow: f.rec.ID})
	if err != nil {
		return nil, err
	}
	// A task that was running at the pause and did not finish (its agent
	// died, or it was handed back) has no message any more: queue it again.
	f.hold(run, nil)
	f.rec.Gen++
	if retryFailed {
		f.retryFailed()
	}
	prev := f.rec.Status
	var prevStale string
	if f.rec.Checkpoint != nil {
		prevStale = f.rec.Checkpoint.Stale
	}
	f.staleCheckpoint(fmt.Sprintf("%s (generation %d)", verb, f.rec.Gen))
	f.rec.Status = events.WorkflowRunning
	f.refresh()
	if err := p.putRecord(ctx, &f.rec); err != nil {
		f.rec.Status = prev
		f.rec.Gen--
		if f.rec.Checkpoint != nil {
			f.rec.Checkpoint.Stale = prevStale
		}
		return nil, err
	}
	reply := events.ResumeReply{Workflow: f.rec.ID, Status: f.rec.Status, Gen: f.rec.Gen, Queued: []string{}, Running: []string{}}
	// Tasks still running keep running: they are dispatched, not queued.
	kept := f.ready.idx[:0]
	for _, i := range f.ready.idx {
		if id := f.plan.Tasks[i].ID(); run[f.rec.ID+"/"+id] != "" {
			f.st[i].state = dispatched
			f.inflight++
			reply.Running = append(reply.Running, id)
			continue
		}
		kept = append(kept, i)
	}
	f.ready.idx = kept
	heap.Init(&f.ready)
	before := f.dispatchedSet()
	p.dispatchReady(f)
	for i := range f.st {
		if f.st[i].state == dispatched && !before[i] {
			reply.Queued = append(reply.Queued, f.plan.Tasks[i].ID())
		}
	}
	p.log.Info("workflow resumed", "workflow", f.rec.ID, "gen", f.rec.Gen, "queued", len(reply.Queued), "running", len(reply.Running))
	p.event(events.Event{Workflow: f.rec.ID, Kind: events.EventResumed,
		Message: fmt.Sprintf("generation %d: %d queued, %d still running", f.rec.Gen, len(reply.Queued), len(reply.Running))})
	p.maybeFinish(ctx, f)
	return reply, nil
}

func (f *flow) dispatchedSet() map[int]bool {
	out := map[int]bool{}
	for i, s := range f.st {
		if s.state == dispatched {
			out[i] = true
		}
	}
	return out
}

// lanePause pauses or resumes lane consumers with JetStream's consumer
// pause: the server delivers nothing from a paused lane, and a pause with
// an end lifts by itself.
func (p *Planner) lanePause(ctx context.Context, pause bool, req *events.ControlRequest) (any, error) {
	prios := events.Priorities
	if req.Priority != 0 {
		prios = []int{req.Priority}
	}
	until := time.Now().Add(100 * 365 * 24 * time.Hour)
	if req.Until > 0 {
		until = time.Now().Add(req.Until.D())
	}
	// The plain lanes, made if need be, and every capability lane of the
	// type that exists (one an agent makes later copies its plain lane's
	// pause: streams.EnsureLaneFor).
	var names []string
	for _, prio := range prios {
		if _, err := streams.EnsureLane(ctx, p.js, p.cfg.Streams, req.Type, prio); err != nil {
			return nil, err
		}
		names = append(names, streams.LaneConsumer(req.Type, prio))
	}
	have, err := streams.LaneStates(ctx, p.js, p.cfg.Streams)
	if err != nil {
		return nil, err
	}
	for _, l := range have {
		if l.Type == req.Type && len(l.Requires) > 0 && slices.Contains(prios, l.Priority) {
			names = append(names, l.Consumer)
		}
	}
	for _, name := range names {
		_, prio, _, _ := streams.ParseLane(name)
		var err error
		if pause {
			_, err = p.js.PauseConsumer(ctx, p.cfg.Streams.TasksStream(), name, until)
		} else {
			_, err = p.js.ResumeConsumer(ctx, p.cfg.Streams.TasksStream(), name)
		}
		if err != nil {
			return nil, fmt.Errorf("lane %s: %w", name, err)
		}
		kind := events.EventLaneResumed
		if pause {
			kind = events.EventLanePaused
		}
		p.event(events.Event{Workflow: "_", Kind: kind, Message: fmt.Sprintf("lane %s.%d (%s)", req.Type, prio, name)})
	}
	lanes, err := streams.LaneStates(ctx, p.js, p.cfg.Streams)
	if err != nil {
		return nil, err
	}
	out := []events.LaneState{}
	for _, l := range lanes {
		if l.Type == req.Type && (req.Priority == 0 || l.Priority == req.Priority) {
			out = append(out, l)
		}
	}
	return events.LaneReply{Lanes: out}, nil
}
