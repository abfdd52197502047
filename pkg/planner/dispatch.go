package planner

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/retry"
	"github.com/nats-io/nats.go"
)

// republishAttempts bounds how often flush publishes a message again whose
// acknowledgement failed before the planner gives up (and Run returns).
const republishAttempts = 20

// dispatchWindow bounds how many messages the planner publishes before it
// waits for their acknowledgements (flush): a large job goes out window by
// window, between which the loop takes results, jobs and control requests,
// and agents start on the first window while the rest is being sent.
const dispatchWindow = 2048

// maxInflight bounds a workflow's tasks queued or running at once (as
// max_parallel does, for every job): the rest wait in the planner, which
// queues one as each result comes. A million-task job then holds at most
// this many messages on TASKS and in the agents' lanes, so the server's
// memory does not grow with the job.
const maxInflight = 1 << 16

// dispatchReady queues ready tasks, most urgent first, up to the
// workflow's max_parallel. During the replay it only marks them. Once the
// window is full, the flow waits in the backlog for the next one.
func (p *Planner) dispatchReady(f *flow) {
	if f.rec.Status != events.WorkflowRunning {
		return // paused or stopped: ready tasks wait
	}
	for f.ready.Len() > 0 && f.inflight < maxInflight && (f.job.MaxParallel == 0 || f.inflight < f.job.MaxParallel) {
		if !p.replaying && p.sent >= dispatchWindow {
			if !f.backlogged {
				f.backlogged = true
				p.backlog = append(p.backlog, f)
			}
			return
		}
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

// task builds the wire task of task i for its current round, with the
// results of its dependencies.
func (f *flow) task(i int) events.Task {
	t, s := &f.plan.Tasks[i], &f.st[i]
	task := events.Task{
		Workflow: f.rec.ID, ID: t.ID(), Step: t.Step, Index: t.Index, Chunks: t.Chunks,
		Type: t.Type, Priority: t.Priority, Round: int(s.round), Input: t.Input(),
		MaxAttempts: t.MaxAttempts, Backoff: t.Backoff, MaxBackoff: t.MaxBackoff, Timeout: t.Timeout,
		Fallback: t.Fallback, Critical: t.Critical, Gen: f.rec.Gen,
		Key: t.Key(), Limit: t.Limit, Rate: t.Rate, Burst: t.Burst,
		Requires: t.Requires, CPUMilli: t.CPUMilli, Memory: t.Memory,
	}
	if s.round > 0 {
		task.Type, task.Fallback = t.Fallback, ""
	}
	for _, d := range f.plan.Deps(i) {
		if dr := f.depData[d]; dr != nil {
			task.Deps = append(task.Deps, *dr)
		} else {
			dt := &f.plan.Tasks[d]
			task.Deps = append(task.Deps, events.DepResult{Task: dt.ID(), Step: dt.Step, Status: f.st[d].status.String(), Error: "no result: the task was cancelled"})
		}
		if f.needed[d]--; f.needed[d] == 0 {
			delete(f.depData, d)
		}
	}
	return task
}

// publishTask queues task i on its lane. A task too large for the server
// fails at once, permanently, with a result that says why.
func (p *Planner) publishTask(f *flow, i int) {
	task := f.task(i)
	if f.rec.Leased {
		p.key.Sign(&task)
	}
	msg, err := p.subj.TaskMsg(&task)
	if err == nil && int64(len(msg.Data)) > p.nc.MaxPayload()-1024 {
		err = fmt.Errorf("task message is %d bytes, more than the server's limit of %d: its input or its dependencies' results are too large", len(msg.Data), p.nc.MaxPayload())
	}
	if err != nil {
		t := &f.plan.Tasks[i]
		p.publishResult(&events.Result{
			Workflow: f.rec.ID, Task: t.ID(), Step: t.Step, Index: t.Index, Type: task.Type, Round: task.Round,
			Status: events.StateFailed, Final: true, Error: err.Error(), ErrorKind: events.KindPermanent,
		}, "toolarge")
		return
	}
	p.publish(msg, p.cfg.Streams.TasksStream())
	p.wake[p.subj.WakeOn(task.Type, events.LaneToken(task.Priority, task.Requires))] = true
}

// publishCancel stores the cancellation of task i that the replay found
// decided but not yet on RESULTS.
func (p *Planner) publishCancel(f *flow, i int) {
	t := &f.plan.Tasks[i]
	p.publishResult(&events.Result{
		Workflow: f.rec.ID, Task: t.ID(), Step: t.Step, Index: t.Index, Type: t.Type,
		Status: events.StateCancelled, Final: true, ErrorKind: events.KindDependency, Error: f.rec.Error,
	}, "cancel")
}

// publishResult stores a result the planner decided itself; origin names
// why in its Nats-Msg-Id.
func (p *Planner) publishResult(r *events.Result, origin string) {
	p.key.SignResult(r)
	msg, err := p.subj.ResultMsg(r, origin)
	if err != nil {
		p.log.Error("encode result", "err", err)
		return
	}
	p.publish(msg, p.cfg.Streams.ResultsStream())
}

// publish stores msg, which stream stores, asynchronously; flush waits
// for it.
func (p *Planner) publish(msg *nats.Msg, stream string) {
	p.sent++
	p.out.add()
	p.confirms.Publish(msg, stream, func(stored bool, err error) { p.out.settle(msg, stored, err) })
}

// flush waits for every pending publish, storing again those that failed,
// then rings the wake bell of each lane that got work. It returns an error
// only when a message could not be stored after republishAttempts tries.
func (p *Planner) flush(ctx context.Context) error {
	if !p.out.wait(ctx) {
		return nil
	}
	if failed, first := p.out.takeFailed(); len(failed) > 0 {
		p.log.Warn("publish failed; publishing again", "messages", len(failed), "subject", failed[0].Subject, "err", first)
		p.unsent = append(p.unsent, failed...)
	}
	for len(p.unsent) > 0 {
		msg := p.unsent[0]
		msg.Reply = "" // the request below answers on an inbox of its own
		// A full stream (TASKS or RESULTS at its size bound) is waited
		// out for as long as it takes: agents taking tasks make room.
		// Any other failure is tried republishAttempts times.
		var err error
		failures := 0
		_ = retry.Do(ctx, p.log, "publish "+msg.Subject, 0, func() error {
			_, perr := p.js.PublishMsg(ctx, msg)
			if perr != nil && !streams.IsFull(perr) {
				if failures++; failures >= republishAttempts {
					err = perr
					return nil // give up: Run returns err
				}
			}
			return perr
		})
		if ctx.Err() != nil {
			return nil
		}
		p.unsent = p.unsent[1:]
		if err != nil {
			return fmt.Errorf("planner: publish %s: %w", msg.Subject, err)
		}
	}
	p.unsent = nil
	p.sent = 0
	for subject := range p.wake {
		_ = p.nc.Publish(subject, nil)
		delete(p.wake, subject)
	}
	return nil
}

// event publishes an event; events are for people and the dashboard, and
// one lost in an outage is not worth holding the loop for.
func (p *Planner) event(e events.Event) {
	if err := p.subj.PublishEvent(p.nc, e); err != nil {
		p.log.Warn("publish event", "kind", e.Kind, "err", err)
	}
}

// reply answers a job published with a Baton-Reply-To header, if that
// names an inbox; any other subject is refused with a security event.
func (p *Planner) reply(subject string, r events.SubmitReply) {
	if subject == "" {
		return
	}
	if !p.replyAllowed(subject) {
		shown := subject
		if len(shown) > 128 {
			shown = shown[:128] + "…"
		}
		p.log.Warn("reply refused: not an inbox", "workflow", r.Workflow, "reply_to", shown)
		p.event(events.Event{Workflow: r.Workflow, Kind: events.EventSecurity,
			Message: fmt.Sprintf("%s %q refused: replies go only to inbox subjects (%s)", events.HeaderReplyTo, shown, strings.Join(p.cfg.ReplyPrefixes, ", "))})
		return
	}
	b, _ := json.Marshal(r)
	if err := p.nc.Publish(subject, b); err != nil {
		p.log.Warn("reply", "subject", subject, "err", err)
	}
}

func (p *Planner) replyAllowed(subject string) bool {
	for _, prefix := range p.cfg.ReplyPrefixes {
		if strings.HasPrefix(subject, prefix) && len(subject) > len(prefix) && !strings.ContainsAny(subject, " \t\r\n") {
			return true
		}
	}
	return false
}

// dispatchBacklog sends the next window of the flows that filled the last.
func (p *Planner) dispatchBacklog() {
	backlog := p.backlog
	p.backlog = nil
	for _, f := range backlog {
		f.backlogged = false
		if p.flows[f.rec.ID] == f { // still open
			p.dispatchReady(f)
		}
	}
}

// outbox counts the planner's publishes that wait for their
// acknowledgements (their settle functions run on the acknowledgement
// subscription's goroutine) and keeps those not stored, for flush.
type outbox struct {
	mu      sync.Mutex
	waiting int
	failed  []*nats.Msg
	first   error         // why the first of failed was not stored
	settled chan struct{} // a signal when waiting drops to 0
}

func (o *outbox) add() {
	o.mu.Lock()
	o.waiting++
	o.mu.Unlock()
}

func (o *outbox) settle(msg *nats.Msg, stored bool, err error) {
	o.mu.Lock()
	if !stored {
		if len(o.failed) == 0 {
			o.first = err
		}
		o.failed = append(o.failed, msg)
	}
	o.waiting--
	done := o.waiting == 0
	o.mu.Unlock()
	if done {
		select {
		case o.settled <- struct{}{}:
		default:
		}
	}
}

// wait returns true once nothing waits, false if ctx ends first.
func (o *outbox) wait(ctx context.Context) bool {
	for {
		o.mu.Lock()
		n := o.waiting
		o.mu.Unlock()
		if n == 0 {
			return true
		}
		select {
		case <-o.settled:
		case <-ctx.Done():
			return false
		}
	}
}

// takeFailed returns the messages not stored and why the first was not.
func (o *outbox) takeFailed() ([]*nats.Msg, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	failed, first := o.failed, o.first
	o.failed, o.first = nil, nil
	return failed, first
}
