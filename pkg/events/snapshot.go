package events

import "time"

// Snapshot is what monitoring reports (`baton status --json`, the
// dashboard, /metrics): figures computed from JetStream's state — the
// workflows and agents buckets, the lane consumers, and the results and
// started events of the recent window — so any process computes the same
// and a restart loses nothing.
//
// A snapshot is bounded whatever the number and size of workflows, lanes
// and agents: its lists stop at a count (Page, LanesOmitted,
// AgentStats.Omitted say what they left out) and before the reply would
// outgrow the connection's max payload, while the sums and Totals always
// cover every workflow.
type Snapshot struct {
	Time time.Time `json:"time"`
	// Progress, Active and Completed sum up the scope asked about (one
	// workflow, or all unfinished ones, listed or not): percent of tasks
	// finished, tasks running, tasks completed. Open is how many
	// unfinished workflows the sums cover; finished workflows of the
	// window are listed in Workflows but not summed.
	Open      int     `json:"open"`
	Progress  float64 `json:"progress"`
	Active    int     `json:"active"`
	Completed int     `json:"completed"`

	Tasks  TaskStats  `json:"tasks"`
	Agents AgentStats `json:"agents"`
	// Workflows lists the open workflows, latest submission first, then
	// those finished within the window, latest first: the part of that
	// order that Page says.
	Workflows  []WorkflowView `json:"workflows"`
	Lanes      []LaneState    `json:"lanes"`
	Bottleneck *Bottleneck    `json:"bottleneck,omitempty"`

	// Totals counts every workflow by status, listed or not.
	Totals WorkflowTotals `json:"totals"`
	// Page says which of the workflows that match the request Workflows
	// holds, and how to ask for the others.
	Page ListPage `json:"page"`
	// LanesOmitted counts the lanes left out of Lanes (those with no
	// backlog, nothing in flight and no pause go last).
	LanesOmitted int `json:"lanes_omitted,omitempty"`
	// Truncated is true when a list of the snapshot left entries out:
	// workflows (Page.Omitted), lanes or agents.
	Truncated bool `json:"truncated,omitempty"`
}

// Bounds of the lists monitoring replies carry. Whatever the counts say, a
// reply also stops listing before it would outgrow the connection's max
// payload (1 MB by default), and says so.
const (
	// DefaultListLimit is how many workflows status lists, and how many
	// agents agents lists, unless a request asks for another limit.
	DefaultListLimit = 100
	// MaxListLimit is the largest limit a request may ask for; a larger
	// one is lowered to it.
	MaxListLimit = 1000
	// MaxStatusLanes and MaxStatusAgents bound the lanes and the agents a
	// status reply lists.
	MaxStatusLanes  = 200
	MaxStatusAgents = 100
	// MaxListedTasks bounds the task ids a workflow view lists as running
	// and an agent entry as its tasks (Active and Running count them all).
	MaxListedTasks = 20
	// MaxAgentText bounds each text of an agent entry a reply shows (host,
	// version, a capability), and MaxAgentNames how many types and
	// capabilities it lists.
	MaxAgentText  = 256
	MaxAgentNames = 64
)

// WorkflowTotals counts workflows by status: every workflow record, listed
// or not. FinishedRecently counts those of Completed and Failed that
// finished within the window, the ones status lists after the open ones.
type WorkflowTotals struct {
	Total            int `json:"total"`
	Running          int `json:"running"`
	Paused           int `json:"paused"`
	Stopped          int `json:"stopped"`
	NeedsAttention   int `json:"needs_attention"`
	Completed        int `json:"completed"`
	Failed           int `json:"failed"`
	FinishedRecently int `json:"finished_recently"`
}

// ListPage says which part of a long list a reply holds. Of Total entries
// (those that match the request's status filter, if any), the reply skips
// Offset and lists at most Limit; Omitted counts every matching entry it
// does not list. When entries after the listed ones remain, Next is the
// offset that asks for them. Note says in words what was left out, why
// (the limit, or the reply's size) and how to see it; it is empty when
// nothing was.
type ListPage struct {
	Total   int    `json:"total"`
	Offset  int    `json:"offset"`
	Limit   int    `json:"limit"`
	Omitted int    `json:"omitted"`
	Next    int    `json:"next,omitempty"`
	Note    string `json:"note,omitempty"`
}

// TaskStats are task figures over the unfinished workflows (counts) and over
// the window (timings, throughput, error rate).
type TaskStats struct {
	Counts
	// Window is the span timings and rates are computed over.
	WindowSeconds float64 `json:"window_seconds"`
	// Finished in the window, and how many of them failed.
	Finished   int     `json:"finished"`
	AvgSeconds float64 `json:"avg_seconds"`
	P50Seconds float64 `json:"p50_seconds"`
	P95Seconds float64 `json:"p95_seconds"`
	// Throughput is tasks finished per second over the last ThroughputSeconds.
	Throughput        float64 `json:"throughput"`
	ThroughputSeconds float64 `json:"throughput_seconds"`
	// ErrorRate is failed ÷ (completed + failed) over the window.
	ErrorRate float64 `json:"error_rate"`
}

// AgentStats sum up the registry.
type AgentStats struct {
	Active      int     `json:"active"` // registered and not failed
	Idle        int     `json:"idle"`
	Busy        int     `json:"busy"`
	Draining    int     `json:"draining"`
	Failed      int     `json:"failed"`
	Slots       int     `json:"slots"`
	BusySlots   int     `json:"busy_slots"`
	Utilization float64 `json:"utilization"`  // busy slots ÷ slots of active agents
	FailureRate float64 `json:"failure_rate"` // task failures ÷ tasks handled, over active agents
	// List holds at most MaxStatusAgents agents, sorted by id; Omitted
	// counts the others (`baton agents` lists them all, a page at a time).
	List    []AgentInfo `json:"list"`
	Omitted int         `json:"omitted,omitempty"`
}

// WorkflowView is one workflow as monitoring sees it.
type WorkflowView struct {
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	Status string `json:"status"`
	// Outcome is a finished workflow's verdict (success, partial, failed),
	// as in its final output; empty while it runs.
	Outcome string `json:"outcome,omitempty"`
	// Ready: a hybrid workflow whose ready output is due (its critical
	// tasks completed); the stragglers may still run.
	Ready     bool      `json:"ready,omitempty"`
	Counts    Counts    `json:"counts"`
	Progress  float64   `json:"progress"`
	Active    int       `json:"active"`
	Completed int       `json:"completed"`
	Submitted time.Time `json:"submitted"`
	// Rate is this workflow's tasks finished per second, lately.
	Rate float64 `json:"rate"`
	// ETASeconds is the remaining tasks ÷ Rate; nil while there is no rate
	// (ETA then says why).
	ETASeconds *float64 `json:"eta_seconds"`
	ETA        string   `json:"eta"`
	// Bottleneck is the slowest-draining lane among the workflow's lanes.
	Bottleneck   *Bottleneck        `json:"bottleneck,omitempty"`
	CriticalPath CriticalPathStatus `json:"critical_path"`
	// Running lists at most MaxListedTasks of the running tasks; Active
	// counts them all.
	Running []string `json:"running,omitempty"`
	// Warnings name what an open workflow needs that no live agent offers
	// now (capabilities, resources; at most MaxWarnings).
	Warnings []string `json:"warnings,omitempty"`
}

// Bottleneck names the lane whose backlog takes longest to drain.
type Bottleneck struct {
	Lane    string  `json:"lane"`
	Backlog uint64  `json:"backlog"`
	Rate    float64 `json:"rate"` // tasks of the lane finished per second, lately
	// Seconds is backlog ÷ rate; nil when the lane does not drain at all.
	Seconds *float64 `json:"seconds"`
	Why     string   `json:"why"`
}

// CriticalPathStatus says how much of the longest dependency chain is left
// and whether it will hold the workflow up.
type CriticalPathStatus struct {
	Total     int `json:"total"`     // steps on the longest chain
	Remaining int `json:"remaining"` // of them not finished
	// Seconds is Remaining × the median task time: the least time the
	// workflow still needs, however many agents there are.
	Seconds    *float64 `json:"seconds"`
	OnSchedule bool     `json:"on_schedule"`
	Why        string   `json:"why"`
}
