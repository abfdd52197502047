package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go"
)

// Asker sends a command to every agent at once (the agents' control
// endpoint has no queue group) and gathers the answers.
type Asker struct {
	reg  *Registry
	nc   *nats.Conn
	subj events.Subjects
	wait time.Duration
	log  *slog.Logger
}

// DefaultAskWait bounds how long Ask waits for the agents; an agent that
// does not answer in time is taken as running nothing.
const DefaultAskWait = time.Second

// NewAsker returns an asker that waits at most wait (0: DefaultAskWait).
func NewAsker(reg *Registry, nc *nats.Conn, subj events.Subjects, wait time.Duration, log *slog.Logger) *Asker {
	if wait <= 0 {
		wait = DefaultAskWait
	}
	return &Asker{reg: reg, nc: nc, subj: subj, wait: wait, log: log}
}

// Ask sends cmd and returns the answers that come within the wait; it
// returns early once every live registered agent has answered.
func (a *Asker) Ask(ctx context.Context, cmd events.AgentCommand) ([]events.AgentReply, error) {
	list, err := a.reg.List(ctx)
	if err != nil {
		return nil, err
	}
	live := Live(list)
	inbox := a.nc.NewRespInbox()
	sub, err := a.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("registry: ask: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	body, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("registry: ask: %w", err)
	}
	if err := a.nc.PublishRequest(a.subj.AgentControl(), inbox, body); err != nil {
		return nil, fmt.Errorf("registry: ask: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, a.wait)
	defer cancel()
	var out []events.AgentReply
	for answered := 0; answered < len(live); {
		m, err := sub.NextMsgWithContext(wctx)
		if err != nil {
			a.log.Warn("agents did not all answer", "op", cmd.Op, "answered", answered, "registered", len(live))
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

// Running maps "<workflow>/<task>" to the agent running it, from answers.
func Running(replies []events.AgentReply) map[string]string {
	out := map[string]string{}
	for _, r := range replies {
		for _, t := range r.Running {
			out[t] = r.Agent
		}
	}
	return out
}
