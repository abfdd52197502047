package planner

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/monitor"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// ServiceName is the planner's NATS service: `nats micro info baton`.
const ServiceName = "baton"

// gatherWait bounds how long the planner waits for agents to answer a
// command; an agent that does not answer in time is taken as not running
// anything of the workflow.
const gatherWait = time.Second

// ctlCall is a control request handed to the planner's loop, which owns all
// workflow state; the loop answers on done.
type ctlCall struct {
	verb string
	req  *events.ControlRequest
	done chan ctlResult
}

type ctlResult struct {
	v   any
	err error
}

func ctlErr(code int, format string, args ...any) error {
	return &events.ControlError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// startService registers the control service. Its handlers run on the
// service's goroutines and pass each request to the loop through p.ctl.
func (p *Planner) startService(ctx context.Context) (micro.Service, error) {
	svc, err := micro.AddService(p.nc, micro.Config{
		Name: ServiceName, Version: p.cfg.Version,
		Description: "baton control: submit, status, pause, resume, stop, restart, cancel, reprioritize, agents",
	})
	if err != nil {
		return nil, fmt.Errorf("planner: service: %w", err)
	}
	add := func(verb string, h micro.HandlerFunc) error {
		return svc.AddEndpoint(verb, h, micro.WithEndpointSubject(p.subj.Control(verb)))
	}
	if err := add(events.VerbSubmit, func(r micro.Request) { p.serveSubmit(ctx, r) }); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("planner: service: %w", err)
	}
	for _, verb := range events.Verbs {
		if err := add(verb, func(r micro.Request) { p.serveControl(ctx, verb, r) }); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("planner: service: %w", err)
		}
	}
	return svc, nil
}

func respondErr(r micro.Request, err error) {
	var ce *events.ControlError
	if !errors.As(err, &ce) {
		ce = &events.ControlError{Code: 500, Message: err.Error()}
	}
	body, _ := json.Marshal(ce)
	_ = r.Error(strconv.Itoa(ce.Code), ce.Message, body)
}

func (p *Planner) serveControl(ctx context.Context, verb string, r micro.Request) {
	req, err := events.ParseControl(r.Data())
	if err != nil {
		respondErr(r, &events.ControlError{Code: 400, Message: err.Error()})
		return
	}
	// Reads need no workflow state of the loop's: they are answered here,
	// so a slow one never holds the loop up.
	switch verb {
	case events.VerbStatus, events.VerbAgents:
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		var v any
		if verb == events.VerbStatus {
			v, err = p.status(rctx, req)
		} else {
			v, err = p.agents(rctx)
		}
		if err != nil {
			respondErr(r, err)
			return
		}
		_ = r.RespondJSON(v)
		return
	}
	call := &ctlCall{verb: verb, req: req, done: make(chan ctlResult, 1)}
	timeout := time.After(30 * time.Second)
	select {
	case p.ctl <- call:
	case <-ctx.Done():
		respondErr(r, ctlErr(503, "planner is stopping"))
		return
	case <-timeout:
		respondErr(r, ctlErr(503, "planner is busy: try again"))
		return
	}
	select {
	case res := <-call.done:
		if res.err != nil {
			respondErr(r, res.err)
			return
		}
		_ = r.RespondJSON(res.v)
	case <-ctx.Done():
		respondErr(r, ctlErr(503, "planner is stopping"))
	case <-timeout:
		respondErr(r, ctlErr(504, "no answer in 30s"))
	}
}

// serveSubmit validates a job at once and answers a bad one with its error;
// a good one goes to JOBS and the answer is the planner's, once planned.
func (p *Planner) serveSubmit(ctx context.Context, r micro.Request) {
	if _, _, err := p.plan(ctx, r.Data()); err != nil {
		var ve *events.ValidationError
		if !errors.As(err, &ve) {
			ve = &events.ValidationError{Reason: err.Error()}
		}
		body, _ := json.Marshal(events.SubmitReply{Error: ve})
		_ = r.Error("400", ve.Error(), body)
		return
	}
	inbox := p.nc.NewRespInbox()
	sub, err := p.nc.SubscribeSync(inbox)
	if err != nil {
		respondErr(r, err)
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	msg := nats.NewMsg(p.subj.Submit())
	msg.Data = r.Data()
	msg.Header.Set(events.HeaderReplyTo, inbox)
	msg.Header.Set(events.HeaderContentType, events.ContentJSON)
	if _, err := p.js.PublishMsg(ctx, msg); err != nil {
		respondErr(r, fmt.Errorf("store job: %w", err))
		return
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	m, err := sub.NextMsgWithContext(wctx)
	if err != nil {
		respondErr(r, ctlErr(504, "job stored but not planned within 30s: %v", err))
		return
	}
	_ = r.Respond(m.Data, micro.WithHeaders(micro.Headers{events.HeaderContentType: {events.ContentJSON}}))
}

// onControl runs one control request on the loop.
func (p *Planner) onControl(ctx context.Context, c *ctlCall) {
	v, err := p.control(ctx, c.verb, c.req)
	if err == nil {
		err = p.flush(ctx)
	}
	c.done <- ctlResult{v: v, err: err}
}

func (p *Planner) control(ctx context.Context, verb string, req *events.ControlRequest) (any, error) {
	switch verb {
	case events.VerbPause, events.VerbResume:
		if req.Workflow == "" {
			if req.Type == "" {
				return nil, ctlErr(400, "%s what? name a workflow, or a lane by type (and priority)", verb)
			}
			return p.lanePause(ctx, verb == events.VerbPause, req)
		}
		f, err := p.flowFor(ctx, req.Workflow)
		if err != nil {
			return nil, err
		}
		if verb == events.VerbPause {
			return p.pause(ctx, f, events.WorkflowPaused, req.Now)
		}
		return p.resume(ctx, f, false)
	case events.VerbStop:
		f, err := p.flowFor(ctx, req.Workflow)
		if err != nil {
			return nil, err
		}
		return p.pause(ctx, f, events.WorkflowStopped, false)
	case events.VerbRestart:
		f, err := p.flowFor(ctx, req.Workflow)
		if err != nil {
			return nil, err
		}
		return p.resume(ctx, f, req.RetryFailed)
	case events.VerbCancel:
		return p.cancel(ctx, req)
	case events.VerbReprioritize:
		return p.reprioritize(ctx, req)
	}
	return nil, ctlErr(404, "unknown verb %q", verb)
}

// flowFor finds an unfinished workflow, or says why there is none.
func (p *Planner) flowFor(ctx context.Context, id string) (*flow, error) {
	if id == "" {
		return nil, ctlErr(400, "name a workflow")
	}
	if f := p.flows[id]; f != nil {
		return f, nil
	}
	rec, err := p.getRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, ctlErr(404, "unknown workflow %s", id)
	}
	return nil, ctlErr(409, "workflow %s has finished (%s)", id, rec.Status)
}

// gather sends cmd to every agent and collects the answers of those in the
// registry, for at most gatherWait.
func (p *Planner) gather(ctx context.Context, cmd events.AgentCommand) ([]events.AgentReply, error) {
	live, err := p.liveAgents(ctx)
	if err != nil {
		return nil, err
	}
	inbox := p.nc.NewRespInbox()
	sub, err := p.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	body, _ := json.Marshal(cmd)
	if err := p.nc.PublishRequest(p.subj.AgentControl(), inbox, body); err != nil {
		return nil, err
	}
	var out []events.AgentReply
	deadline := time.Now().Add(gatherWait)
	for answered := 0; answered < len(live); {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			if len(live) > 0 {
				p.log.Warn("agents did not all answer", "op", cmd.Op, "answered", answered, "registered", len(live))
			}
			break
		}
		var r events.AgentReply
		if json.Unmarshal(m.Data, &r) != nil || r.Agent == "" {
			continue
		}
		out = append(out, r)
		if live[r.Agent] {
			answered++
		}
	}
	return out, nil
}

// running maps "<wf>/<task>" to the agent running it, from replies.
func running(replies []events.AgentReply) map[string]string {
	out := map[string]string{}
	for _, r := range replies {
		for _, t := range r.Running {
			out[t] = r.Agent
		}
	}
	return out
}

// liveAgents lists the agents registered and not failed.
func (p *Planner) liveAgents(ctx context.Context) (map[string]bool, error) {
	infos, err := p.agentInfos(ctx)
	if err != nil {
		return nil, err
	}
	live := map[string]bool{}
	for _, a := range infos {
		if a.Status != events.AgentFailed {
			live[a.ID] = true
		}
	}
	return live, nil
}

func (p *Planner) agentInfos(ctx context.Context) ([]events.AgentInfo, error) {
	return monitor.Agents(ctx, p.js, p.cfg.Streams)
}

func (p *Planner) agents(ctx context.Context) (any, error) {
	infos, err := p.agentInfos(ctx)
	if err != nil {
		return nil, err
	}
	if infos == nil {
		infos = []events.AgentInfo{}
	}
	return infos, nil
}

// markFailedAgents marks agents whose heartbeat is older than two
// intervals as failed (their entry then expires after the bucket's TTL).
// JetStream redelivers their tasks once the ack wait runs out.
func (p *Planner) markFailedAgents(ctx context.Context) {
	lister, err := p.agentsKV.ListKeys(ctx)
	if err != nil {
		p.log.Warn("check agents", "err", err)
		return
	}
	// Age is judged by the server's time of the entry's last write, not by
	// the agent's clock; the update is conditional, so a heartbeat written
	// meanwhile wins.
	limit := 2 * p.cfg.Streams.AgentTTL / 3
	for k := range lister.Keys() {
		e, err := p.agentsKV.Get(ctx, k)
		if err != nil || time.Since(e.Created()) < limit {
			continue
		}
		var a events.AgentInfo
		if json.Unmarshal(e.Value(), &a) != nil || a.Status == events.AgentFailed {
			continue
		}
		a.Status = events.AgentFailed
		b, _ := json.Marshal(a)
		if _, err := p.agentsKV.Update(ctx, k, b, e.Revision()); err != nil {
			continue
		}
		p.log.Warn("agent failed: no heartbeat", "agent", a.ID, "last", e.Created(), "running", a.Tasks)
		p.event(events.Event{Workflow: "_", Kind: events.EventWarning, Agent: a.ID,
			Message: fmt.Sprintf("agent %s stopped heartbeating at %s; its %d tasks go to other agents after the ack wait", a.ID, e.Created().Format(time.RFC3339), len(a.Tasks))})
	}
}

// warnUnserved raises a warning event for each task type of a new
// workflow that no live agent serves.
func (p *Planner) warnUnserved(ctx context.Context, f *flow) {
	infos, err := p.agentInfos(ctx)
	if err != nil {
		return
	}
	served := monitor.ServedTypes(infos)
	need := map[string]bool{}
	for _, t := range f.plan.Tasks {
		need[t.Type] = true
		if t.Fallback != "" {
			need[t.Fallback] = true
		}
	}
	for _, t := range slices.Sorted(maps.Keys(need)) {
		if !served[t] {
			p.event(events.Event{Workflow: f.rec.ID, Kind: events.EventWarning,
				Message: fmt.Sprintf("no live agent serves type %q: its tasks wait on their lanes until one starts", t)})
		}
	}
}

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
		if f.st[i].state != dispatched || run[f.rec.ID+"/"+f.plan.Tasks[i].ID] != "" || only != nil && !only(i) {
			continue
		}
		f.st[i].state = ready
		f.inflight--
		heap.Push(&f.ready, i)
		held = append(held, f.plan.Tasks[i].ID)
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
			return nil, ctlErr(409, "workflow %s is already paused", f.rec.ID)
		}
	default:
		return nil, ctlErr(409, "workflow %s is already %s", f.rec.ID, f.rec.Status)
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
	replies, err := p.gather(ctx, events.AgentCommand{Op: events.AgentOpPause, Workflow: f.rec.ID, Now: now})
	if err != nil {
		return undo(err)
	}
	// The purge takes running tasks' messages too; resume queues again any
	// task that is neither finished nor running by then.
	if err := p.withdraw(ctx, p.subj.QueuedTasks(f.rec.ID, "*")); err != nil {
		return undo(err)
	}
	run := running(replies)
	f.hold(run, nil)
	cp := f.checkpoint(run)
	p.log.Info("workflow "+status, "workflow", f.rec.ID, "running", len(cp.Running), "pending", len(cp.Pending), "now", now)
	detail, _ := json.Marshal(cp)
	p.event(events.Event{Workflow: f.rec.ID, Kind: status, Detail: detail,
		Message: fmt.Sprintf("%d done, %d running, %d pending", len(cp.Done), len(cp.Running), len(cp.Pending))})
	return cp, nil
}

func (f *flow) checkpoint(run map[string]string) events.Checkpoint {
	cp := events.Checkpoint{Workflow: f.rec.ID, Status: f.rec.Status, Gen: f.rec.Gen, Done: []string{}, Running: []string{}, Pending: []string{}}
	for i, s := range f.st {
		id := f.plan.Tasks[i].ID
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
// tasks again.
func (p *Planner) resume(ctx context.Context, f *flow, retryFailed bool) (any, error) {
	if f.rec.Status != events.WorkflowPaused && f.rec.Status != events.WorkflowStopped && !retryFailed {
		return nil, ctlErr(409, "workflow %s is %s, not paused or stopped", f.rec.ID, f.rec.Status)
	}
	replies, err := p.gather(ctx, events.AgentCommand{Op: events.AgentOpResume, Workflow: f.rec.ID})
	if err != nil {
		return nil, err
	}
	run := running(replies)
	// A task that was running at the pause and did not finish (its agent
	// died, or it was handed back) has no message any more: queue it again.
	f.hold(run, nil)
	f.rec.Gen++
	if retryFailed {
		for i := range f.st {
			if s := &f.st[i]; s.state == done && s.status == events.StateFailed {
				if f.rec.Retry == nil {
					f.rec.Retry = map[string]int{}
				}
				f.rec.Retry[f.plan.Tasks[i].ID] = f.rec.Gen
				*s = taskState{state: ready}
				f.finals--
				heap.Push(&f.ready, i)
			}
		}
	}
	prev := f.rec.Status
	f.rec.Status = events.WorkflowRunning
	f.refresh()
	if err := p.putRecord(ctx, &f.rec); err != nil {
		f.rec.Status = prev
		f.rec.Gen--
		return nil, err
	}
	reply := events.ResumeReply{Workflow: f.rec.ID, Status: f.rec.Status, Gen: f.rec.Gen, Queued: []string{}, Running: []string{}}
	// Tasks still running keep running: they are dispatched, not queued.
	kept := f.ready.idx[:0]
	for _, i := range f.ready.idx {
		if id := f.plan.Tasks[i].ID; run[f.rec.ID+"/"+id] != "" {
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
			reply.Queued = append(reply.Queued, f.plan.Tasks[i].ID)
		}
	}
	p.log.Info("workflow resumed", "workflow", f.rec.ID, "gen", f.rec.Gen, "queued", len(reply.Queued), "running", len(reply.Running))
	p.event(events.Event{Workflow: f.rec.ID, Kind: events.EventResumed,
		Message: fmt.Sprintf("generation %d: %d queued, %d still running", f.rec.Gen, len(reply.Queued), len(reply.Running))})
	p.maybeFinish(f)
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

// cancel ends the tasks a request selects: running ones are stopped on
// their agents, queued ones withdrawn from their lanes, waiting ones never
// start. Their dependents are cancelled too, or released.
func (p *Planner) cancel(ctx context.Context, req *events.ControlRequest) (any, error) {
	if !req.All && len(req.Tasks) == 0 && req.Agent == "" && req.Type == "" && req.MinPriority == 0 && req.MaxPriority == 0 {
		return nil, ctlErr(400, "cancel what? give tasks, an agent, a type, a priority range (min_priority, max_priority), or all with a workflow")
	}
	if req.All && req.Workflow == "" {
		return nil, ctlErr(400, "all: name the workflow whose tasks to cancel")
	}
	if req.MinPriority != 0 && req.MaxPriority != 0 && req.MinPriority > req.MaxPriority {
		return nil, ctlErr(400, "min_priority %d is after max_priority %d", req.MinPriority, req.MaxPriority)
	}
	var flows []*flow
	if req.Workflow != "" {
		f, err := p.flowFor(ctx, req.Workflow)
		if err != nil {
			return nil, err
		}
		flows = []*flow{f}
	} else {
		for _, id := range slices.Sorted(maps.Keys(p.flows)) {
			flows = append(flows, p.flows[id])
		}
	}
	if req.Workflow != "" && len(req.Tasks) > 0 {
		for _, id := range req.Tasks {
			if _, ok := flows[0].plan.ByID[id]; !ok {
				return nil, ctlErr(404, "workflow %s has no task %s", req.Workflow, id)
			}
		}
	}
	replies, err := p.gather(ctx, events.AgentCommand{Op: events.AgentOpRunning, Workflow: req.Workflow})
	if err != nil {
		return nil, err
	}
	run := running(replies)
	if req.Agent != "" && !slices.ContainsFunc(replies, func(r events.AgentReply) bool { return r.Agent == req.Agent }) {
		return nil, ctlErr(404, "agent %s did not answer: is it running?", req.Agent)
	}
	lo, hi := req.MinPriority, req.MaxPriority
	if lo == 0 && hi != 0 {
		lo = events.Priorities[0]
	}
	if hi == 0 && lo != 0 {
		hi = events.Priorities[len(events.Priorities)-1]
	}
	reply := events.CancelReply{Status: events.StateCancelled, Cancelled: []string{}, Dependents: []string{}}
	name := func(f *flow, i int) string {
		if req.Workflow != "" {
			return f.plan.Tasks[i].ID
		}
		return f.rec.ID + "/" + f.plan.Tasks[i].ID
	}
	for _, f := range flows {
		var targets []int
		for i, s := range f.st {
			t := &f.plan.Tasks[i]
			typ := t.Type
			if s.round > 0 {
				typ = t.Fallback
			}
			if s.state == done {
				continue
			}
			key := f.rec.ID + "/" + t.ID
			if req.All || slices.Contains(req.Tasks, t.ID) || req.Type != "" && typ == req.Type ||
				lo != 0 && t.Priority >= lo && t.Priority <= hi || req.Agent != "" && run[key] == req.Agent {
				targets = append(targets, i)
			}
		}
		if len(targets) == 0 {
			continue
		}
		// Stop the running ones on their agents.
		var stop []string
		for _, i := range targets {
			if run[f.rec.ID+"/"+f.plan.Tasks[i].ID] != "" {
				stop = append(stop, f.plan.Tasks[i].ID)
			}
		}
		if len(stop) > 0 {
			if _, err := p.gather(ctx, events.AgentCommand{Op: events.AgentOpCancel, Workflow: f.rec.ID, Tasks: stop}); err != nil {
				return nil, err
			}
		}
		isTarget := map[int]bool{}
		for _, i := range targets {
			isTarget[i] = true
		}
		var deps []int
		if !req.ReleaseDependents {
			deps = f.dependentsOf(targets, isTarget)
		}
		var queued []string
		for _, i := range append(slices.Clone(targets), deps...) {
			if f.st[i].state == dispatched && run[f.rec.ID+"/"+f.plan.Tasks[i].ID] == "" {
				queued = append(queued, f.plan.Tasks[i].ID)
			}
		}
		why := "cancelled by request"
		for _, i := range targets {
			p.cancelTask(f, i, why)
			reply.Cancelled = append(reply.Cancelled, name(f, i))
		}
		for _, i := range deps {
			p.cancelTask(f, i, "cancelled: it depends on a cancelled task")
			reply.Dependents = append(reply.Dependents, name(f, i))
		}
		// The cancellations are stored before the queued tasks are withdrawn:
		// a restart in between finds them cancelled, not lost.
		if err := p.flush(ctx); err != nil {
			return nil, err
		}
		for _, id := range queued {
			if err := p.withdraw(ctx, p.subj.QueuedTasks(f.rec.ID, id)); err != nil {
				return nil, err
			}
		}
		if req.ReleaseDependents {
			for _, i := range targets {
				for _, d := range f.plan.Tasks[i].Dependents {
					if !isTarget[d] && f.st[d].state != done {
						reply.Released = append(reply.Released, name(f, d))
					}
				}
			}
		}
		p.dispatchReady(f)
		p.log.Info("tasks cancelled", "workflow", f.rec.ID, "cancelled", len(targets), "dependents", len(deps))
		p.event(events.Event{Workflow: f.rec.ID, Kind: events.EventCancelled,
			Message: fmt.Sprintf("%d tasks cancelled by request, %d dependents cancelled", len(targets), len(deps))})
		p.maybeFinish(f)
	}
	slices.Sort(reply.Cancelled)
	slices.Sort(reply.Dependents)
	reply.Released = slices.Compact(slices.Sorted(slices.Values(reply.Released)))
	return reply, nil
}

// dependentsOf returns every unfinished task downstream of targets that is
// not a target itself, in plan order.
func (f *flow) dependentsOf(targets []int, isTarget map[int]bool) []int {
	seen := map[int]bool{}
	stack := slices.Clone(targets)
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, d := range f.plan.Tasks[i].Dependents {
			if !seen[d] && !isTarget[d] && f.st[d].state != done {
				seen[d] = true
				stack = append(stack, d)
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// cancelTask records a task as cancelled (the planner's own final result)
// and releases its dependents, which get the input marked missing.
func (p *Planner) cancelTask(f *flow, i int, why string) {
	t := &f.plan.Tasks[i]
	if f.st[i].state == done {
		return
	}
	p.finishTask(f, i, events.StateCancelled, false)
	p.publishResult(&events.Result{
		Workflow: f.rec.ID, Task: t.ID, Step: t.Step, Index: t.Index, Type: t.Type,
		Status: events.StateCancelled, Final: true, ErrorKind: events.KindCancelled, Error: why, Gen: f.rec.Gen,
	}, "cancel")
	for _, d := range t.Dependents {
		f.waitFor[d]--
		if f.waitFor[d] == 0 && f.st[d].state == waiting {
			f.st[d].state = ready
			heap.Push(&f.ready, d)
		}
	}
}

// reprioritize moves a workflow's unfinished tasks (or one task) to another
// priority: queued ones are withdrawn and queued again on the new lane.
func (p *Planner) reprioritize(ctx context.Context, req *events.ControlRequest) (any, error) {
	f, err := p.flowFor(ctx, req.Workflow)
	if err != nil {
		return nil, err
	}
	if req.To == 0 {
		return nil, ctlErr(400, "reprioritize to what? give \"to\": %d (first) to %d", events.Priorities[0], events.Priorities[len(events.Priorities)-1])
	}
	only := func(int) bool { return true }
	key := "*"
	if req.Task != "" {
		ti, ok := f.plan.ByID[req.Task]
		if !ok {
			return nil, ctlErr(404, "workflow %s has no task %s", f.rec.ID, req.Task)
		}
		if f.st[ti].state == done {
			return nil, ctlErr(409, "task %s has finished (%s)", req.Task, f.st[ti].status)
		}
		only = func(i int) bool { return i == ti }
		key = req.Task
	}
	replies, err := p.gather(ctx, events.AgentCommand{Op: events.AgentOpRunning, Workflow: f.rec.ID})
	if err != nil {
		return nil, err
	}
	run := running(replies)
	// The new priorities and generation are recorded before anything is
	// withdrawn, so a restart in between queues the tasks again, anew.
	prevPrio, prevGen := maps.Clone(f.rec.Priorities), f.rec.Gen
	if f.rec.Priorities == nil {
		f.rec.Priorities = map[string]int{}
	}
	if key == "*" {
		clear(f.rec.Priorities)
	}
	f.rec.Priorities[key] = req.To
	f.rec.Gen++
	if err := p.putRecord(ctx, &f.rec); err != nil {
		f.rec.Priorities, f.rec.Gen = prevPrio, prevGen
		return nil, err
	}
	// Withdraw each queued task on its own: a purge of the whole workflow
	// would take the messages of running tasks too.
	queued := func(i int) bool {
		return only(i) && f.st[i].state == dispatched && run[f.rec.ID+"/"+f.plan.Tasks[i].ID] == ""
	}
	for i := range f.st {
		if queued(i) {
			if err := p.withdraw(ctx, p.subj.QueuedTasks(f.rec.ID, f.plan.Tasks[i].ID)); err != nil {
				return nil, err
			}
		}
	}
	reply := events.ReprioritizeReply{Workflow: f.rec.ID, Priority: req.To, Moved: f.hold(run, only), Updated: []string{}}
	if reply.Moved == nil {
		reply.Moved = []string{}
	}
	for i := range f.st {
		if f.st[i].state != done && only(i) && run[f.rec.ID+"/"+f.plan.Tasks[i].ID] == "" {
			f.plan.Tasks[i].Priority = req.To
			reply.Updated = append(reply.Updated, f.plan.Tasks[i].ID)
		}
	}
	heap.Init(&f.ready)
	p.dispatchReady(f)
	p.log.Info("workflow reprioritized", "workflow", f.rec.ID, "task", req.Task, "priority", req.To, "moved", len(reply.Moved))
	p.event(events.Event{Workflow: f.rec.ID, Kind: events.EventReprioritized, Task: req.Task,
		Message: fmt.Sprintf("priority %d: %d queued tasks moved, %d updated", req.To, len(reply.Moved), len(reply.Updated))})
	return reply, nil
}

// applyPriorities sets the overrides a workflow record keeps on a plan.
func applyPriorities(plan *Plan, over map[string]int) {
	if p, ok := over["*"]; ok {
		for i := range plan.Tasks {
			plan.Tasks[i].Priority = p
		}
	}
	for id, p := range over {
		if i, ok := plan.ByID[id]; ok {
			plan.Tasks[i].Priority = p
		}
	}
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
	for _, prio := range prios {
		if _, err := streams.EnsureLane(ctx, p.js, p.cfg.Streams, req.Type, prio); err != nil {
			return nil, err
		}
		name := streams.LaneConsumer(req.Type, prio)
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
		p.event(events.Event{Workflow: "_", Kind: kind, Message: fmt.Sprintf("lane %s.%d", req.Type, prio)})
	}
	lanes, err := monitor.Lanes(ctx, p.js, p.cfg.Streams)
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

// status is the monitor's snapshot of one workflow or of all.
func (p *Planner) status(ctx context.Context, req *events.ControlRequest) (any, error) {
	p.startMonitor()
	select {
	case <-p.mon.Ready():
	case <-ctx.Done():
		return nil, ctlErr(503, "the monitor is not ready (it reads the last minutes of results back when it starts): try again")
	}
	snap, err := p.mon.Snapshot(ctx, req.Workflow)
	if errors.Is(err, monitor.ErrUnknownWorkflow) {
		return nil, ctlErr(404, "unknown workflow %s", req.Workflow)
	}
	return snap, err
}
