package planner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go/jetstream"
)

// plan parses and decomposes a job.
func (p *Planner) plan(ctx context.Context, data []byte) (*events.Job, *Plan, error) {
	job, err := events.ParseJob(data, p.cfg.Limits)
	if err != nil {
		return nil, nil, err
	}
	plan, err := Decompose(ctx, job, p.cfg.Decomposers, p.cfg.Routes, p.cfg.Limits.MaxTasks)
	if err != nil {
		return nil, nil, err
	}
	if err := p.checkFinish(job, plan); err != nil {
		return nil, nil, err
	}
	return job, plan, nil
}

// workflowID is the job's own id, or one derived from where the job sits in
// JOBS, so a redelivered job maps to the same workflow.
func workflowID(job *events.Job, m jetstream.Msg) string {
	if job != nil && job.ID != "" {
		return job.ID
	}
	meta, err := m.Metadata()
	if err != nil {
		return "wf-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return "wf-" + strconv.FormatInt(meta.Timestamp.UnixMilli(), 36) + "-" + strconv.FormatUint(meta.Sequence.Stream, 36)
}

// onJob plans one submitted job. It returns an error only when JetStream
// itself fails; a bad job is rejected and acknowledged.
func (p *Planner) onJob(ctx context.Context, m jetstream.Msg) error {
	replyTo := m.Headers().Get(events.HeaderReplyTo)
	job, plan, err := p.plan(ctx, m.Data())
	id := workflowID(job, m)
	if err != nil {
		var ve *events.ValidationError
		if !errors.As(err, &ve) {
			ve = &events.ValidationError{Reason: err.Error()}
		}
		p.log.Warn("job rejected", "workflow", id, "field", ve.Field, "reason", ve.Reason)
		detail, _ := json.Marshal(ve)
		p.event(events.Event{Workflow: id, Kind: events.EventRejected, Message: ve.Error(), Detail: detail})
		p.reply(replyTo, events.SubmitReply{Workflow: id, Error: ve})
		return p.ack(m)
	}
	if f := p.flows[id]; f != nil { // a redelivery, or the same job id again
		p.reply(replyTo, events.SubmitReply{Workflow: id, Tasks: len(f.plan.Tasks), Lanes: f.plan.Lanes()})
		return p.ack(m)
	}
	// Its results come after every result followed so far: where its
	// replay would start, without asking the server.
	f := newFlow(newRecord(id, job, plan, max(p.results.Delivered(), p.lastSeq)+1), job, plan)
	f.refresh()
	created, err := p.create(ctx, id, m.Data(), &f.rec)
	if err != nil {
		return p.retryJob(m, err)
	}
	if !created { // finished earlier: submitting the same id runs it once
		existing, err := p.getRecord(ctx, id)
		if err == nil && existing == nil {
			err = fmt.Errorf("planner: the record of %s was deleted while read", id)
		}
		if err != nil {
			return p.retryJob(m, err)
		}
		p.reply(replyTo, events.SubmitReply{Workflow: id, Tasks: existing.Counts.Total, Lanes: plan.Lanes()})
		return p.ack(m)
	}
	p.flows[id] = f
	p.dispatchReady(f)
	if err := p.flush(ctx); err != nil {
		return err
	}
	warnings := p.warnUnserved(ctx, f)
	lanes := plan.Lanes()
	p.log.Info("workflow created", "workflow", id, "name", job.Name, "tasks", len(plan.Tasks), "lanes", lanes)
	detail, _ := json.Marshal(map[string]any{"name": job.Name, "tasks": len(plan.Tasks), "lanes": lanes})
	p.event(events.Event{Workflow: id, Kind: events.EventCreated, Detail: detail})
	p.reply(replyTo, events.SubmitReply{Workflow: id, Tasks: len(plan.Tasks), Lanes: lanes, Warnings: warnings, Created: true})
	return p.ack(m)
}

// create writes a new workflow's job (its spec) and record at once, one
// round trip and both before any task is queued, and reports whether the
// workflow is new. Each is created only if absent: a job submitted again
// with the id of an earlier workflow changes nothing of it, and costs no
// read when the id is new (the usual case).
func (p *Planner) create(ctx context.Context, id string, spec []byte, rec *events.Workflow) (bool, error) {
	var specErr error
	var wrote sync.WaitGroup
	wrote.Go(func() { _, specErr = p.kv.Create(ctx, id+".spec", spec) })
	recErr := streams.CreateWorkflow(ctx, p.kv, rec)
	wrote.Wait()
	switch {
	case errors.Is(recErr, jetstream.ErrKeyExists):
		return false, nil
	case recErr != nil:
		return false, fmt.Errorf("planner: %w", recErr)
	case errors.Is(specErr, jetstream.ErrKeyExists):
		// The record is new and the spec is not: an earlier try of this
		// job stored the spec and failed before the record, or the
		// record of an id used before was deleted. This job's spec goes
		// with this record.
		_, specErr = p.kv.Put(ctx, id+".spec", spec)
	}
	if specErr != nil {
		// A record without its job cannot be re-planned: remove it, so
		// that the retry creates both.
		if err := p.kv.Delete(ctx, id); err != nil {
			p.log.Warn("remove the record of a workflow whose job was not stored", "workflow", id, "err", err)
		}
		return false, fmt.Errorf("planner: store job of %s: %w", id, specErr)
	}
	return true, nil
}

// newRecord is a new workflow's record; its results start at resultsFrom.
func newRecord(id string, job *events.Job, plan *Plan, resultsFrom uint64) events.Workflow {
	rec := events.Workflow{
		ID: id, Name: job.Name, Status: events.WorkflowRunning, Submitted: time.Now().UTC(),
		Collect: plan.Collect, SuccessThreshold: job.Threshold(), Aggregate: job.Aggregate,
		ResultsFrom: resultsFrom, Lanes: plan.Lanes(), Leased: true, Needs: plan.Needs(),
		StopWhen: job.StopWhen, OnThresholdMissed: job.OnThresholdMissed,
	}
	if job.Collect != events.CollectStream {
		rec.Mode = job.Collect
	}
	if job.Deadline > 0 {
		rec.Deadline = rec.Submitted.Add(job.Deadline.D())
	}
	rec.Steps = map[string]int{}
	for _, t := range plan.Tasks {
		if t.ID() == t.Step {
			rec.Steps[t.Step] = 0
		} else {
			rec.Steps[t.Step] = t.Chunks
		}
		if t.Critical {
			rec.Critical = append(rec.Critical, t.ID())
		}
		rec.CriticalPathTotal = max(rec.CriticalPathTotal, t.Depth)
	}
	return rec
}

// retryJob hands a job back to JOBS after a JetStream error, to be planned
// again in a second.
func (p *Planner) retryJob(m jetstream.Msg, cause error) error {
	p.log.Warn("job will be retried", "err", cause)
	if err := m.NakWithDelay(time.Second); err != nil {
		p.log.Warn("nak job", "err", err)
	}
	return nil
}

// handBack returns a job a stopping planner took from JOBS and did not
// plan: the planner that leads next takes it at once.
func handBack(log *slog.Logger, m jetstream.Msg) {
	if err := m.Nak(); err != nil {
		log.Warn("hand back job", "err", err)
	}
}

func (p *Planner) ack(m jetstream.Msg) error {
	if err := m.Ack(); err != nil {
		p.log.Warn("ack job", "err", err)
	}
	return nil
}

// warnUnserved raises a warning event for each task type of a new workflow
// that no live agent serves, and for each of its needs (capabilities,
// resources) that no live agent of the type meets; it returns the
// warnings, at most events.MaxWarnings, for the submit reply.
//
// The agents come from the planner's view of the registry, with no
// request; only when that finds something unserved, or is not synced, is
// the registry read, so that an agent registered a moment ago counts.
func (p *Planner) warnUnserved(ctx context.Context, f *flow) []string {
	agents, ok := p.agents.List()
	out := unserved(f, agents)
	if !ok || len(out) > 0 {
		var err error
		if agents, err = p.reg.List(ctx); err != nil {
			return nil
		}
		out = unserved(f, agents)
	}
	for _, w := range out {
		p.event(events.Event{Workflow: f.rec.ID, Kind: events.EventWarning, Message: w})
	}
	return out
}

// unserved is the warnings of f's types and needs that no agent of agents
// serves or meets, at most events.MaxWarnings.
func unserved(f *flow, agents []events.AgentInfo) []string {
	var out []string
	for _, t := range f.plan.Unserved(agents) {
		out = append(out, "no live agent serves type \""+t+"\": its tasks wait on their lanes until one starts")
	}
	out = append(out, events.NewOffers(agents).Unmet(f.rec.Needs)...)
	return out[:min(len(out), events.MaxWarnings)]
}
