package planner

import (
	"context"
	"fmt"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
)

// startReplay rebuilds every unfinished workflow from its record and job,
// and follows RESULTS from the earliest result any of them may have.
// Nothing is published until the replay has caught up (finishReplay):
// queueing a task again relies on the replay knowing what is done, not on
// de-duplication, which forgets a consumed task once the server restarts.
func (p *Planner) startReplay(ctx context.Context) (*streams.Follower, error) {
	p.replaying = true
	if err := p.loadFlows(ctx); err != nil {
		return nil, err
	}
	info, err := p.js.Stream(ctx, p.cfg.Streams.ResultsStream())
	if err != nil {
		return nil, fmt.Errorf("planner: results stream: %w", err)
	}
	st := info.CachedInfo().State
	p.lastSeq = st.LastSeq
	from := st.LastSeq + 1
	for _, f := range p.flows {
		from = min(from, f.rec.ResultsFrom)
	}
	from = max(from, st.FirstSeq, 1)
	res, err := streams.Follow(ctx, p.js, streams.FollowConfig{
		Stream: p.cfg.Streams.ResultsStream(), Filter: p.subj.Results(), FromSeq: from,
	})
	if err != nil {
		return nil, fmt.Errorf("planner: %w", err)
	}
	p.replaying = res.Backlog > 0
	p.log.Info("starting", "workflows", len(p.flows), "replay_from", from, "replay", res.Backlog)
	return res, nil
}

// loadFlows rebuilds every unfinished workflow from its record and job.
func (p *Planner) loadFlows(ctx context.Context) error {
	lister, err := p.kv.ListKeysFiltered(ctx, "*")
	if err != nil {
		return fmt.Errorf("planner: list workflows: %w", err)
	}
	var ids []string
	for k := range lister.Keys() {
		ids = append(ids, k)
	}
	for _, id := range ids {
		rec, err := p.getRecord(ctx, id)
		if err != nil {
			return err
		}
		if rec == nil || !events.WorkflowOpen(rec.Status) {
			continue
		}
		spec, err := p.kv.Get(ctx, id+".spec")
		if err != nil {
			return fmt.Errorf("planner: job of workflow %s: %w", id, err)
		}
		job, plan, err := p.plan(ctx, spec.Value())
		if err != nil {
			// The job was valid when accepted; it no longer plans (say a
			// custom decomposer is gone). Fail the workflow, loudly.
			p.log.Error("cannot re-plan workflow", "workflow", id, "err", err)
			rec.Status, rec.Outcome, rec.Finished = events.WorkflowFailed, events.OutcomeFailed, time.Now().UTC()
			rec.Error = "cannot re-plan after restart: " + err.Error()
			if err := p.putRecord(ctx, rec); err != nil {
				return err
			}
			continue
		}
		applyPriorities(plan, rec.Priorities)
		f := newFlow(*rec, job, plan)
		p.flows[id] = f
		p.dispatchReady(f)
	}
	return nil
}

// finishReplay publishes what the replay found due: every dispatched task
// without a final result (de-duplicated by Nats-Msg-Id if it is still
// queued) and every cancellation not yet on RESULTS.
func (p *Planner) finishReplay(ctx context.Context) error {
	p.replaying = false
	for _, f := range p.flows {
		for i, s := range f.st {
			switch {
			case s.state == dispatched:
				p.publishTask(f, i)
			case s.state == done && !s.confirmed:
				p.publishCancel(f, i)
			}
		}
	}
	p.log.Info("replay done", "workflows", len(p.flows))
	return p.flush(ctx)
}
