package agent

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/baton-dev/baton/pkg/control"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go/micro"
)

// pauseHold is how long an agent refuses to start tasks of a workflow being
// paused. The planner withdraws the workflow's queued tasks right after the
// agents answer, so the hold only covers tasks fetched in between; it lapses
// by itself so that an agent that misses the resume does not hold forever.
const pauseHold = 10 * time.Second

// startService registers the agent as an instance of the "baton-agent"
// NATS service (`nats micro ls` lists it) with two endpoints: control, which
// every agent receives (no queue group), and info, the agent's own.
func (a *Agent) startService() (micro.Service, error) {
	svc, err := micro.AddService(a.nc, micro.Config{
		Name:        "baton-agent",
		Version:     control.Semver(a.cfg.Version),
		Description: "baton agent serving " + strings.Join(a.Types(), ", "),
		Metadata: map[string]string{
			"id": a.cfg.ID, "types": strings.Join(a.Types(), ","),
			"capabilities": strings.Join(a.Info().Capabilities, ","), "concurrency": strconv.Itoa(a.cfg.Concurrency),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("agent: service: %w", err)
	}
	if err := svc.AddEndpoint("control", micro.HandlerFunc(a.onControl),
		micro.WithEndpointSubject(a.subj.AgentControl()), micro.WithEndpointQueueGroupDisabled()); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("agent: service: %w", err)
	}
	if err := svc.AddEndpoint("crash", micro.HandlerFunc(a.onCrash),
		micro.WithEndpointSubject(a.subj.AgentCrash(a.cfg.ID)), micro.WithEndpointQueueGroupDisabled()); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("agent: service: %w", err)
	}
	if err := svc.AddEndpoint("info", micro.HandlerFunc(func(r micro.Request) {
		_ = r.RespondJSON(a.Info())
	}), micro.WithEndpointSubject(a.subj.AgentInfo(a.cfg.ID)), micro.WithEndpointQueueGroupDisabled()); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("agent: service: %w", err)
	}
	return svc, nil
}

// onControl applies a planner's command and answers with what this agent
// runs afterwards.
func (a *Agent) onControl(r micro.Request) {
	var cmd events.AgentCommand
	if err := json.Unmarshal(r.Data(), &cmd); err != nil {
		_ = r.Error("400", "bad agent command: "+truncate(err.Error(), 200), nil)
		return
	}
	// A command that changes running work names the one workflow it is
	// about: a blanket cancel or pause would stop every workflow's tasks.
	switch cmd.Op {
	case events.AgentOpRunning:
	case events.AgentOpPause, events.AgentOpResume, events.AgentOpCancel:
		if !events.ValidToken(cmd.Workflow) {
			_ = r.Error("400", "agent command "+cmd.Op+": name the workflow", nil)
			return
		}
	default:
		_ = r.Error("400", "unknown agent command "+truncate(cmd.Op, 64), nil)
		return
	}
	reply := events.AgentReply{Agent: a.cfg.ID, Running: []string{}}
	a.mu.Lock()
	switch cmd.Op {
	case events.AgentOpPause:
		a.paused[cmd.Workflow] = time.Now().Add(pauseHold)
	case events.AgentOpResume:
		delete(a.paused, cmd.Workflow)
	}
	for wf, until := range a.paused {
		if time.Now().After(until) {
			delete(a.paused, wf)
		}
	}
	for j := range a.running {
		if cmd.Workflow != "" && j.wf != cmd.Workflow {
			continue
		}
		if j.cancelled || j.handback {
			// Stopped by an earlier command, its handler still returning: it
			// will leave no result, so it is not running for the planner.
			reply.Stopped = append(reply.Stopped, j.wf+"/"+j.id)
			continue
		}
		// A task that has not started (waiting for its permits, or
		// trying to take them) is handed back by a pause as --now would.
		stop := cmd.Op == events.AgentOpPause && (cmd.Now || !j.started) ||
			cmd.Op == events.AgentOpCancel && slices.Contains(cmd.Tasks, j.id)
		switch {
		case stop && cmd.Op == events.AgentOpCancel:
			j.cancelled = true
			j.why, j.kind = "cancelled by request", events.KindCancelled
			if cmd.Kind == events.KindDeadline || cmd.Kind == events.KindCancelled || cmd.Kind == events.KindStopWhen {
				j.kind = cmd.Kind
				if cmd.Reason != "" {
					j.why = truncate(cmd.Reason, 256)
				}
			}
		case stop:
			j.handback = true
		}
		if stop {
			j.cancel()
			reply.Stopped = append(reply.Stopped, j.wf+"/"+j.id)
			continue
		}
		reply.Running = append(reply.Running, j.wf+"/"+j.id)
	}
	a.mu.Unlock()
	slices.Sort(reply.Running)
	slices.Sort(reply.Stopped)
	// Whatever this agent published before (started events, gathered ones
	// too, and results) is on its way to the server before the planner
	// reads this answer.
	a.starts.flush()
	_ = a.nc.Flush()
	_ = r.RespondJSON(reply)
}

// truncate bounds a string echoed back to whoever sent it.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
