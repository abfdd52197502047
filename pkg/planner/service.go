package planner

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/control"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/registry"
	"github.com/nats-io/nats.go/micro"
)

// ServiceName is the planner's NATS service: `nats micro info baton`. The
// read-only verbs (status, agents) are the monitor's service.
const ServiceName = "baton"

// ctlWait bounds how long a control request waits for the loop.
const ctlWait = 30 * time.Second

// ctlCall is a control request handed to the loop, which owns all workflow
// state; the loop answers on done.
type ctlCall struct {
	verb string
	req  *events.ControlRequest
	done chan ctlResult
}

type ctlResult struct {
	v   any
	err error
}

// writeVerbs are the verbs that change workflows: the loop runs them.
var writeVerbs = []string{events.VerbPause, events.VerbResume, events.VerbStop, events.VerbRestart,
	events.VerbCancel, events.VerbReprioritize, events.VerbResolve}

// startService registers the control service. Its handlers run on the
// service's goroutines and pass each request to the loop through p.ctl.
func (p *Planner) startService(ctx context.Context) (micro.Service, error) {
	handlers := map[string]control.HandlerFunc{events.VerbSubmit: p.serveSubmit, events.VerbCrash: p.serveCrash}
	for _, verb := range writeVerbs {
		handlers[verb] = func(ctx context.Context, body []byte) (any, error) { return p.serveVerb(ctx, verb, body) }
	}
	return control.Start(ctx, p.nc, control.Service{
		Name: ServiceName, Version: p.cfg.Version, Subjects: p.subj, Handlers: handlers,
		Description: "baton control: submit, pause, resume, stop, restart, cancel, reprioritize, resolve, crash (a drill)",
	})
}

// serveVerb hands one request to the loop and waits for its answer.
func (p *Planner) serveVerb(ctx context.Context, verb string, body []byte) (any, error) {
	req, err := control.Request(body)
	if err != nil {
		return nil, err
	}
	call := &ctlCall{verb: verb, req: req, done: make(chan ctlResult, 1)}
	timeout := time.NewTimer(ctlWait)
	defer timeout.Stop()
	select {
	case p.ctl <- call:
	case <-ctx.Done():
		return nil, control.Errorf(503, "planner is stopping")
	case <-timeout.C:
		return nil, control.Errorf(503, "planner is busy: try again")
	}
	select {
	case res := <-call.done:
		return res.v, res.err
	case <-ctx.Done():
		return nil, control.Errorf(503, "planner is stopping")
	case <-timeout.C:
		return nil, control.Errorf(504, "no answer in %v", ctlWait)
	}
}

// serveSubmit validates a job at once and answers a bad one with its error;
// a good one goes to JOBS and the answer is the planner's, once planned.
func (p *Planner) serveSubmit(ctx context.Context, body []byte) (any, error) {
	if _, _, err := p.plan(ctx, body); err != nil {
		return nil, err
	}
	// Not cut short when this replica's term ends mid-request (its lead
	// lost with a NATS node): storing the job needs no lead, and whichever
	// planner leads next plans it and answers.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ctlWait)
	defer cancel()
	reply, err := client.SubmitAndWait(wctx, p.nc, p.js, p.subj, body)
	if err != nil {
		return nil, control.Errorf(504, "%v", err)
	}
	return json.RawMessage(reply), nil
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
				return nil, control.Errorf(400, "%s what? name a workflow, or a lane by type (and priority)", verb)
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
		return p.resume(ctx, f, false, req.Token, "resumed")
	case events.VerbStop:
		f, err := p.flowFor(ctx, req.Workflow)
		if err != nil {
			return nil, err
		}
		return p.pause(ctx, f, events.WorkflowStopped, false)
	case events.VerbRestart:
		return p.restart(ctx, req)
	case events.VerbCancel:
		return p.cancel(ctx, req)
	case events.VerbReprioritize:
		return p.reprioritize(ctx, req)
	case events.VerbResolve:
		return p.resolve(ctx, req)
	}
	return nil, control.Errorf(404, "unknown verb %q", verb)
}

// flowFor finds an unfinished workflow, or says why there is none.
func (p *Planner) flowFor(ctx context.Context, id string) (*flow, error) {
	if id == "" {
		return nil, control.Errorf(400, "name a workflow")
	}
	if f := p.flows[id]; f != nil {
		return f, nil
	}
	rec, err := p.getRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, control.Errorf(404, "unknown workflow %s", id)
	}
	return nil, control.Errorf(409, "workflow %s has finished (%s)", id, rec.Status)
}

// running asks every agent what it runs of workflow ("": of every one) and
// maps "<workflow>/<task>" to the agent running it.
func (p *Planner) running(ctx context.Context, cmd events.AgentCommand) (map[string]string, []events.AgentReply, error) {
	replies, err := p.asker.Ask(ctx, cmd)
	if err != nil {
		return nil, nil, fmt.Errorf("planner: %w", err)
	}
	return registry.Running(replies), replies, nil
}
