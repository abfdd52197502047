package planner

import (
	"container/heap"
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
	"github.com/baton-dev/baton/pkg/monitor"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// Planner is the planning service. Create it with New and run it with Run.
type Planner struct {
	cfg Config
	nc  *nats.Conn
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	// agentsKV is the registry, read for control and to mark failed agents.
	agentsKV jetstream.KeyValue
	subj     events.Subjects
	log      *slog.Logger

	flows     map[string]*flow
	replaying bool
	pending   []jetstream.PubAckFuture
	wake      map[string]bool // wake subjects of lanes that got tasks
	ctl       chan *ctlCall   // control requests for the loop
	mon       *monitor.Monitor
	// startMonitor starts mon once, on the loop's first status request.
	startMonitor func()
}

// New checks cfg and returns a planner that will use nc. It does no I/O.
func New(nc *nats.Conn, cfg Config) (*Planner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	// A lost acknowledgement must not hang flush: futures time out and the
	// message is published again (its Nats-Msg-Id makes that safe).
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192), jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("planner: %w", err)
	}
	mon, err := monitor.New(nc, monitor.Config{Streams: cfg.Streams, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	return &Planner{
		cfg: cfg, nc: nc, js: js, subj: cfg.Streams.Subjects(), log: cfg.Logger.With("service", "planner"),
		flows: map[string]*flow{}, wake: map[string]bool{}, ctl: make(chan *ctlCall), mon: mon,
	}, nil
}

// Run plans jobs and follows results until ctx is cancelled (then it returns
// nil) or JetStream fails in a way it cannot ride out. It may be called once.
func (p *Planner) Run(ctx context.Context) error {
	if err := streams.Ensure(ctx, p.js, p.cfg.Streams); err != nil {
		return err
	}
	kv, err := p.js.KeyValue(ctx, p.cfg.Streams.WorkflowsBucket())
	if err != nil {
		return fmt.Errorf("planner: workflows bucket: %w", err)
	}
	p.kv = kv
	// The monitor answers status requests. It starts with the first one (it
	// reads every result, a cost the planner need not pay unwatched) and
	// stops when Run returns.
	monCtx, stopMon := context.WithCancel(ctx)
	monDone := make(chan error, 1)
	p.startMonitor = sync.OnceFunc(func() { go func() { monDone <- p.mon.Run(monCtx) }() })
	defer func() {
		stopMon()
		select {
		case err := <-monDone:
			if err != nil {
				p.log.Warn("monitor", "err", err)
			}
		default:
			p.startMonitor() // never started: make Run's owner finish at once
			<-monDone
		}
	}()
	if p.agentsKV, err = p.js.KeyValue(ctx, p.cfg.Streams.AgentsBucket()); err != nil {
		return fmt.Errorf("planner: agents bucket: %w", err)
	}
	// Nothing is published until the replay has rebuilt what is done:
	// queueing a task again relies on that, not on de-duplication, which
	// forgets a consumed task once the server restarts.
	p.replaying = true
	if err := p.loadFlows(ctx); err != nil {
		return err
	}
	info, err := p.js.Stream(ctx, p.cfg.Streams.ResultsStream())
	if err != nil {
		return fmt.Errorf("planner: results stream: %w", err)
	}
	last := info.CachedInfo().State.LastSeq
	from := last + 1
	for _, f := range p.flows {
		from = min(from, f.rec.ResultsFrom)
	}
	from = max(from, info.CachedInfo().State.FirstSeq, 1)
	p.replaying = from <= last
	p.log.Info("starting", "workflows", len(p.flows), "replay_from", from, "replay_to", last)

	done := make(chan struct{})
	defer close(done)
	results := make(chan jetstream.Msg, 4096)
	feed := func(ch chan jetstream.Msg) jetstream.MessageHandler {
		return func(m jetstream.Msg) {
			select {
			case ch <- m:
			case <-done:
			}
		}
	}
	rcons, err := p.js.OrderedConsumer(ctx, p.cfg.Streams.ResultsStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{p.subj.Results()},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    from,
	})
	if err != nil {
		return fmt.Errorf("planner: results consumer: %w", err)
	}
	rc, err := rcons.Consume(feed(results), jetstream.PullMaxMessages(2048))
	if err != nil {
		return fmt.Errorf("planner: results consumer: %w", err)
	}
	defer func() { rc.Stop(); <-rc.Closed() }()

	jobs := make(chan jetstream.Msg, 64)
	var jc jetstream.ConsumeContext
	var svc micro.Service
	defer func() {
		if svc != nil {
			_ = svc.Stop()
		}
	}()
	// startJobs starts taking jobs and control requests, once the replay
	// has rebuilt every workflow.
	startJobs := func() error {
		var err error
		if svc, err = p.startService(ctx); err != nil {
			return err
		}
		cons, err := p.js.CreateOrUpdateConsumer(ctx, p.cfg.Streams.JobsStream(), p.cfg.Streams.Planner())
		if err != nil {
			return fmt.Errorf("planner: jobs consumer: %w", err)
		}
		jc, err = cons.Consume(feed(jobs), jetstream.PullMaxMessages(16))
		if err != nil {
			return fmt.Errorf("planner: jobs consumer: %w", err)
		}
		return nil
	}
	defer func() {
		if jc != nil {
			jc.Stop()
			<-jc.Closed()
		}
	}()
	if !p.replaying {
		if err := p.finishReplay(ctx); err != nil {
			return err
		}
		if err := startJobs(); err != nil {
			return err
		}
	}
	tick := time.NewTicker(p.cfg.Checkpoint)
	defer tick.Stop()
	agentCheck := time.NewTicker(p.cfg.Streams.AgentTTL / 6)
	defer agentCheck.Stop()
	for {
		select {
		case <-ctx.Done():
			p.checkpoint(context.WithoutCancel(ctx), true)
			return nil
		case m := <-results:
			caughtUp := p.onResult(m)
			for more := true; more && len(p.pending) < 4096; {
				select {
				case m := <-results:
					caughtUp = p.onResult(m)
				default:
					more = false
				}
			}
			if p.replaying && caughtUp {
				if err := p.finishReplay(ctx); err != nil {
					return err
				}
				if err := startJobs(); err != nil {
					return err
				}
			}
			if err := p.flush(ctx); err != nil {
				return err
			}
		case m := <-jobs:
			if err := p.onJob(ctx, m); err != nil {
				return err
			}
		case c := <-p.ctl:
			p.onControl(ctx, c)
		case <-tick.C:
			p.checkpoint(ctx, false)
		case <-agentCheck.C:
			if !p.replaying {
				p.markFailedAgents(ctx)
			}
		}
	}
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
			rec.Status, rec.Error, rec.Finished = events.WorkflowFailed, "cannot re-plan after restart: "+err.Error(), time.Now().UTC()
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

func (p *Planner) plan(ctx context.Context, data []byte) (*events.Job, *Plan, error) {
	job, err := events.ParseJob(data, p.cfg.Limits)
	if err != nil {
		return nil, nil, err
	}
	plan, err := Decompose(ctx, job, p.cfg.Decomposers, p.cfg.Routes, p.cfg.Limits.MaxTasks)
	if err != nil {
		return nil, nil, err
	}
	return job, plan, nil
}

func (p *Planner) getRecord(ctx context.Context, id string) (*events.Workflow, error) {
	rec, err := streams.GetWorkflow(ctx, p.kv, id)
	if err != nil {
		return nil, fmt.Errorf("planner: %w", err)
	}
	return rec, nil
}

func (p *Planner) putRecord(ctx context.Context, rec *events.Workflow) error {
	if err := streams.PutWorkflow(ctx, p.kv, rec); err != nil {
		return fmt.Errorf("planner: %w", err)
	}
	return nil
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
		return ackOrLog(p.log, m)
	}
	if f := p.flows[id]; f != nil { // a redelivery, or the same job id again
		p.reply(replyTo, events.SubmitReply{Workflow: id, Tasks: len(f.plan.Tasks), Lanes: f.plan.Lanes()})
		return ackOrLog(p.log, m)
	}
	existing, err := p.getRecord(ctx, id)
	if err != nil {
		return p.retryJob(m, err)
	}
	if existing != nil { // finished earlier: submitting the same id runs it once
		p.reply(replyTo, events.SubmitReply{Workflow: id, Tasks: existing.Counts.Total, Lanes: plan.Lanes()})
		return ackOrLog(p.log, m)
	}
	info, err := p.js.Stream(ctx, p.cfg.Streams.ResultsStream())
	if err != nil {
		return p.retryJob(m, err)
	}
	rec := events.Workflow{
		ID: id, Name: job.Name, Status: events.WorkflowRunning, Submitted: time.Now().UTC(),
		Collect: plan.Collect, SuccessThreshold: job.Threshold(), Aggregate: job.Aggregate,
		ResultsFrom: info.CachedInfo().State.LastSeq + 1,
	}
	for _, t := range plan.Tasks {
		if t.Critical {
			rec.Critical = append(rec.Critical, t.ID)
		}
		rec.CriticalPathTotal = max(rec.CriticalPathTotal, t.Depth)
	}
	rec.Lanes = plan.Lanes()
	f := newFlow(rec, job, plan)
	f.refresh()
	if _, err := p.kv.Put(ctx, id+".spec", m.Data()); err != nil {
		return p.retryJob(m, err)
	}
	if err := p.putRecord(ctx, &f.rec); err != nil {
		return p.retryJob(m, err)
	}
	p.flows[id] = f
	p.dispatchReady(f)
	if err := p.flush(ctx); err != nil {
		return err
	}
	p.warnUnserved(ctx, f)
	lanes := plan.Lanes()
	p.log.Info("workflow created", "workflow", id, "name", job.Name, "tasks", len(plan.Tasks), "lanes", lanes)
	detail, _ := json.Marshal(map[string]any{"name": job.Name, "tasks": len(plan.Tasks), "lanes": lanes})
	p.event(events.Event{Workflow: id, Kind: events.EventCreated, Detail: detail})
	p.reply(replyTo, events.SubmitReply{Workflow: id, Tasks: len(plan.Tasks), Lanes: lanes})
	return ackOrLog(p.log, m)
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

func ackOrLog(log *slog.Logger, m jetstream.Msg) error {
	if err := m.Ack(); err != nil {
		log.Warn("ack", "err", err)
	}
	return nil
}

// onResult applies one result. It reports whether the replay has caught up
// with the stream.
func (p *Planner) onResult(m jetstream.Msg) bool {
	meta, err := m.Metadata()
	caughtUp := err != nil || meta.NumPending == 0
	r, err := events.DecodeResult(m.Headers().Get(events.HeaderContentType), m.Data())
	if err != nil {
		p.log.Warn("undecodable result ignored", "subject", m.Subject(), "err", err)
		return caughtUp
	}
	f := p.flows[r.Workflow]
	if f == nil {
		return caughtUp // finished, or not ours
	}
	i, ok := f.plan.ByID[r.Task]
	if !ok {
		p.log.Warn("result for an unknown task ignored", "workflow", r.Workflow, "task", r.Task)
		return caughtUp
	}
	p.apply(f, i, r)
	return caughtUp
}

func (p *Planner) apply(f *flow, i int, r *events.Result) {
	t, s := &f.plan.Tasks[i], &f.st[i]
	if r.Status != events.StateCompleted && r.Gen < f.rec.Retry[t.ID] {
		return // a failure from before a restart with --retry-failed
	}
	if s.state == done {
		if r.Final && r.Status == s.status {
			s.confirmed = true
		}
		return
	}
	if !r.Final && r.Round == 0 && t.Fallback != "" {
		if s.round == 0 {
			s.round = 1
			if s.state != dispatched {
				s.state = dispatched
				f.inflight++
			}
			p.log.Info("fallback", "workflow", f.rec.ID, "task", t.ID, "from", t.Type, "to", t.Fallback, "err", r.Error)
			p.event(events.Event{Workflow: f.rec.ID, Kind: events.EventFallback, Task: t.ID,
				Message: fmt.Sprintf("%s failed after %d attempts (%s); %s takes over", t.Type, r.Attempts, r.Error, t.Fallback)})
			p.publishTask(f, i)
		}
		return
	}
	p.finishTask(f, i, r.Status, true)
	if len(t.Dependents) > 0 && r.Status != events.StateCancelled {
		f.depData[i] = &events.DepResult{Task: t.ID, Step: t.Step, Status: r.Status, Data: r.Data, Error: r.Error}
	}
	if r.Status != events.StateCompleted && t.Critical {
		p.cancelRest(f, fmt.Sprintf("critical task %s %s: %s", t.ID, r.Status, r.Error))
	} else {
		for _, d := range t.Dependents {
			f.waitFor[d]--
			if f.waitFor[d] == 0 && f.st[d].state == waiting {
				f.st[d].state = ready
				heap.Push(&f.ready, d)
			}
		}
		p.dispatchReady(f)
	}
	p.maybeFinish(f)
}

func (p *Planner) finishTask(f *flow, i int, status string, confirmed bool) {
	s := &f.st[i]
	if s.state == dispatched {
		f.inflight--
	}
	s.state, s.status, s.confirmed = done, status, confirmed
	f.finals++
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

func (p *Planner) dispatchReady(f *flow) {
	if f.rec.Status != events.WorkflowRunning {
		return // paused or stopped: ready tasks wait
	}
	for f.ready.Len() > 0 && (f.job.MaxParallel == 0 || f.inflight < f.job.MaxParallel) {
		i := heap.Pop(&f.ready).(int)
		if f.st[i].state != ready {
			continue // finished while it waited (a result came back, or a cancel)
		}
		f.st[i].state = dispatched
		f.inflight++
		if !p.replaying {
			p.publishTask(f, i)
		}
	}
}

func (p *Planner) maybeFinish(f *flow) {
	if f.finals < len(f.st) {
		return
	}
	f.refresh()
	f.rec.Status, f.rec.Finished = events.WorkflowCompleted, time.Now().UTC()
	if f.rec.Error != "" {
		f.rec.Status = events.WorkflowFailed
	}
	if err := p.putRecord(context.Background(), &f.rec); err != nil {
		// The replay after a restart writes it again.
		p.log.Error("record finished workflow", "workflow", f.rec.ID, "err", err)
	}
	delete(p.flows, f.rec.ID)
	p.log.Info("workflow finished", "workflow", f.rec.ID, "status", f.rec.Status,
		"completed", f.rec.Counts.Completed, "failed", f.rec.Counts.Failed, "cancelled", f.rec.Counts.Cancelled)
	detail, _ := json.Marshal(f.rec.Counts)
	p.event(events.Event{Workflow: f.rec.ID, Kind: events.EventCompleted, Message: f.rec.Status, Detail: detail})
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

func (p *Planner) publishTask(f *flow, i int) {
	t, s := &f.plan.Tasks[i], &f.st[i]
	task := events.Task{
		Workflow: f.rec.ID, ID: t.ID, Step: t.Step, Index: t.Index, Chunks: t.Chunks,
		Type: t.Type, Priority: t.Priority, Round: int(s.round), Input: t.Input,
		MaxAttempts: t.MaxAttempts, Backoff: t.Backoff, MaxBackoff: t.MaxBackoff, Timeout: t.Timeout,
		Fallback: t.Fallback, Critical: t.Critical, Gen: f.rec.Gen,
	}
	if s.round > 0 {
		task.Type, task.Fallback = t.Fallback, ""
	}
	for _, d := range t.Deps {
		if dr := f.depData[d]; dr != nil {
			task.Deps = append(task.Deps, *dr)
		} else {
			dt := &f.plan.Tasks[d]
			task.Deps = append(task.Deps, events.DepResult{Task: dt.ID, Step: dt.Step, Status: f.st[d].status, Error: "no result: the task was cancelled"})
		}
		if f.needed[d]--; f.needed[d] == 0 {
			delete(f.depData, d)
		}
	}
	body, err := events.Encode(&task)
	if err == nil && int64(len(body)) > p.nc.MaxPayload()-1024 {
		err = fmt.Errorf("task message is %d bytes, more than the server's limit of %d: its input or its dependencies' results are too large", len(body), p.nc.MaxPayload())
	}
	if err != nil {
		p.publishResult(&events.Result{
			Workflow: f.rec.ID, Task: t.ID, Step: t.Step, Index: t.Index, Type: task.Type, Round: task.Round,
			Status: events.StateFailed, Final: true, Error: err.Error(), ErrorKind: events.KindPermanent,
		}, "toolarge")
		return
	}
	msg := nats.NewMsg(p.subj.Task(task.Type, task.Priority, task.Workflow, task.ID))
	msg.Data = body
	msg.Header.Set(events.HeaderWorkflow, task.Workflow)
	msg.Header.Set(events.HeaderTask, task.ID)
	msg.Header.Set(events.HeaderMsgID, events.MsgID(task.Workflow, task.ID, task.Round, task.Gen))
	p.publish(msg)
	p.wake[p.subj.Wake(task.Type, task.Priority)] = true
}

func (p *Planner) publishCancel(f *flow, i int) {
	t := &f.plan.Tasks[i]
	p.publishResult(&events.Result{
		Workflow: f.rec.ID, Task: t.ID, Step: t.Step, Index: t.Index, Type: t.Type,
		Status: events.StateCancelled, Final: true, ErrorKind: events.KindDependency, Error: f.rec.Error,
	}, "cancel")
}

func (p *Planner) publishResult(r *events.Result, why string) {
	body, err := events.Encode(r)
	if err != nil {
		p.log.Error("encode result", "err", err)
		return
	}
	msg := nats.NewMsg(p.subj.Result(r.Workflow, r.Task))
	msg.Data = body
	msg.Header.Set(events.HeaderWorkflow, r.Workflow)
	msg.Header.Set(events.HeaderTask, r.Task)
	msg.Header.Set(events.HeaderMsgID, events.MsgID(r.Workflow, r.Task, why))
	p.publish(msg)
}

func (p *Planner) publish(msg *nats.Msg) {
	fut, err := p.js.PublishMsgAsync(msg)
	if err != nil {
		// Stalled: settle what is pending and try once more; flush retries.
		_ = p.flush(context.Background())
		if fut, err = p.js.PublishMsgAsync(msg); err != nil {
			p.log.Error("publish", "subject", msg.Subject, "err", err)
			return
		}
	}
	p.pending = append(p.pending, fut)
}

// flush waits for every pending publish, retrying failures, then rings the
// wake bell of each task type that got work.
func (p *Planner) flush(ctx context.Context) error {
	// Each future is dropped once settled: its channels yield one value.
	for len(p.pending) > 0 {
		fut := p.pending[0]
		select {
		case <-fut.Ok():
		case err := <-fut.Err():
			if err := p.republish(ctx, fut.Msg(), err); err != nil {
				p.pending = p.pending[1:]
				return err
			}
		case <-ctx.Done():
			return nil
		}
		p.pending = p.pending[1:]
	}
	p.pending = nil
	for subject := range p.wake {
		_ = p.nc.Publish(subject, nil)
		delete(p.wake, subject)
	}
	return nil
}

func (p *Planner) republish(ctx context.Context, msg *nats.Msg, cause error) error {
	delay := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		p.log.Warn("publish failed; retrying", "subject", msg.Subject, "attempt", attempt, "err", cause)
		_, cause = p.js.PublishMsg(ctx, msg)
		if cause == nil || ctx.Err() != nil {
			return nil
		}
		if attempt == 20 {
			return fmt.Errorf("planner: publish %s: %w", msg.Subject, cause)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// checkpoint writes the counters of workflows that changed.
func (p *Planner) checkpoint(ctx context.Context, all bool) {
	for _, f := range p.flows {
		if !f.dirty && !all {
			continue
		}
		f.dirty = false
		f.refresh()
		if err := p.putRecord(ctx, &f.rec); err != nil {
			p.log.Warn("checkpoint", "workflow", f.rec.ID, "err", err)
		}
	}
}

func (p *Planner) event(e events.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	if err := p.nc.Publish(p.subj.Event(e.Workflow, e.Kind), b); err != nil {
		p.log.Warn("publish event", "kind", e.Kind, "err", err)
	}
}

func (p *Planner) reply(subject string, r events.SubmitReply) {
	if subject == "" {
		return
	}
	b, _ := json.Marshal(r)
	if err := p.nc.Publish(subject, b); err != nil {
		p.log.Warn("reply", "subject", subject, "err", err)
	}
}
