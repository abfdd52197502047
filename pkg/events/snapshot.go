package events

import "time"

// Snapshot is what monitoring reports (`baton status --json`, the
// dashboard, /metrics): figures computed from JetStream's state — the
// workflows and agents buckets, the lane consumers, and the results and
// started events of the recent window — so any process computes the same
// and a restart loses nothing.
type Snapshot struct {
	Time time.Time `json:"time"`
	// Progress, Active and Completed sum up the scope asked about (one
	// workflow, or all unfinished ones): percent of tasks finished, tasks
	// running, tasks completed. Open is how many unfinished workflows the
	// sums cover; finished workflows of the window are listed in Workflows
	// but not summed.
	Open      int     `json:"open"`
	Progress  float64 `json:"progress"`
	Active    int     `json:"active"`
	Completed int     `json:"completed"`

	Tasks      TaskStats      `json:"tasks"`
	Agents     AgentStats     `json:"agents"`
	Workflows  []WorkflowView `json:"workflows"`
	Lanes      []LaneState    `json:"lanes"`
	Bottleneck *Bottleneck    `json:"bottleneck,omitempty"`
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
	Active      int         `json:"active"` // registered and not failed
	Idle        int         `json:"idle"`
	Busy        int         `json:"busy"`
	Draining    int         `json:"draining"`
	Failed      int         `json:"failed"`
	Slots       int         `json:"slots"`
	BusySlots   int         `json:"busy_slots"`
	Utilization float64     `json:"utilization"`  // busy slots ÷ slots of active agents
	FailureRate float64     `json:"failure_rate"` // task failures ÷ tasks handled, over active agents
	List        []AgentInfo `json:"list"`
}

// WorkflowView is one workflow as monitoring sees it.
type WorkflowView struct {
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	Status string `json:"status"`
	// Outcome is a finished workflow's verdict (success, partial, failed),
	// as in its final output; empty while it runs.
	Outcome   string    `json:"outcome,omitempty"`
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
	Running      []string           `json:"running,omitempty"`
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
