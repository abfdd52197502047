package planner

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/control"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/webhook"
	"github.com/nats-io/nats.go/jetstream"
)

// How a workflow finishes: early termination (stop_when), automatic retry
// rounds and escalation when the success threshold is missed
// (on_threshold_missed), and a person's resolution of an escalation. Every
// state lives in the workflow record (Rounds, Gen, Retry, Status
// needs_attention, Resolution), so a restarted or taking-over planner
// carries on from it.

// checkFinish checks what of stop_when and on_threshold_missed needs the
// plan or the planner's config.
func (p *Planner) checkFinish(job *events.Job, plan *Plan) error {
	if s := job.StopWhen; s != nil && s.Completed > len(plan.Tasks) {
		return &events.ValidationError{Field: "stop_when.completed",
			Reason: fmt.Sprintf("%d is more than the job's %d tasks", s.Completed, len(plan.Tasks))}
	}
	if o := job.OnThresholdMissed; o != nil && o.Escalate != nil && o.Escalate.Webhook != "" {
		u, err := url.Parse(o.Escalate.Webhook)
		if err != nil || !slices.Contains(p.cfg.WebhookHosts, u.Host) {
			return &events.ValidationError{Field: "on_threshold_missed.escalate.webhook",
				Reason: "this planner does not allow the job's webhook host: a job may name only a host the planner's webhook allow-list has"}
		}
	}
	return nil
}

// maybeFinish decides what follows once every task of a workflow has a
// final result: the workflow closes with its verdict, or, having missed
// its success threshold with an on_threshold_missed policy, runs its
// failed tasks again (a retry round) or escalates.
func (p *Planner) maybeFinish(ctx context.Context, f *flow) {
	if f.finals < len(f.st) || f.reopening {
		return
	}
	f.refresh()
	crit := f.criticalFailed()
	out, _ := f.rec.Verdict(f.rec.Counts, crit)
	if f.rec.AwaitsDecision(out, crit) {
		pol := f.rec.OnThresholdMissed
		switch {
		case f.rec.Status == events.WorkflowNeedsAttention:
			return // replayed: it waits for a person
		case f.rec.Rounds < pol.RetryFailed && f.rec.Counts.Failed > 0:
			p.retryRound(ctx, f)
			return
		case pol.Escalate != nil:
			p.escalate(ctx, f)
			return
		}
	}
	p.close(ctx, f, out)
}

// retryFailed makes every failed task of f ready again under the current
// generation: a failed result of an older one no longer counts. It
// returns how many.
func (f *flow) retryFailed() int {
	n := 0
	for i := range f.st {
		if s := &f.st[i]; s.state == done && s.status == failed {
			if f.rec.Retry == nil {
				f.rec.Retry = map[string]int{}
			}
			f.rec.Retry[f.plan.Tasks[i].ID()] = f.rec.Gen
			*s = taskState{state: ready}
			f.finals--
			heap.Push(&f.ready, i)
			n++
		}
	}
	return n
}

// retryRound runs the failed tasks of a workflow that missed its threshold
// again, as round Rounds+1 (a new generation).
func (p *Planner) retryRound(ctx context.Context, f *flow) {
	f.rec.Rounds++
	f.rec.Gen++
	n := f.retryFailed()
	f.refresh()
	if err := p.putRecord(context.WithoutCancel(ctx), &f.rec); err != nil {
		p.log.Error("record retry round", "workflow", f.rec.ID, "err", err)
	}
	p.log.Info("threshold missed: retry round", "workflow", f.rec.ID, "round", f.rec.Rounds, "tasks", n)
	p.event(events.Event{Workflow: f.rec.ID, Kind: events.EventRetryRound,
		Message: fmt.Sprintf("success threshold missed: round %d of %d runs %d failed tasks again", f.rec.Rounds, f.rec.OnThresholdMissed.RetryFailed, n)})
	p.dispatchReady(f)
}

// escalate makes a workflow that missed its threshold for good wait for a
// person: status needs_attention, an escalated event and, if a URL is
// configured, a webhook POST on a goroutine of the webhook sender.
func (p *Planner) escalate(ctx context.Context, f *flow) {
	f.rec.Status = events.WorkflowNeedsAttention
	f.rec.Escalated = time.Now().UTC()
	if err := p.putRecord(context.WithoutCancel(ctx), &f.rec); err != nil {
		p.log.Error("record escalation", "workflow", f.rec.ID, "err", err)
	}
	esc := events.Escalation{Workflow: f.rec.ID, Name: f.rec.Name, Status: f.rec.Status, Escalated: f.rec.Escalated,
		Rounds: f.rec.Rounds, Counts: f.rec.Counts, Threshold: f.rec.SuccessThreshold, Error: f.rec.Error, Failed: []string{}}
	for i, s := range f.st {
		if s.status == failed {
			if len(esc.Failed) < events.MaxEscalationTasks {
				esc.Failed = append(esc.Failed, f.plan.Tasks[i].ID())
			} else {
				esc.FailedOmitted++
			}
		}
	}
	esc.Error = events.Short(esc.Error)
	body, _ := json.Marshal(esc)
	msg := fmt.Sprintf("%d of %d tasks completed, below the success threshold of %g after %d retry rounds: resolve it (accept, retry_failed or fail)",
		f.rec.Counts.Completed, f.rec.Counts.Total, f.rec.SuccessThreshold, f.rec.Rounds)
	p.log.Warn("workflow needs attention", "workflow", f.rec.ID, "completed", f.rec.Counts.Completed, "total", f.rec.Counts.Total)
	p.event(events.Event{Workflow: f.rec.ID, Kind: events.EventEscalated, Message: msg, Detail: body})
	hook := p.cfg.Webhook
	if e := f.rec.OnThresholdMissed.Escalate; e != nil && e.Webhook != "" {
		hook = e.Webhook
	}
	if hook != "" && p.hooks != nil {
		p.hooks.Send(hook, f.rec.ID, body)
	}
}

// reportWebhook records a webhook's outcome as an event (it runs on the
// sender's goroutine; publishing an event is safe there).
func (p *Planner) reportWebhook(o webhook.Outcome) {
	u, err := url.Parse(o.URL)
	host := "?"
	if err == nil {
		host = u.Host
	}
	detail, _ := json.Marshal(map[string]any{"host": host, "attempts": o.Attempts, "status": o.Status, "ok": o.Err == nil})
	msg := fmt.Sprintf("delivered to %s (HTTP %d, %d attempts)", host, o.Status, o.Attempts)
	if o.Err != nil {
		msg = fmt.Sprintf("not delivered to %s after %d attempts: %s", host, o.Attempts, events.Short(o.Err.Error()))
		p.log.Warn("escalation webhook failed", "workflow", o.Key, "host", host, "attempts", o.Attempts, "err", o.Err)
	}
	p.event(events.Event{Workflow: o.Key, Kind: events.EventWebhook, Message: msg, Detail: detail})
}

// resolve ends an escalated workflow's wait: accept closes it as partial
// with what there is, fail closes it as failed, retry_failed runs its
// failed tasks again (if they miss the threshold again, it escalates
// again).
func (p *Planner) resolve(ctx context.Context, req *events.ControlRequest) (any, error) {
	if req.Resolution == "" {
		return nil, control.Errorf(400, "resolve how? give resolution accept, retry_failed or fail")
	}
	f, err := p.flowFor(ctx, req.Workflow)
	if err != nil {
		return nil, err
	}
	if f.rec.Status != events.WorkflowNeedsAttention {
		return nil, control.Errorf(409, "workflow %s is %s: only a workflow that needs attention (escalated) can be resolved", f.rec.ID, f.rec.Status)
	}
	reply := events.ResolveReply{Workflow: f.rec.ID, Resolution: req.Resolution, Queued: []string{}}
	resolved := func() {
		p.log.Info("workflow resolved", "workflow", f.rec.ID, "resolution", req.Resolution)
		p.event(events.Event{Workflow: f.rec.ID, Kind: events.EventResolved, Message: req.Resolution})
	}
	switch req.Resolution {
	case events.ResolveRetryFailed:
		if f.rec.Counts.Failed == 0 {
			return nil, control.Errorf(409, "workflow %s has no failed task to retry (its missing tasks were cancelled)", f.rec.ID)
		}
		f.rec.Resolution = req.Resolution
		resolved()
		v, err := p.resume(ctx, f, true, "", "retried")
		if err != nil {
			return nil, err
		}
		rr := v.(events.ResumeReply)
		reply.Status, reply.Queued = rr.Status, rr.Queued
		return reply, nil
	case events.ResolveAccept:
		reply.Outcome = events.OutcomePartial
	default:
		reply.Outcome = events.OutcomeFailed
	}
	prev := f.rec
	f.rec.Resolution = req.Resolution
	f.rec.Status = events.WorkflowCompleted
	if reply.Outcome == events.OutcomeFailed {
		f.rec.Status = events.WorkflowFailed
	}
	f.rec.Outcome = reply.Outcome
	if err := p.putRecord(ctx, &f.rec); err != nil {
		f.rec = prev
		return nil, err
	}
	resolved()
	p.close(ctx, f, reply.Outcome)
	reply.Status = f.rec.Status
	return reply, nil
}

// noteReady records when a hybrid workflow becomes ready, by the rule the
// aggregator's ready output follows, so that status shows it.
func (f *flow) noteReady() {
	if f.rec.CollectMode() != events.CollectHybrid || !f.rec.Ready.IsZero() ||
		!f.rec.ReadyHolds(f.completed, f.critDone, f.critical) {
		return
	}
	f.rec.Ready = time.Now().UTC()
	f.dirty = true
}

// noteStop marks f due to stop early once its stop_when holds and tasks
// remain; stopEarly does it outside the replay.
func (f *flow) noteStop() {
	if f.rec.StopWhen == nil || f.stopDue || f.finals >= len(f.st) {
		return
	}
	c := events.Counts{Total: len(f.st), Completed: f.completed}
	if f.rec.StopHolds(c, f.critDone == f.critical) {
		f.stopDue = true
	}
}

// stopEarly cancels the rest of every workflow whose stop_when holds:
// running tasks are stopped on their agents, queued ones withdrawn, each
// with a cancelled result of kind stop_when. A failure (agents or
// JetStream not answering) leaves it for the next tick.
func (p *Planner) stopEarly(ctx context.Context) {
	var due []*flow
	for _, f := range p.flows {
		if f.stopDue {
			due = append(due, f)
		}
	}
	for _, f := range due {
		why := fmt.Sprintf("cancelled: the job's stop_when held (%d of %d tasks completed)", f.completed, len(f.st))
		run, _, err := p.running(ctx, events.AgentCommand{Op: events.AgentOpRunning, Workflow: f.rec.ID})
		if err == nil {
			p.event(events.Event{Workflow: f.rec.ID, Kind: events.EventStopWhen, Message: why})
			sel := &selector{req: &events.ControlRequest{Workflow: f.rec.ID, All: true}, why: why, kind: events.KindStopWhen}
			err = p.cancelIn(ctx, f, sel, run, &events.CancelReply{})
		}
		if err != nil {
			p.log.Warn("stop_when: cancel failed; trying again", "workflow", f.rec.ID, "err", err)
			continue
		}
		f.stopDue = false
	}
}

// reopenWait bounds how long reopening a workflow may take to read its
// results back.
const reopenWait = 30 * time.Second

// reopen rebuilds a finished workflow from its record, its job and its
// stored results, so that its failed tasks can run again (restart
// --retry-failed of a finished workflow). The flow is in p.flows, still
// with its finished status, until resume stores it running; the caller
// removes it if that fails.
func (p *Planner) reopen(ctx context.Context, id string) (*flow, error) {
	rec, err := p.getRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, control.Errorf(404, "unknown workflow %s", id)
	}
	if rec.Counts.Failed == 0 {
		return nil, control.Errorf(409, "workflow %s has finished (%s) with no failed task to retry", id, rec.Status)
	}
	spec, err := p.kv.Get(ctx, id+".spec")
	if err != nil {
		return nil, fmt.Errorf("planner: job of workflow %s: %w", id, err)
	}
	job, plan, err := p.plan(ctx, spec.Value())
	if err != nil {
		return nil, control.Errorf(409, "workflow %s no longer plans: %v", id, err)
	}
	applyPriorities(plan, rec.Priorities)
	f := newFlow(*rec, job, plan)
	f.reopening = true
	p.flows[id] = f
	replaying := p.replaying
	p.replaying = true // apply results without publishing anything
	err = streams.Replay(ctx, p.js, streams.FollowConfig{Stream: p.cfg.Streams.ResultsStream(),
		Filter: p.subj.Result(id, "*"), FromSeq: max(rec.ResultsFrom, 1)}, reopenWait, func(m jetstream.Msg) { p.onResult(ctx, m) })
	p.replaying = replaying
	f.reopening, f.stopDue = false, false
	if err == nil && f.finals < len(f.st) {
		err = control.Errorf(409, "workflow %s: %d of its %d results are no longer stored (RESULTS keeps them for a limited age)", id, len(f.st)-f.finals, len(f.st))
	}
	if err != nil {
		delete(p.flows, id)
		return nil, err
	}
	f.rec.Outcome, f.rec.Finished, f.rec.Error = "", time.Time{}, ""
	f.rec.Reopened++
	p.log.Info("finished workflow reopened", "workflow", id, "failed", f.rec.Counts.Failed)
	return f, nil
}

// restart is the restart verb: resume a stopped or paused workflow, and,
// with retryFailed, also a finished one that has failed tasks.
func (p *Planner) restart(ctx context.Context, req *events.ControlRequest) (any, error) {
	f, err := p.flowFor(ctx, req.Workflow)
	reopened := false
	if err != nil && req.RetryFailed && errors.Is(err, events.ErrConflict) {
		f, err = p.reopen(ctx, req.Workflow)
		reopened = true
	}
	if err != nil {
		return nil, err
	}
	v, err := p.resume(ctx, f, req.RetryFailed, req.Token, "restarted")
	if err != nil && reopened {
		delete(p.flows, f.rec.ID)
	}
	return v, err
}
