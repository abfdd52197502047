package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// PauseOptions tune Pause.
type PauseOptions struct {
	// Now cancels the workflow's running tasks and hands them back, instead
	// of letting them finish.
	Now bool
}

// RestartOptions tune Restart.
type RestartOptions struct {
	// RetryFailed runs the workflow's failed tasks again.
	RetryFailed bool
	// Token, the token stop or pause replied, restarts only from that
	// checkpoint: if the workflow changed since, the restart is refused
	// (events.ErrConflict).
	Token string
}

// Lane names one lane, or with Priority 0 every lane of a task type.
type Lane struct {
	Type     string
	Priority int
}

// CancelSelector chooses the tasks Cancel ends; the selectors combine with
// "or". Without a Workflow it applies to every unfinished workflow (All
// needs a Workflow).
type CancelSelector struct {
	Workflow    string
	Tasks       []string // task ids (of Workflow)
	All         bool     // every unfinished task of Workflow
	Agent       string   // what this agent runs now
	Type        string   // tasks of this type
	MinPriority int      // a priority range; either end alone is open
	MaxPriority int
	// ReleaseDependents lets dependents run with the cancelled input marked
	// missing; by default they are cancelled too.
	ReleaseDependents bool
}

// Pause stops a workflow's tasks from starting and returns its checkpoint.
func (c *Client) Pause(ctx context.Context, workflow string, opts PauseOptions) (*events.Checkpoint, error) {
	var out events.Checkpoint
	return &out, c.call(ctx, events.VerbPause, &events.ControlRequest{Workflow: workflow, Now: opts.Now}, &out)
}

// Resume queues a paused workflow's tasks again.
func (c *Client) Resume(ctx context.Context, workflow string) (*events.ResumeReply, error) {
	var out events.ResumeReply
	return &out, c.call(ctx, events.VerbResume, &events.ControlRequest{Workflow: workflow}, &out)
}

// ResumeFrom resumes a paused or stopped workflow from the checkpoint
// whose token pause or stop replied. It is refused with events.ErrConflict
// if the token is stale (the workflow was resumed, cancelled in part,
// reprioritized or paused again since) and with events.ErrBadRequest if it
// is not a token of this workflow.
func (c *Client) ResumeFrom(ctx context.Context, workflow, token string) (*events.ResumeReply, error) {
	var out events.ResumeReply
	return &out, c.call(ctx, events.VerbResume, &events.ControlRequest{Workflow: workflow, Token: token}, &out)
}

// Checkpoint returns the last checkpoint a pause or stop took of a
// workflow, from its record: nil if it has none.
func (c *Client) Checkpoint(ctx context.Context, workflow string) (*events.CheckpointRecord, error) {
	rec, err := c.Workflow(ctx, workflow)
	if err != nil {
		return nil, err
	}
	return rec.Checkpoint, nil
}

// Stop withdraws a workflow's pending tasks, lets running ones finish and
// returns its checkpoint; Restart continues it.
func (c *Client) Stop(ctx context.Context, workflow string) (*events.Checkpoint, error) {
	var out events.Checkpoint
	return &out, c.call(ctx, events.VerbStop, &events.ControlRequest{Workflow: workflow}, &out)
}

// Restart continues a stopped or paused workflow from its checkpoint.
func (c *Client) Restart(ctx context.Context, workflow string, opts RestartOptions) (*events.ResumeReply, error) {
	var out events.ResumeReply
	return &out, c.call(ctx, events.VerbRestart, &events.ControlRequest{Workflow: workflow, RetryFailed: opts.RetryFailed, Token: opts.Token}, &out)
}

// PauseLane pauses lane consumers (JetStream consumer pause); until > 0
// lifts the pause by itself after that long.
func (c *Client) PauseLane(ctx context.Context, lane Lane, until time.Duration) (*events.LaneReply, error) {
	var out events.LaneReply
	req := &events.ControlRequest{Type: lane.Type, Priority: lane.Priority, Until: events.Duration(until)}
	return &out, c.call(ctx, events.VerbPause, req, &out)
}

// ResumeLane resumes lane consumers.
func (c *Client) ResumeLane(ctx context.Context, lane Lane) (*events.LaneReply, error) {
	var out events.LaneReply
	return &out, c.call(ctx, events.VerbResume, &events.ControlRequest{Type: lane.Type, Priority: lane.Priority}, &out)
}

// Cancel ends the tasks sel chooses and names them and their dependents.
func (c *Client) Cancel(ctx context.Context, sel CancelSelector) (*events.CancelReply, error) {
	var out events.CancelReply
	req := &events.ControlRequest{Workflow: sel.Workflow, Tasks: sel.Tasks, All: sel.All, Agent: sel.Agent, Type: sel.Type,
		MinPriority: sel.MinPriority, MaxPriority: sel.MaxPriority, ReleaseDependents: sel.ReleaseDependents}
	return &out, c.call(ctx, events.VerbCancel, req, &out)
}

// Reprioritize moves a workflow's unfinished tasks (or only task, if not
// empty) to priority to.
func (c *Client) Reprioritize(ctx context.Context, workflow, task string, to int) (*events.ReprioritizeReply, error) {
	var out events.ReprioritizeReply
	return &out, c.call(ctx, events.VerbReprioritize, &events.ControlRequest{Workflow: workflow, Task: task, To: to}, &out)
}

// CrashAgent is a failure drill: the agent stops at once as if killed —
// it acknowledges nothing, publishes no result, keeps its registry entry
// (which the reaper then marks failed) and drains nothing — so that its
// tasks come back to the other agents after their ack wait. An agent that
// does not answer is events.ErrNotFound.
func (c *Client) CrashAgent(ctx context.Context, agent string) (*events.CrashReply, error) {
	var out events.CrashReply
	return &out, c.call(ctx, events.VerbCrash, &events.ControlRequest{Agent: agent}, &out)
}

// Status returns the figures of one workflow, or of all with workflow ""
// (listing the first page of them, as StatusList with no options does).
func (c *Client) Status(ctx context.Context, workflow string) (*events.Snapshot, error) {
	var out events.Snapshot
	return &out, c.call(ctx, events.VerbStatus, &events.ControlRequest{Workflow: workflow}, &out)
}

// ListOptions choose which part of a long list a reply holds: Offset
// entries are skipped and at most Limit listed (0: the server's default,
// events.DefaultListLimit; at most events.MaxListLimit). Status keeps only
// the entries of one status: for StatusList "open", "finished" or a
// workflow status, for AgentList an agent status.
type ListOptions struct {
	Offset int
	Limit  int
	Status string
}

// StatusList returns the figures of every workflow, listing the part opts
// chooses; the snapshot's Page says what it left out.
func (c *Client) StatusList(ctx context.Context, opts ListOptions) (*events.Snapshot, error) {
	var out events.Snapshot
	req := &events.ControlRequest{Offset: opts.Offset, Limit: opts.Limit, Status: opts.Status}
	return &out, c.call(ctx, events.VerbStatus, req, &out)
}

// Agents lists the registered agents: the first page of them, as AgentList
// with no options does.
func (c *Client) Agents(ctx context.Context) ([]events.AgentInfo, error) {
	l, err := c.AgentList(ctx, ListOptions{})
	if err != nil {
		return nil, err
	}
	return l.Agents, nil
}

// AgentList is a page of the registered agents.
type AgentList struct {
	Agents []events.AgentInfo
	// Page says which agents Agents holds of those that match, and how
	// many it left out (Note stays empty).
	Page events.ListPage
}

// AgentList lists the part of the registered agents opts chooses, sorted by
// id.
func (c *Client) AgentList(ctx context.Context, opts ListOptions) (*AgentList, error) {
	out := &AgentList{Agents: []events.AgentInfo{}}
	req := &events.ControlRequest{Offset: opts.Offset, Limit: opts.Limit, Status: opts.Status}
	hdr, err := c.request(ctx, events.VerbAgents, req, &out.Agents)
	if err != nil {
		return nil, err
	}
	// A server from before pages had no headers: it listed every agent.
	total, omitted := len(out.Agents), 0
	if hdr.Get(events.HeaderTotal) != "" {
		total, _ = strconv.Atoi(hdr.Get(events.HeaderTotal))
		omitted, _ = strconv.Atoi(hdr.Get(events.HeaderOmitted))
	}
	out.Page = events.ListPage{Total: total, Offset: opts.Offset, Limit: opts.Limit, Omitted: omitted}
	if next := opts.Offset + len(out.Agents); next < total {
		out.Page.Next = next
	}
	return out, nil
}

// call sends one control request and decodes the reply into out. A request
// the service refused returns its *events.ControlError; no service,
// ErrNoPlanner.
func (c *Client) call(ctx context.Context, verb string, req *events.ControlRequest, out any) error {
	_, err := c.request(ctx, verb, req, out)
	return err
}

// request is call that also returns the reply's headers.
func (c *Client) request(ctx context.Context, verb string, req *events.ControlRequest, out any) (nats.Header, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	ctx, cancel := withDefault(ctx, 40*time.Second)
	defer cancel()
	m, err := c.nc.RequestWithContext(ctx, c.subj.Control(verb), body)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, fmt.Errorf("client: %s: %w", verb, ErrNoPlanner)
	}
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", verb, err)
	}
	if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
		ce := &events.ControlError{}
		if json.Unmarshal(m.Data, ce) != nil || ce.Message == "" {
			ce.Message = m.Header.Get(micro.ErrorHeader)
			ce.Code, _ = strconv.Atoi(code)
		}
		return nil, ce
	}
	if err := json.Unmarshal(m.Data, out); err != nil {
		return nil, fmt.Errorf("client: %s reply: %w", verb, err)
	}
	return m.Header, nil
}
