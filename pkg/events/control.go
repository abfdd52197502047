package events

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// Control verbs: the endpoints of the planner's control service, each on
// "<prefix>.control.<verb>", JSON in and out.
const (
	VerbSubmit       = "submit"
	VerbStatus       = "status"
	VerbPause        = "pause"
	VerbResume       = "resume"
	VerbStop         = "stop"
	VerbRestart      = "restart"
	VerbCancel       = "cancel"
	VerbReprioritize = "reprioritize"
	VerbAgents       = "agents"
	VerbCrash        = "crash"
	VerbResolve      = "resolve"
)

// Verbs lists every control verb but submit, whose body is a job.
var Verbs = []string{VerbStatus, VerbPause, VerbResume, VerbStop, VerbRestart, VerbCancel, VerbReprioritize, VerbAgents, VerbCrash, VerbResolve}

// ControlRequest is the body of every control request but submit. Which
// fields a verb reads is documented in the README; unknown fields are
// rejected.
type ControlRequest struct {
	// Workflow the request is about. Cancel without it applies to every
	// running workflow; pause and resume without it act on lanes.
	Workflow string `json:"workflow,omitempty"`

	// Lane selection (pause, resume): a task type and a priority (0: all).
	Type     string `json:"type,omitempty"`
	Priority int    `json:"priority,omitempty"`
	// Until is how long a lane pause lasts before it lifts by itself; 0:
	// until resumed.
	Until Duration `json:"until,omitzero"`

	// Now (pause) cancels the workflow's running tasks and hands them back
	// instead of letting them finish.
	Now bool `json:"now,omitempty"`
	// RetryFailed (restart) runs the failed tasks again.
	RetryFailed bool `json:"retry_failed,omitempty"`
	// Token (resume, restart) is the resume token of the checkpoint to
	// continue from, as pause or stop replied: the request is refused if
	// the workflow changed since. Without one, the workflow continues from
	// where it stands.
	Token string `json:"token,omitempty"`

	// Cancel selectors: tasks by id, what an agent runs now, a priority
	// range, a task type, or all of the workflow's unfinished tasks. Several
	// combine with "or".
	All         bool     `json:"all,omitempty"`
	Tasks       []string `json:"tasks,omitempty"`
	Agent       string   `json:"agent,omitempty"`
	MinPriority int      `json:"min_priority,omitempty"`
	MaxPriority int      `json:"max_priority,omitempty"`
	// ReleaseDependents lets the dependents of cancelled tasks run with the
	// cancelled input marked missing; by default they are cancelled too.
	ReleaseDependents bool `json:"release_dependents,omitempty"`

	// Resolution (resolve) ends an escalated workflow's wait:
	// ResolveAccept, ResolveRetryFailed or ResolveFail.
	Resolution string `json:"resolution,omitempty"`

	// Reprioritize: one task (default: every queued or waiting task of the
	// workflow) to priority To.
	Task string `json:"task,omitempty"`
	To   int    `json:"to,omitempty"`

	// Status and agents list long lists a page at a time (see ListPage):
	// Offset entries are skipped and at most Limit listed (0: the default,
	// DefaultListLimit; more than MaxListLimit is lowered to it). Status
	// keeps only the entries of one status: for status, workflows that
	// are "open" (running, paused or stopped), "finished" (completed or
	// failed) or of one workflow status; for agents, agents of one agent
	// status.
	Offset int    `json:"offset,omitempty"`
	Limit  int    `json:"limit,omitempty"`
	Status string `json:"status,omitempty"`
}

// ParseControl decodes a control request strictly: malformed JSON and
// unknown fields are errors that say where. An empty body is an empty
// request.
func ParseControl(data []byte) (*ControlRequest, error) {
	var r ControlRequest
	if len(bytes.TrimSpace(data)) == 0 {
		return &r, nil
	}
	if err := strictJSON(data, &r); err != nil {
		ve := jsonError("", err)
		if ve.Field != "" {
			return nil, fmt.Errorf("%w: %s: %s", ErrBadRequest, ve.Field, ve.Reason)
		}
		return nil, fmt.Errorf("%w: %s", ErrBadRequest, ve.Reason)
	}
	for _, id := range append([]string{r.Workflow, r.Agent, r.Task}, r.Tasks...) {
		if id != "" && !ValidToken(id) {
			return nil, fmt.Errorf("%w: %q is not an id: use 1-64 letters, digits, '-' or '_'", ErrBadRequest, Short(id))
		}
	}
	if r.Type != "" && !ValidToken(r.Type) {
		return nil, fmt.Errorf("%w: type %q: use 1-64 letters, digits, '-' or '_'", ErrBadRequest, Short(r.Type))
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"priority", r.Priority}, {"min_priority", r.MinPriority}, {"max_priority", r.MaxPriority}, {"to", r.To}} {
		if p.v != 0 && (p.v < Priorities[0] || p.v > Priorities[len(Priorities)-1]) {
			return nil, fmt.Errorf("%w: %s %d: priorities are %d (first) to %d", ErrBadRequest, p.name, p.v, Priorities[0], Priorities[len(Priorities)-1])
		}
	}
	if r.Token != "" {
		if _, _, err := ParseCheckpointToken(r.Token); err != nil {
			return nil, err
		}
	}
	if r.Until < 0 {
		return nil, fmt.Errorf("%w: until must not be negative", ErrBadRequest)
	}
	if r.Offset < 0 || r.Limit < 0 {
		return nil, fmt.Errorf("%w: offset and limit must not be negative", ErrBadRequest)
	}
	if r.Resolution != "" && r.Resolution != ResolveAccept && r.Resolution != ResolveRetryFailed && r.Resolution != ResolveFail {
		return nil, fmt.Errorf("%w: resolution %q: want accept, retry_failed or fail", ErrBadRequest, Short(r.Resolution))
	}
	if r.Status != "" && !ValidToken(r.Status) {
		return nil, fmt.Errorf("%w: status %q is not a status", ErrBadRequest, Short(r.Status))
	}
	return &r, nil
}

// ErrBadRequest is wrapped by every control request that cannot be read.
var ErrBadRequest = errors.New("bad request")

// ControlError is the body of a control reply that failed, with the micro
// service error code: 400 bad request, 404 unknown workflow, 409 not
// possible in the workflow's state, 500 internal.
type ControlError struct {
	Code    int    `json:"code"`
	Message string `json:"error"`
}

func (e *ControlError) Error() string { return e.Message }

// Checkpoint is the reply to pause and stop: where the workflow stands, by
// task id. Resume and restart continue from it; with its Token they
// continue only if the workflow has not changed since.
type Checkpoint struct {
	Workflow string   `json:"workflow"`
	Status   string   `json:"status"`
	Gen      int      `json:"gen"`
	Done     []string `json:"done"`
	Running  []string `json:"running"`
	Pending  []string `json:"pending"`
	// Token is the resume token: "cp<seq>.<mac>", a MAC only the planner
	// can make, of the checkpoint stored in the workflow's record.
	Token string `json:"token,omitempty"`
	// Checkpoint is what the record keeps of it (counts, digest, agents).
	Checkpoint *CheckpointRecord `json:"checkpoint,omitempty"`
}

// CancelReply is the reply to cancel.
type CancelReply struct {
	Status     string   `json:"status"` // "cancelled"
	Cancelled  []string `json:"cancelled"`
	Dependents []string `json:"dependents"`
	// Released are dependents left to run without the cancelled input.
	Released []string `json:"released,omitempty"`
}

// ResumeReply is the reply to resume and restart.
type ResumeReply struct {
	Workflow string   `json:"workflow"`
	Status   string   `json:"status"`
	Gen      int      `json:"gen"`
	Queued   []string `json:"queued"`  // tasks put back on their lanes
	Running  []string `json:"running"` // tasks that kept running meanwhile
}

// ReprioritizeReply is the reply to reprioritize.
type ReprioritizeReply struct {
	Workflow string   `json:"workflow"`
	Priority int      `json:"priority"`
	Moved    []string `json:"moved"` // queued tasks moved to the new lane
	Updated  []string `json:"updated"`
}

// LaneState is one lane as status and lane pause/resume report it.
type LaneState struct {
	Lane     string `json:"lane"` // "<type>.<priority>", "<type>.<priority>-c<key>" for a capability lane
	Type     string `json:"type"`
	Priority int    `json:"priority"`
	// Requires are a capability lane's capabilities (as its consumer's
	// metadata says; at most MaxCapabilities are shown).
	Requires    []string   `json:"requires,omitempty"`
	Consumer    string     `json:"consumer"`
	Backlog     uint64     `json:"backlog"`
	InFlight    int        `json:"in_flight"`
	Redelivered int        `json:"redelivered"`
	Paused      bool       `json:"paused"`
	PausedUntil *time.Time `json:"paused_until,omitempty"`
}

// LaneReply is the reply to a lane pause or resume.
type LaneReply struct {
	Lanes []LaneState `json:"lanes"`
}

// AgentCommand is what the planner asks every agent at once, on
// "<prefix>.agents.control"; each live agent answers with an AgentReply.
type AgentCommand struct {
	Op       string `json:"op"` // AgentOpRunning, AgentOpPause, AgentOpResume or AgentOpCancel
	Workflow string `json:"workflow,omitempty"`
	// Tasks (cancel) are task ids of Workflow.
	Tasks []string `json:"tasks,omitempty"`
	// Now (pause) cancels the workflow's running tasks and hands them back.
	Now bool `json:"now,omitempty"`
	// Reason and Kind (cancel) go into the cancelled result the agent
	// stores; default "cancelled by request" and KindCancelled.
	Reason string `json:"reason,omitempty"`
	Kind   string `json:"kind,omitempty"`
}

// Agent command operations.
const (
	AgentOpRunning = "running" // report running tasks
	AgentOpPause   = "pause"   // start no task of Workflow (for a while), report running ones
	AgentOpResume  = "resume"  // lift AgentOpPause
	AgentOpCancel  = "cancel"  // stop Tasks of Workflow; report what was stopped
)

// AgentReply answers an AgentCommand.
type AgentReply struct {
	Agent string `json:"agent"`
	// Running lists "<workflow>/<task>" still running (of Workflow, if the
	// command named one) after the command took effect.
	Running []string `json:"running"`
	// Stopped lists the tasks the command stopped.
	Stopped []string `json:"stopped,omitempty"`
}

// Sentinels a *ControlError matches with errors.Is, by its code.
var (
	ErrNotFound    = errors.New("not found")                      // 404: no such workflow, task or agent
	ErrConflict    = errors.New("not possible in this state")     // 409: e.g. pausing a finished workflow
	ErrUnavailable = errors.New("service unavailable: try again") // 503, 504: stopping, busy or timed out
)

// Is lets errors.Is(err, ErrBadRequest | ErrNotFound | ErrConflict |
// ErrUnavailable) hold for a control error of the matching code.
func (e *ControlError) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.Code == 400
	case ErrNotFound:
		return e.Code == 404
	case ErrConflict:
		return e.Code == 409
	case ErrUnavailable:
		return e.Code == 503 || e.Code == 504
	}
	return false
}
