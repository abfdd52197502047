package planner

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/baton-dev/baton/pkg/control"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// crashWait bounds how long the crash verb waits for the agent's answer.
const crashWait = 5 * time.Second

// serveCrash is the crash verb, a failure drill: it sends the named agent
// a crash drill on its own subject and relays the agent's answer. The
// agent stops as if killed; nothing of the planner's state changes (the
// agent's tasks come back through JetStream's redelivery, as for a real
// crash). It runs on the service's goroutine, not the loop: it touches no
// workflow.
func (p *Planner) serveCrash(ctx context.Context, body []byte) (any, error) {
	req, err := control.Request(body)
	if err != nil {
		return nil, err
	}
	if req.Agent == "" {
		return nil, control.Errorf(400, "crash which agent? give \"agent\": its id (baton agents lists them)")
	}
	drill, _ := json.Marshal(events.CrashDrill{Agent: req.Agent})
	ctx, cancel := context.WithTimeout(ctx, crashWait)
	defer cancel()
	m, err := p.nc.RequestWithContext(ctx, p.subj.AgentCrash(req.Agent), drill)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, control.Errorf(404, "agent %s is not running: no agent of that id answers", req.Agent)
	case err != nil:
		return nil, control.Errorf(504, "agent %s did not answer the crash drill: %v", req.Agent, err)
	}
	if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
		return nil, control.Errorf(502, "agent %s refused the crash drill: %s", req.Agent, events.Short(m.Header.Get(micro.ErrorHeader)))
	}
	var reply events.CrashReply
	if err := json.Unmarshal(m.Data, &reply); err != nil || reply.Agent != req.Agent || reply.Status != events.AgentCrashed {
		return nil, control.Errorf(502, "agent %s answered the crash drill with something else than a crash reply", req.Agent)
	}
	// Relayed as far as it reads as an agent's answer: at most
	// MaxListedTasks task names, each "<workflow>/<task>".
	tasks := []string{}
	for _, t := range reply.Tasks {
		wf, id, ok := strings.Cut(t, "/")
		if ok && events.ValidToken(wf) && events.ValidToken(id) && len(tasks) < events.MaxListedTasks {
			tasks = append(tasks, t)
		}
	}
	reply.Tasks, reply.Abandoned = tasks, max(reply.Abandoned, len(tasks))
	p.log.Warn("crash drill: agent stopped as if killed", "agent", req.Agent, "abandoned", reply.Abandoned)
	p.event(events.Event{Workflow: "_", Kind: events.EventCrashDrill, Agent: req.Agent,
		Message: "crash drill: the agent stopped as if killed, holding tasks that come back after their ack wait"})
	return reply, nil
}
