package events

import (
	"fmt"
	"strconv"
)

// DefaultPrefix is the first token of every baton subject.
const DefaultPrefix = "baton"

// Priority levels. A lower number is more urgent: agents drain level 1 before
// they look at level 2. Each level of each task type is its own subject and its
// own consumer (a "lane"), because JetStream has no per-message priority.
const (
	PriorityHighest = 1
	PriorityDefault = 3
	PriorityLowest  = 5
)

// Priorities lists every level, most urgent first.
var Priorities = []int{1, 2, 3, 4, 5}

// ValidToken reports whether s can be used as a task type, step id, task id
// or workflow id: 1 to 64 of A-Z, a-z, 0-9, '_' and '-', one subject token,
// safe in stream, consumer and KV key names alike.
func ValidToken(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Subjects builds every subject baton uses under one prefix. The zero value
// uses DefaultPrefix.
type Subjects struct {
	Prefix string
}

// Root is the prefix every baton subject starts with.
func (s Subjects) Root() string { return s.p() }

func (s Subjects) p() string {
	if s.Prefix == "" {
		return DefaultPrefix
	}
	return s.Prefix
}

// Submit is where jobs are published: "baton.jobs.submit".
func (s Subjects) Submit() string { return s.p() + ".jobs.submit" }

// Jobs is the JOBS stream's subject filter.
func (s Subjects) Jobs() string { return s.p() + ".jobs.>" }

// Task is the subject of one task on the lane of its type and priority:
// "baton.tasks.research.1.<wf>.<task>". The workflow and task tokens let a
// queued task, or all of a workflow's, be withdrawn by subject.
func (s Subjects) Task(taskType string, priority int, workflow, task string) string {
	return s.TaskOn(taskType, strconv.Itoa(priority), workflow, task)
}

// TaskOn is the subject of one task on the lane whose priority token is
// laneTok (LaneToken: "1", or "1-c<key>" for a capability lane).
func (s Subjects) TaskOn(taskType, laneTok, workflow, task string) string {
	return s.p() + ".tasks." + taskType + "." + laneTok + "." + workflow + "." + task
}

// TaskOf is the subject of t: on the lane of its type, priority and the
// capabilities it requires.
func (s Subjects) TaskOf(t *Task) string {
	return s.TaskOn(t.Type, LaneToken(t.Priority, t.Requires), t.Workflow, t.ID)
}

// Lane is the subject filter of one lane: "baton.tasks.research.1.>".
func (s Subjects) Lane(taskType string, priority int) string {
	return s.LaneOn(taskType, strconv.Itoa(priority))
}

// LaneOn is the subject filter of the lane whose priority token is laneTok.
func (s Subjects) LaneOn(taskType, laneTok string) string {
	return s.p() + ".tasks." + taskType + "." + laneTok + ".>"
}

// QueuedTasks filters the queued tasks of a workflow ("*" for every
// workflow) and of one task ("*" for all of them), on every lane.
func (s Subjects) QueuedTasks(workflow, task string) string {
	return s.p() + ".tasks.*.*." + workflow + "." + task
}

// Tasks is the TASKS stream's subject filter.
func (s Subjects) Tasks() string { return s.p() + ".tasks.>" }

// Result is where the outcome of one task is published: "baton.results.<wf>.<task>".
func (s Subjects) Result(workflow, task string) string {
	return s.p() + ".results." + workflow + "." + task
}

// Results is the RESULTS stream's subject filter; with a workflow id it is
// the filter of that workflow's results.
func (s Subjects) Results(workflow ...string) string {
	if len(workflow) > 0 {
		return s.p() + ".results." + workflow[0] + ".>"
	}
	return s.p() + ".results.>"
}

// Output is where the aggregator publishes: kind is OutputPartial or OutputFinal.
func (s Subjects) Output(workflow, kind string) string {
	return s.p() + ".outputs." + workflow + "." + kind
}

// Outputs is the OUTPUTS stream's subject filter.
func (s Subjects) Outputs() string { return s.p() + ".outputs.>" }

// Event is the subject of one workflow event: "baton.events.<wf>.<kind>".
func (s Subjects) Event(workflow, kind string) string {
	return s.p() + ".events." + workflow + "." + kind
}

// Events is the EVENTS stream's subject filter.
func (s Subjects) Events() string { return s.p() + ".events.>" }

// Live is the subject of a per-task event that no stream stores (core
// NATS): "baton.live.<wf>.started". It is for live views; what they show
// after a restart comes from stored state (the agents' registry entries
// list the tasks they run).
func (s Subjects) Live(workflow, kind string) string {
	return s.p() + ".live." + workflow + "." + kind
}

// Lives is the filter for every live event.
func (s Subjects) Lives() string { return s.p() + ".live.>" }

// Control is the subject of a control verb of the planner's service:
// "baton.control.pause".
func (s Subjects) Control(verb string) string { return s.p() + ".control." + verb }

// AgentControl is where the planner asks every agent at once (no queue
// group): what they run, pause or resume a workflow, cancel tasks.
func (s Subjects) AgentControl() string { return s.p() + ".agents.control" }

// AgentInfo is where one agent answers with its registry entry.
func (s Subjects) AgentInfo(agent string) string { return s.p() + ".agents." + agent + ".info" }

// AgentCrash is where one agent takes a crash drill (CrashDrill): only
// the planner and the admin role may publish on it.
func (s Subjects) AgentCrash(agent string) string { return s.p() + ".agents." + agent + ".crash" }

// Dead is where a task that failed for good is kept for inspection.
func (s Subjects) Dead(workflow, task string) string {
	return s.p() + ".dead." + workflow + "." + task
}

// DeadLetters is the DEAD stream's subject filter.
func (s Subjects) DeadLetters() string { return s.p() + ".dead.>" }

// Wake is a core NATS subject (no stream) the planner publishes on after it
// queued tasks on a lane, so that agents look at that lane at once instead
// of at their next poll.
func (s Subjects) Wake(taskType string, priority int) string {
	return s.WakeOn(taskType, strconv.Itoa(priority))
}

// WakeOn is the wake-up subject of the lane whose priority token is laneTok.
func (s Subjects) WakeOn(taskType, laneTok string) string {
	return s.p() + ".wake." + taskType + "." + laneTok
}

// WakeAll is the filter an agent subscribes to for every lane of a type.
func (s Subjects) WakeAll(taskType string) string { return s.p() + ".wake." + taskType + ".*" }

// Output kinds.
const (
	OutputPartial = "partial"
	OutputFinal   = "final"
)

// Event kinds.
const (
	EventCreated   = "created"   // a job was accepted and planned
	EventRejected  = "rejected"  // a job failed validation; Detail holds the error
	EventStarted   = "started"   // an agent started a task (on Live, not stored)
	EventRetry     = "retry"     // a task failed and will be retried
	EventFallback  = "fallback"  // a task's retries ran out; its fallback type takes over
	EventFailed    = "failed"    // a task failed for good
	EventCompleted = "completed" // the workflow finished (any outcome)
	EventWarning   = "warning"   // something an operator should see

	EventPaused        = "paused"        // a workflow was paused; Detail holds the checkpoint
	EventStopped       = "stopped"       // a workflow was stopped; Detail holds the checkpoint
	EventResumed       = "resumed"       // a paused or stopped workflow was resumed or restarted
	EventCancelled     = "cancelled"     // tasks were cancelled by request
	EventReprioritized = "reprioritized" // a workflow's tasks moved to another priority
	EventLanePaused    = "lane_paused"   // a lane consumer was paused (workflow "_")
	EventLaneResumed   = "lane_resumed"  // a lane consumer was resumed (workflow "_")
	EventSecurity      = "security"      // a message was refused as forged or abusive
	EventCrashDrill    = "crash_drill"   // an agent was crashed on purpose (workflow "_")
)

// MsgID builds a Nats-Msg-Id from parts, so every writer spells ids alike.
func MsgID(parts ...any) string {
	b := make([]byte, 0, 64)
	for i, p := range parts {
		if i > 0 {
			b = append(b, '.')
		}
		switch v := p.(type) { // one per task and result: no fmt for the usual parts
		case string:
			b = append(b, v...)
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		case uint64:
			b = strconv.AppendUint(b, v, 10)
		default:
			b = fmt.Append(b, v)
		}
	}
	return string(b)
}
