package events

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Task states. A task is pending until an agent starts it, running while a
// handler has it, and ends completed, failed or cancelled.
const (
	StatePending   = "pending"
	StateRunning   = "running"
	StateCompleted = "completed"
	StateFailed    = "failed"
	StateCancelled = "cancelled"
)

// Error kinds carried by a failed or cancelled Result.
const (
	KindError      = "error"      // the handler returned an error on every attempt
	KindPermanent  = "permanent"  // the handler said retrying cannot help
	KindTimeout    = "timeout"    // the task's timeout expired on every attempt
	KindPanic      = "panic"      // the handler panicked
	KindLost       = "lost"       // agents holding it died or stalled more often than it may be attempted
	KindDependency = "dependency" // a critical dependency failed, so it never ran
	KindUnknown    = "unknown"    // the task message could not be decoded
	KindCancelled  = "cancelled"  // cancelled by request (or its dependency was)
	KindDeadline   = "deadline"   // cancelled because the workflow's deadline passed
	KindForged     = "forged"     // refused unrun: its subject or lane did not match its body
	// KindTooLarge: the task's data was more than a result may hold; in an
	// output's errors, the output was more than a message may take, and
	// the error says what of it was left out.
	KindTooLarge = "too_large"
	// KindExpression marks an error of the output, not of a task: an
	// expression of the job's aggregate failed (or ran out of time).
	KindExpression = "expression"
)

// Task is one unit of work on a lane subject. It is msgpack on the wire; the
// tags are the contract and are never reused.
type Task struct {
	Workflow    string          `msgpack:"wf" json:"workflow"`
	ID          string          `msgpack:"id" json:"id"`
	Step        string          `msgpack:"step" json:"step"`
	Index       int             `msgpack:"idx" json:"index"` // chunk number within its step
	Chunks      int             `msgpack:"n" json:"chunks"`  // how many chunks the step has
	Type        string          `msgpack:"type" json:"type"` // the type this round runs as
	Priority    int             `msgpack:"prio" json:"priority"`
	Round       int             `msgpack:"round" json:"round"` // 0 the step's type, 1 its fallback
	Input       json.RawMessage `msgpack:"input" json:"input,omitempty"`
	Deps        []DepResult     `msgpack:"deps,omitempty" json:"deps,omitempty"`
	MaxAttempts int             `msgpack:"attempts" json:"max_attempts"`
	Backoff     time.Duration   `msgpack:"backoff" json:"backoff"`
	MaxBackoff  time.Duration   `msgpack:"max_backoff" json:"max_backoff"`
	Timeout     time.Duration   `msgpack:"timeout" json:"timeout"`
	Fallback    string          `msgpack:"fallback,omitempty" json:"fallback,omitempty"`
	Critical    bool            `msgpack:"critical,omitempty" json:"critical,omitempty"`
	// Gen is the workflow's generation when the task was queued: it grows
	// when a workflow is resumed, restarted or reprioritized, so a task
	// queued again is not taken for a duplicate of the withdrawn one.
	Gen int `msgpack:"gen,omitempty" json:"gen,omitempty"`
	// Lease is the task's token for this round and generation: its result
	// must carry it back, or the planner and the aggregator refuse it as
	// forged.
	Lease string `msgpack:"lease,omitempty" json:"lease,omitempty"`
	// Key, Limit, Rate and Burst are the step's synchronisation points,
	// the key expanded from this task's input: at most Limit tasks holding
	// Key run at once, and tasks start at most at Rate (per Key, or per
	// Type without one). See Task.CheckSync and package permit.
	Key   string `msgpack:"key,omitempty" json:"key,omitempty"`
	Limit int    `msgpack:"limit,omitempty" json:"limit,omitempty"`
	Rate  string `msgpack:"rate,omitempty" json:"rate,omitempty"`
	Burst int    `msgpack:"burst,omitempty" json:"burst,omitempty"`
	// Requires are the capabilities its agent must have; they pick the
	// lane (LaneToken).
	Requires []string `msgpack:"req,omitempty" json:"requires,omitempty"`
	// CPUMilli and Memory are what it needs of an agent's declared
	// capacity: thousandths of a core, bytes.
	CPUMilli int64 `msgpack:"cpu_m,omitempty" json:"cpu_milli,omitempty"`
	Memory   int64 `msgpack:"mem,omitempty" json:"memory,omitempty"`
}

// DepResult is the outcome of a dependency, handed to the task that waited for
// it. A failed dependency arrives with Status "failed" and no Data: the input
// is explicitly missing, never silently absent.
type DepResult struct {
	Task   string          `msgpack:"task" json:"task"`
	Step   string          `msgpack:"step" json:"step"`
	Status string          `msgpack:"status" json:"status"`
	Data   json.RawMessage `msgpack:"data,omitempty" json:"data,omitempty"`
	Error  string          `msgpack:"error,omitempty" json:"error,omitempty"`
}

// Result is the outcome of one round of a task. Final says whether it is the
// task's last word: a failed round that has a fallback to go is not final.
type Result struct {
	Workflow  string          `msgpack:"wf" json:"workflow"`
	Task      string          `msgpack:"task" json:"task"`
	Step      string          `msgpack:"step" json:"step"`
	Index     int             `msgpack:"idx" json:"index"`
	Type      string          `msgpack:"type" json:"type"`
	Round     int             `msgpack:"round" json:"round"`
	Status    string          `msgpack:"status" json:"status"`
	Final     bool            `msgpack:"final" json:"final"`
	Data      json.RawMessage `msgpack:"data,omitempty" json:"data,omitempty"`
	Error     string          `msgpack:"error,omitempty" json:"error,omitempty"`
	ErrorKind string          `msgpack:"kind,omitempty" json:"kind,omitempty"`
	Attempts  int             `msgpack:"attempts" json:"attempts"`
	Agent     string          `msgpack:"agent,omitempty" json:"agent,omitempty"`
	Started   int64           `msgpack:"started,omitempty" json:"started,omitempty"`   // unix nanoseconds
	Finished  int64           `msgpack:"finished,omitempty" json:"finished,omitempty"` // unix nanoseconds
	Gen       int             `msgpack:"gen,omitempty" json:"gen,omitempty"`           // the task's Gen
	Priority  int             `msgpack:"prio,omitempty" json:"priority,omitempty"`     // the lane it ran on
	Lease     string          `msgpack:"lease,omitempty" json:"lease,omitempty"`       // the task's Lease, echoed
	// Usage is the CPU the attempt used (see TaskUsage); nil when the
	// agent measured none.
	Usage *TaskUsage `msgpack:"usage,omitempty" json:"usage,omitempty"`
	// CapKey is the capability key of the lane it ran on (events.CapKey
	// of the task's Requires); empty on a plain lane.
	CapKey string `msgpack:"ckey,omitempty" json:"cap_key,omitempty"`
}

// Event is one line of a workflow's audit trail, JSON on baton.events.<wf>.<kind>.
type Event struct {
	Workflow string `json:"workflow"`
	Kind     string `json:"kind"`
	Task     string `json:"task,omitempty"`
	// Tasks, in a started event only, are further tasks of the workflow
	// that started on the same agent within the same short window as Task
	// (StartedTasks): an agent sends the starts it gathers in one message,
	// at most MaxStartedTasks tasks in all, Time the latest of them.
	Tasks   []string        `json:"tasks,omitempty"`
	Agent   string          `json:"agent,omitempty"`
	Time    time.Time       `json:"time"`
	Message string          `json:"message,omitempty"`
	Detail  json.RawMessage `json:"detail,omitempty"`
}

// MaxStartedTasks bounds the tasks one started event names, Task and Tasks
// together: about 17 KB of ids at most. An event naming more is not an
// agent's (StartedTasks).
const MaxStartedTasks = 256

// StartedTasks returns the tasks a started event names: Task, then Tasks.
// An event without Task, or naming more than MaxStartedTasks, names none:
// its reader leaves it out whole.
func (e *Event) StartedTasks() []string {
	if e.Task == "" || 1+len(e.Tasks) > MaxStartedTasks {
		return nil
	}
	return append([]string{e.Task}, e.Tasks...)
}

// Workflow statuses kept in the workflows bucket.
const (
	WorkflowRunning   = "running"
	WorkflowPaused    = "paused"  // no task starts until it is resumed
	WorkflowStopped   = "stopped" // pending tasks withdrawn until it is restarted
	WorkflowCompleted = "completed"
	WorkflowFailed    = "failed"
)

// PlanTask finds task among the workflow's planned tasks and returns its
// step and its index in the step; ok is false for a task the plan does not
// have. A record without Steps (written before they were recorded) trusts
// the task's own step and index: ok is true, step "" and index -1.
func (w *Workflow) PlanTask(task string) (step string, index int, ok bool) {
	if w.Steps == nil {
		return "", -1, true
	}
	if n, single := w.Steps[task]; single && n == 0 {
		return task, 0, true
	}
	cut := strings.LastIndexByte(task, '-')
	if cut <= 0 {
		return "", 0, false
	}
	k, err := strconv.Atoi(task[cut+1:])
	n, found := w.Steps[task[:cut]]
	if err != nil || !found || k < 0 || k >= n || task[cut+1:] != strconv.Itoa(k) {
		return "", 0, false
	}
	return task[:cut], k, true
}

// WorkflowOpen reports whether a workflow with this status is unfinished:
// running, paused, stopped or needs_attention.
func WorkflowOpen(status string) bool {
	return status == WorkflowRunning || status == WorkflowPaused || status == WorkflowStopped || status == WorkflowNeedsAttention
}

// Counts are task totals by state.
type Counts struct {
	Total     int `json:"total"`
	Pending   int `json:"pending"`
	Running   int `json:"running"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
	Cancelled int `json:"cancelled"`
}

// Workflow is the record the planner keeps in the workflows bucket under the
// workflow id (the job itself is kept under "<id>.spec"). It is JSON so that
// `nats kv get workflows <id>` is readable.
type Workflow struct {
	ID               string    `json:"id"`
	Name             string    `json:"name,omitempty"`
	Status           string    `json:"status"`
	Submitted        time.Time `json:"submitted"`
	Finished         time.Time `json:"finished,omitzero"`
	Counts           Counts    `json:"counts"`
	Critical         []string  `json:"critical,omitempty"` // ids of critical tasks
	Collect          []string  `json:"collect"`            // steps whose results make the output
	SuccessThreshold float64   `json:"success_threshold"`
	Aggregate        Aggregate `json:"aggregate"`
	// ResultsFrom is a RESULTS stream sequence no result of this workflow
	// precedes: replaying from it rebuilds the workflow's state.
	ResultsFrom uint64 `json:"results_from"`
	// Steps maps each step to its number of tasks: 0 for a step that is
	// one task with the step's id, else N tasks "<step>-0" … "<step>-<N-1>".
	// It is the plan, in a few bytes: PlanHas tells a task of the plan from
	// one a forger made up.
	Steps map[string]int `json:"steps,omitempty"`
	// Leased says the workflow's tasks carry lease tokens and its results
	// are accepted only with theirs. Workflows submitted before tokens
	// existed have none and finish as they were planned.
	Leased bool `json:"leased,omitempty"`
	// Deadline, if set, is when the planner cancels whatever of the
	// workflow is unfinished (the job's deadline after its submission).
	Deadline time.Time `json:"deadline,omitzero"`
	// Outcome is the finished workflow's verdict, the same as its final
	// output's status: success, partial or failed (Outcome). Status is
	// "failed" exactly when Outcome is.
	Outcome string `json:"outcome,omitempty"`
	// Error says why a workflow failed as a whole, if it did.
	Error string `json:"error,omitempty"`
	// Gen counts resumes, restarts and reprioritizations (see Task.Gen).
	Gen int `json:"gen,omitempty"`
	// Priorities overrides task priorities: task id, or "*" for every task
	// of the workflow, → priority.
	Priorities map[string]int `json:"priorities,omitempty"`
	// Retry maps a task to the generation from which it runs again: a
	// failed result of an older generation no longer counts.
	Retry map[string]int `json:"retry,omitempty"`
	// Needs lists the distinct demands (type, capabilities, resources)
	// of tasks that require capabilities or resources, at most one per step.
	Needs []Need `json:"needs,omitempty"`
	// Lanes the workflow's tasks use, "<type>.<priority>" (with
	// "-c<key>" for capability lanes).
	Lanes []string `json:"lanes,omitempty"`
	// CriticalPathTotal is the number of steps on the longest dependency
	// chain; CriticalPath how many of them are not finished yet.
	CriticalPathTotal int `json:"critical_path_total"`
	CriticalPath      int `json:"critical_path"`
	// Checkpoint is the last checkpoint a pause or stop took; its Stale
	// says whether a resume may still name it.
	Checkpoint *CheckpointRecord `json:"checkpoint,omitempty"`
	// Mode is the job's collection mode ("" for stream).
	Mode string `json:"collect_mode,omitempty"`
	// StopWhen and OnThresholdMissed are the job's, for the aggregator.
	StopWhen          *StopWhen        `json:"stop_when,omitempty"`
	OnThresholdMissed *ThresholdPolicy `json:"on_threshold_missed,omitempty"`
	// Rounds counts the automatic retry rounds run after the threshold
	// was missed (at most OnThresholdMissed.RetryFailed).
	Rounds int `json:"retry_rounds,omitempty"`
	// Escalated is when the workflow last escalated (needs_attention).
	Escalated time.Time `json:"escalated,omitzero"`
	// Resolution is how a person last resolved its escalation.
	Resolution string `json:"resolution,omitempty"`
	// Ready is when a hybrid workflow became ready (ReadyHolds): its ready
	// output is due; zero until then and in other modes.
	Ready time.Time `json:"ready,omitzero"`
	// Reopened counts restarts with retry_failed of the workflow once
	// finished: each brings a new final output.
	Reopened int `json:"reopened,omitempty"`
}

// Output statuses.
const (
	OutcomeRunning = "running" // partial outputs only
	OutcomeSuccess = "success"
	OutcomePartial = "partial"
	OutcomeFailed  = "failed"
)

// Outcome decides a final status: failed if a critical task did not
// complete or the success rate is below the threshold; success when every
// task completed; partial otherwise.
func Outcome(c Counts, threshold float64, criticalFailed bool) (string, float64) {
	rate := 1.0
	if c.Total > 0 {
		rate = float64(c.Completed) / float64(c.Total)
	}
	switch {
	case criticalFailed:
		return OutcomeFailed, rate
	case c.Completed == c.Total:
		return OutcomeSuccess, rate
	case rate+1e-9 >= threshold:
		return OutcomePartial, rate
	default:
		return OutcomeFailed, rate
	}
}

// Output is what the aggregator publishes, JSON on baton.outputs.<wf>.partial
// and .final.
type Output struct {
	Workflow string          `json:"workflow"`
	Kind     string          `json:"kind"`   // partial | final
	Status   string          `json:"status"` // running | success | partial | failed
	Progress Progress        `json:"progress"`
	Data     json.RawMessage `json:"data"`
	// Results holds, in a partial output, the task results that arrived since
	// the previous partial output.
	Results  []TaskOutput `json:"results,omitempty"`
	Metadata *Metadata    `json:"metadata,omitempty"`
	Errors   []TaskError  `json:"errors"`
	// Missing names the tasks whose data is absent from Data (failed or
	// cancelled), so that no gap is silent.
	Missing []string `json:"missing,omitempty"`
}

// Progress counts finished tasks.
type Progress struct {
	Done    int     `json:"done"`
	Total   int     `json:"total"`
	Percent float64 `json:"percent"`
}

// TaskOutput is one task's result in a partial output: its id, status and,
// where the final output takes it, its data (none for a null; a reduce's
// partial outputs carry the reduction so far in their Data instead). It is kept small, as a job's
// partial outputs hold every task once: the step is not stored (the
// workflow's record gives it, Workflow.PlanTask; client.Follow fills it
// in) nor the agent and timing (the stored result has them: baton
// results).
type TaskOutput struct {
	Task   string          `json:"task"`
	Step   string          `json:"step,omitempty"`
	Status string          `json:"status"`
	Data   json.RawMessage `json:"data,omitempty"`
	// DataTooLarge says the task's data was left out: with the rest of
	// the partial output it was more than a message may take.
	DataTooLarge bool `json:"data_too_large,omitempty"`
}

// Metadata describes how a workflow ran.
type Metadata struct {
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`
	ElapsedMS   float64   `json:"elapsed_ms"`
	Agents      []string  `json:"agents"`
	AgentsUsed  int       `json:"agents_used"`
	SuccessRate float64   `json:"success_rate"`
	Threshold   float64   `json:"success_threshold"`
	Tasks       Counts    `json:"tasks"`
	// BusyMS is the sum of handler time over all tasks: the resources used.
	BusyMS   float64 `json:"busy_ms"`
	Attempts int     `json:"attempts"`
	// Recovered counts tasks that completed only after a redelivery (their
	// agent died or timed out), a retry or a fallback.
	Recovered int `json:"recovered"`
	// Recovery sums that up: "none" (nothing went wrong), "recovered"
	// (something did, and every task still completed) or "incomplete".
	Recovery string `json:"recovery"`
	// Interpolation is the job's interpolation method (aggregate.fallback
	// {"interpolate": …}), and Interpolated the tasks whose data in the
	// output is a stand-in it computed; they are also listed in Missing.
	Interpolation string   `json:"interpolation,omitempty"`
	Interpolated  []string `json:"interpolated,omitempty"`
	// Resources totals the measured usage of the tasks' counted results
	// (each task once).
	Resources ResourceTotals `json:"resources"`
}

// Recovery states.
const (
	RecoveryNone       = "none"
	RecoveryRecovered  = "recovered"
	RecoveryIncomplete = "incomplete"
)

// TaskError explains one task that did not complete.
type TaskError struct {
	Task             string `json:"task"`
	Step             string `json:"step"`
	Type             string `json:"type"`
	Status           string `json:"status"`
	Kind             string `json:"kind"`
	Message          string `json:"message"`
	Attempts         int    `json:"attempts"`
	Critical         bool   `json:"critical,omitempty"`
	Remediation      string `json:"remediation"`
	RetryRecommended bool   `json:"retry_recommended"`
}

// Submission replies, sent to the subject named by the Baton-Reply-To header
// of a submitted job.
type SubmitReply struct {
	Workflow string           `json:"workflow"`
	Tasks    int              `json:"tasks,omitempty"`
	Lanes    []string         `json:"lanes,omitempty"`
	Error    *ValidationError `json:"error,omitempty"`
	// Warnings say what the job needs that no live agent offers now (a
	// type, capabilities, resources): it is accepted, and its tasks wait.
	Warnings []string `json:"warnings,omitempty"`
	// Created is true when this job created the workflow: it has not been
	// reopened, so its first final output is the one (client.Run waits for
	// it without reading the record). A job whose id names an existing
	// workflow gets false.
	Created bool `json:"created,omitempty"`
}

// Agent statuses in the agents bucket.
const (
	AgentIdle     = "idle"
	AgentBusy     = "busy"
	AgentDraining = "draining"
	AgentFailed   = "failed"
)

// AgentInfo is an agent's entry in the agents bucket, JSON under its id. The
// bucket's TTL removes it when heartbeats stop.
type AgentInfo struct {
	ID           string    `json:"id"`
	Types        []string  `json:"types"`
	Capabilities []string  `json:"capabilities,omitempty"`
	Concurrency  int       `json:"concurrency"`
	Running      int       `json:"running"`
	Tasks        []string  `json:"tasks,omitempty"` // "<workflow>/<task>" now running
	Status       string    `json:"status"`
	Done         int64     `json:"done"`
	Failures     int64     `json:"failures"`
	Host         string    `json:"host"`
	PID          int       `json:"pid"`
	Version      string    `json:"version,omitempty"`
	Started      time.Time `json:"started"`
	Heartbeat    time.Time `json:"heartbeat"`
	// Routing lists the capabilities whose lanes the agent serves (at
	// most MaxCapabilities of Capabilities).
	Routing []string `json:"routing,omitempty"`
	// CPUMilli and Memory are the agent's declared capacity (0: none
	// declared); CPUMilliUsed and MemoryUsed what its running tasks hold
	// of it.
	CPUMilli     int64 `json:"cpu_milli,omitempty"`
	Memory       int64 `json:"memory,omitempty"`
	CPUMilliUsed int64 `json:"cpu_milli_used,omitempty"`
	MemoryUsed   int64 `json:"memory_used,omitempty"`
	// Process is the agent process's own use of the machine.
	Process *ProcessUsage `json:"process,omitempty"`
}
