package planner

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/retry"
	"github.com/nats-io/nats.go/jetstream"
)

// onResult applies one result. It reports whether the replay has caught up
// with the stream.
func (p *Planner) onResult(ctx context.Context, m jetstream.Msg) bool {
	caughtUp := streams.CaughtUp(m)
	r, err := p.subj.DecodeResultMsg(m.Subject(), m.Headers().Get(events.HeaderContentType), m.Data())
	if err != nil {
		p.refuse(m.Subject(), err)
		return caughtUp
	}
	f := p.flows[r.Workflow]
	if f == nil {
		return caughtUp // finished, or not ours
	}
	i, ok := f.plan.Index(r.Task)
	if !ok {
		p.refuse(m.Subject(), fmt.Errorf("%w: result for %s/%s, a task not in the plan", events.ErrForged, r.Workflow, events.Short(r.Task)))
		return caughtUp
	}
	if err := p.key.CheckFor(&f.rec, r); err != nil {
		p.refuse(m.Subject(), err)
		return caughtUp
	}
	p.apply(ctx, f, i, r)
	return caughtUp
}

// refuse logs and reports a result that cannot be used (undecodable, or
// forged: its subject is not its body's), a few times per kind, never
// acting on it.
func (p *Planner) refuse(subject string, err error) {
	report, n := p.refused.Log(p.log, "result refused", subject, err)
	if report && errors.Is(err, events.ErrForged) {
		p.event(events.Event{Workflow: "_", Kind: events.EventSecurity, Message: fmt.Sprintf("%v (%d so far)", err, n)})
	}
}

func (p *Planner) apply(ctx context.Context, f *flow, i int, r *events.Result) {
	t, s := &f.plan.Tasks[i], &f.st[i]
	if r.Status != events.StateCompleted && r.Gen < f.rec.Retry[t.ID()] {
		return // a failure from before a restart with --retry-failed
	}
	if s.state == done {
		if r.Final && outcomeOf(r.Status) == s.status {
			s.confirmed = true
		}
		return
	}
	if retry.FallbackDue(r, t.Fallback) {
		p.startFallback(f, i, r)
		return
	}
	p.finishTask(f, i, r.Status, true)
	if len(f.plan.Dependents(i)) > 0 && r.Status != events.StateCancelled {
		f.depData[i] = &events.DepResult{Task: t.ID(), Step: t.Step, Status: r.Status, Data: r.Data, Error: r.Error}
	}
	if r.Status != events.StateCompleted && t.Critical {
		p.cancelRest(f, fmt.Sprintf("critical task %s %s: %s", t.ID(), r.Status, r.Error))
	} else {
		f.release(i)
		p.dispatchReady(f)
	}
	f.noteStop()
	f.noteReady()
	p.maybeFinish(ctx, f)
}

// startFallback queues task i for its step's fallback type, once.
func (p *Planner) startFallback(f *flow, i int, r *events.Result) {
	t, s := &f.plan.Tasks[i], &f.st[i]
	if s.round != 0 {
		return
	}
	s.round = 1
	if s.state != dispatched {
		s.state = dispatched
		f.inflight++
	}
	p.log.Info("fallback", "workflow", f.rec.ID, "task", t.ID(), "from", t.Type, "to", t.Fallback, "err", r.Error)
	p.event(events.Event{Workflow: f.rec.ID, Kind: events.EventFallback, Task: t.ID(),
		Message: fmt.Sprintf("%s failed after %d attempts (%s); %s takes over", t.Type, r.Attempts, r.Error, t.Fallback)})
	p.publishTask(f, i)
}

// release counts task i as done for its dependents: those with nothing left
// to wait for become ready.
func (f *flow) release(i int) {
	for _, d := range f.plan.Dependents(i) {
		f.waitFor[d]--
		if f.waitFor[d] == 0 && f.st[d].state == waiting {
			f.st[d].state = ready
			heap.Push(&f.ready, d)
		}
	}
}

func (p *Planner) finishTask(f *flow, i int, status string, confirmed bool) {
	s := &f.st[i]
	if s.state == dispatched {
		f.inflight--
	}
	s.state, s.status, s.confirmed = done, outcomeOf(status), confirmed
	f.finals++
	if status == events.StateCompleted {
		f.completed++
		if f.plan.Tasks[i].Critical {
			f.critDone++
		}
	}
	f.dirty = true
}

// cancelRest ends every task that has not been dispatched: a critical task
// failed, so the workflow cannot succeed. Tasks already on a lane finish.
func (p *Planner) cancelRest(f *flow, why string) {
	if f.rec.Error == "" {
		f.rec.Error = why
	}
	for i := range f.st {
		if st := f.st[i].state; st == waiting || st == ready {
			p.finishTask(f, i, events.StateCancelled, false)
			if !p.replaying {
				p.publishCancel(f, i)
			}
		}
	}
	f.ready.idx = f.ready.idx[:0]
}

// close finishes a workflow with its verdict: its record gets the outcome
// its final output will have (success, partial or failed, by the same rule
// the aggregator applies, or a person's resolution), and the status
// "failed" exactly when that outcome is failed.
func (p *Planner) close(ctx context.Context, f *flow, outcome string) {
	f.refresh()
	f.rec.Outcome = outcome
	f.rec.Status, f.rec.Finished = events.WorkflowCompleted, time.Now().UTC()
	if f.rec.Outcome == events.OutcomeFailed {
		f.rec.Status = events.WorkflowFailed
		if f.rec.Error == "" {
			f.rec.Error = fmt.Sprintf("%d of %d tasks completed, below the success threshold of %g",
				f.rec.Counts.Completed, f.rec.Counts.Total, f.rec.SuccessThreshold)
		}
	}
	if err := p.putRecord(context.WithoutCancel(ctx), &f.rec); err != nil {
		// Written again at each checkpoint until it is stored (and by
		// the replay after a restart).
		p.log.Warn("record finished workflow; writing it again at the next checkpoint", "workflow", f.rec.ID, "err", err)
		p.unwritten[f.rec.ID] = f.rec
	}
	delete(p.flows, f.rec.ID)
	p.log.Info("workflow finished", "workflow", f.rec.ID, "status", f.rec.Status, "outcome", f.rec.Outcome,
		"completed", f.rec.Counts.Completed, "failed", f.rec.Counts.Failed, "cancelled", f.rec.Counts.Cancelled)
	detail, _ := json.Marshal(map[string]any{"outcome": f.rec.Outcome, "counts": f.rec.Counts, "error": f.rec.Error})
	p.event(events.Event{Workflow: f.rec.ID, Kind: events.EventCompleted, Message: f.rec.Outcome, Detail: detail})
}

// criticalFailed reports whether a critical task ended other than
// completed.
func (f *flow) criticalFailed() bool {
	for i, t := range f.plan.Tasks {
		if t.Critical && f.st[i].state == done && f.st[i].status != completed {
			return true
		}
	}
	return false
}
