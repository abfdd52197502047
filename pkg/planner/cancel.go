package planner

import (
	"container/heap"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/baton-dev/baton/pkg/control"
	"github.com/baton-dev/baton/pkg/events"
)

// cancel ends the tasks a request selects: running ones are stopped on
// their agents, queued ones withdrawn from their lanes, waiting ones never
// start. Their dependents are cancelled too, or released.
func (p *Planner) cancel(ctx context.Context, req *events.ControlRequest) (any, error) {
	sel, err := newSelector(req)
	if err != nil {
		return nil, err
	}
	flows, err := p.cancelScope(ctx, req)
	if err != nil {
		return nil, err
	}
	run, replies, err := p.running(ctx, events.AgentCommand{Op: events.AgentOpRunning, Workflow: req.Workflow})
	if err != nil {
		return nil, err
	}
	if req.Agent != "" && !slices.ContainsFunc(replies, func(r events.AgentReply) bool { return r.Agent == req.Agent }) {
		return nil, control.Errorf(404, "agent %s did not answer: is it running?", req.Agent)
	}
	reply := events.CancelReply{Status: events.StateCancelled, Cancelled: []string{}, Dependents: []string{}}
	for _, f := range flows {
		if err := p.cancelIn(ctx, f, sel, run, &reply); err != nil {
			return nil, err
		}
	}
	slices.Sort(reply.Cancelled)
	slices.Sort(reply.Dependents)
	reply.Released = slices.Compact(slices.Sorted(slices.Values(reply.Released)))
	return reply, nil
}

// selector is a checked cancel request, its priority range made whole.
type selector struct {
	req    *events.ControlRequest
	lo, hi int // 0, 0: no priority range
	// why and kind go into the cancelled tasks' results; default
	// "cancelled by request" and KindCancelled.
	why, kind string
}

func newSelector(req *events.ControlRequest) (*selector, error) {
	if !req.All && len(req.Tasks) == 0 && req.Agent == "" && req.Type == "" && req.MinPriority == 0 && req.MaxPriority == 0 {
		return nil, control.Errorf(400, "cancel what? give tasks, an agent, a type, a priority range (min_priority, max_priority), or all with a workflow")
	}
	if req.All && req.Workflow == "" {
		return nil, control.Errorf(400, "all: name the workflow whose tasks to cancel")
	}
	if req.MinPriority != 0 && req.MaxPriority != 0 && req.MinPriority > req.MaxPriority {
		return nil, control.Errorf(400, "min_priority %d is after max_priority %d", req.MinPriority, req.MaxPriority)
	}
	s := &selector{req: req, lo: req.MinPriority, hi: req.MaxPriority}
	if s.lo == 0 && s.hi != 0 {
		s.lo = events.Priorities[0]
	}
	if s.hi == 0 && s.lo != 0 {
		s.hi = events.Priorities[len(events.Priorities)-1]
	}
	return s, nil
}

// picks reports whether the selector takes task i of f, given what runs
// where.
func (s *selector) picks(f *flow, i int, run map[string]string) bool {
	t, st, req := &f.plan.Tasks[i], &f.st[i], s.req
	if st.state == done {
		return false
	}
	typ := t.Type
	if st.round > 0 {
		typ = t.Fallback
	}
	return req.All || slices.Contains(req.Tasks, t.ID()) || req.Type != "" && typ == req.Type ||
		s.lo != 0 && t.Priority >= s.lo && t.Priority <= s.hi || req.Agent != "" && run[f.rec.ID+"/"+t.ID()] == req.Agent
}

// name is how the reply names task i of f: its id when the request named
// the workflow, else "<workflow>/<task>".
func (s *selector) name(f *flow, i int) string {
	if s.req.Workflow != "" {
		return f.plan.Tasks[i].ID()
	}
	return f.rec.ID + "/" + f.plan.Tasks[i].ID()
}

// cancelScope is the workflows a cancel looks at: the one it names (whose
// named tasks must exist), or every unfinished one.
func (p *Planner) cancelScope(ctx context.Context, req *events.ControlRequest) ([]*flow, error) {
	if req.Workflow == "" {
		var flows []*flow
		for _, id := range slices.Sorted(maps.Keys(p.flows)) {
			flows = append(flows, p.flows[id])
		}
		return flows, nil
	}
	f, err := p.flowFor(ctx, req.Workflow)
	if err != nil {
		return nil, err
	}
	for _, id := range req.Tasks {
		if _, ok := f.plan.Index(id); !ok {
			return nil, control.Errorf(404, "workflow %s has no task %s", req.Workflow, id)
		}
	}
	return []*flow{f}, nil
}

// cancelIn cancels what sel picks in one workflow and adds it to reply.
func (p *Planner) cancelIn(ctx context.Context, f *flow, sel *selector, run map[string]string, reply *events.CancelReply) error {
	var targets []int
	isTarget := map[int]bool{}
	for i := range f.st {
		if sel.picks(f, i, run) {
			targets = append(targets, i)
			isTarget[i] = true
		}
	}
	if len(targets) == 0 {
		return nil
	}
	// Stored first: a restart half way through must not leave a token that
	// resumes a workflow the cancel changed.
	if f.staleCheckpoint(fmt.Sprintf("cancelled in part (%d tasks)", len(targets))) {
		if err := p.putRecord(ctx, &f.rec); err != nil {
			return err
		}
	}
	isRunning := func(i int) bool { return run[f.rec.ID+"/"+f.plan.Tasks[i].ID()] != "" }
	// Stop the running ones on their agents.
	var stop []string
	for _, i := range targets {
		if isRunning(i) {
			stop = append(stop, f.plan.Tasks[i].ID())
		}
	}
	why, kind := sel.why, sel.kind
	if why == "" {
		why, kind = "cancelled by request", events.KindCancelled
	}
	if len(stop) > 0 {
		if _, _, err := p.running(ctx, events.AgentCommand{Op: events.AgentOpCancel, Workflow: f.rec.ID, Tasks: stop, Reason: why, Kind: kind}); err != nil {
			return err
		}
	}
	var deps []int
	if !sel.req.ReleaseDependents {
		deps = f.dependentsOf(targets, isTarget)
	}
	var queued []string
	for _, i := range append(slices.Clone(targets), deps...) {
		if f.st[i].state == dispatched && !isRunning(i) {
			queued = append(queued, f.plan.Tasks[i].ID())
		}
	}
	for _, i := range targets {
		p.cancelTask(f, i, why, kind)
		reply.Cancelled = append(reply.Cancelled, sel.name(f, i))
	}
	for _, i := range deps {
		p.cancelTask(f, i, "cancelled: it depends on a cancelled task", events.KindCancelled)
		reply.Dependents = append(reply.Dependents, sel.name(f, i))
	}
	// The cancellations are stored before the queued tasks are withdrawn:
	// a restart in between finds them cancelled, not lost.
	if err := p.flush(ctx); err != nil {
		return err
	}
	for _, id := range queued {
		if err := p.withdraw(ctx, p.subj.QueuedTasks(f.rec.ID, id)); err != nil {
			return err
		}
	}
	if len(queued) > 0 {
		// An agent may have fetched one of them between the question and
		// the withdrawal: stop it there too (agents ignore unknown tasks).
		if _, _, err := p.running(ctx, events.AgentCommand{Op: events.AgentOpCancel, Workflow: f.rec.ID, Tasks: queued, Reason: why, Kind: kind}); err != nil {
			return err
		}
	}
	if sel.req.ReleaseDependents {
		for _, i := range targets {
			for _, d := range f.plan.Dependents(i) {
				if !isTarget[d] && f.st[d].state != done {
					reply.Released = append(reply.Released, sel.name(f, d))
				}
			}
		}
	}
	p.dispatchReady(f)
	p.log.Info("tasks cancelled", "workflow", f.rec.ID, "cancelled", len(targets), "dependents", len(deps), "why", why)
	p.event(events.Event{Workflow: f.rec.ID, Kind: events.EventCancelled,
		Message: fmt.Sprintf("%d tasks %s, %d dependents cancelled", len(targets), why, len(deps))})
	p.maybeFinish(ctx, f)
	return nil
}

// dependentsOf returns every unfinished task downstream of targets that is
// not a target itself, in plan order.
func (f *flow) dependentsOf(targets []int, isTarget map[int]bool) []int {
	seen := map[int]bool{}
	stack := slices.Clone(targets)
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, d := range f.plan.Dependents(i) {
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
func (p *Planner) cancelTask(f *flow, i int, why, kind string) {
	t := &f.plan.Tasks[i]
	if f.st[i].state == done {
		return
	}
	p.finishTask(f, i, events.StateCancelled, false)
	p.publishResult(&events.Result{
		Workflow: f.rec.ID, Task: t.ID(), Step: t.Step, Index: t.Index, Type: t.Type,
		Status: events.StateCancelled, Final: true, ErrorKind: kind, Error: why, Gen: f.rec.Gen,
	}, "cancel")
	f.release(i)
}

// reprioritize moves a workflow's unfinished tasks (or one task) to another
// priority: queued ones are withdrawn and queued again on the new lane.
func (p *Planner) reprioritize(ctx context.Context, req *events.ControlRequest) (any, error) {
	f, err := p.flowFor(ctx, req.Workflow)
	if err != nil {
		return nil, err
	}
	if req.To == 0 {
		return nil, control.Errorf(400, "reprioritize to what? give \"to\": %d (first) to %d", events.Priorities[0], events.Priorities[len(events.Priorities)-1])
	}
	only := func(int) bool { return true }
	key := "*"
	if req.Task != "" {
		ti, ok := f.plan.Index(req.Task)
		if !ok {
			return nil, control.Errorf(404, "workflow %s has no task %s", f.rec.ID, req.Task)
		}
		if f.st[ti].state == done {
			return nil, control.Errorf(409, "task %s has finished (%s)", req.Task, f.st[ti].status.String())
		}
		only = func(i int) bool { return i == ti }
		key = req.Task
	}
	run, _, err := p.running(ctx, events.AgentCommand{Op: events.AgentOpRunning, Workflow: f.rec.ID})
	if err != nil {
		return nil, err
	}
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
	f.staleCheckpoint(fmt.Sprintf("reprioritized to %d", req.To))
	if err := p.putRecord(ctx, &f.rec); err != nil {
		f.rec.Priorities, f.rec.Gen = prevPrio, prevGen
		return nil, err
	}
	// Withdraw each queued task on its own: a purge of the whole workflow
	// would take the messages of running tasks too.
	queued := func(i int) bool {
		return only(i) && f.st[i].state == dispatched && run[f.rec.ID+"/"+f.plan.Tasks[i].ID()] == ""
	}
	for i := range f.st {
		if queued(i) {
			if err := p.withdraw(ctx, p.subj.QueuedTasks(f.rec.ID, f.plan.Tasks[i].ID())); err != nil {
				return nil, err
			}
		}
	}
	reply := events.ReprioritizeReply{Workflow: f.rec.ID, Priority: req.To, Moved: f.hold(run, only), Updated: []string{}}
	if reply.Moved == nil {
		reply.Moved = []string{}
	}
	for i := range f.st {
		if f.st[i].state != done && only(i) && run[f.rec.ID+"/"+f.plan.Tasks[i].ID()] == "" {
			f.plan.Tasks[i].Priority = req.To
			reply.Updated = append(reply.Updated, f.plan.Tasks[i].ID())
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
		if i, ok := plan.Index(id); ok {
			plan.Tasks[i].Priority = p
		}
	}
}

// expireDue cancels what is unfinished of every workflow whose deadline
// has passed. An error (agents or JetStream not answering) leaves the
// workflow for the next tick.
func (p *Planner) expireDue(ctx context.Context, now time.Time) {
	var due []*flow
	for _, f := range p.flows {
		if !f.rec.Deadline.IsZero() && now.After(f.rec.Deadline) {
			due = append(due, f)
		}
	}
	for _, f := range due {
		why := fmt.Sprintf("cancelled: the workflow's deadline passed (%v after its submission)", f.rec.Deadline.Sub(f.rec.Submitted))
		run, _, err := p.running(ctx, events.AgentCommand{Op: events.AgentOpRunning, Workflow: f.rec.ID})
		if err == nil {
			if f.rec.Error == "" {
				f.rec.Error = "deadline passed"
			}
			sel := &selector{req: &events.ControlRequest{Workflow: f.rec.ID, All: true}, why: why, kind: events.KindDeadline}
			err = p.cancelIn(ctx, f, sel, run, &events.CancelReply{})
		}
		if err != nil {
			p.log.Warn("deadline: cancel failed; trying again", "workflow", f.rec.ID, "err", err)
		}
	}
}
