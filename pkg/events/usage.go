package events

import "math"

// TaskUsage is what one attempt of a task used, as its agent measured it.
//
// CPUMS is the CPU time of the goroutine that ran the handler: the agent
// locks it to its OS thread for the handler's duration and reads that
// thread's CPU clock (Linux, RUSAGE_THREAD) before and after, so other
// tasks running at the same time are not counted; goroutines the handler
// starts run on other threads and are not counted either. Elsewhere than
// Linux it is not measured (0). ExecCPUMS and ExecMaxRSS are the exact
// user+system CPU time and the peak resident size of the child processes
// a handler ran (the exec built-in reports its command's rusage).
type TaskUsage struct {
	CPUMS      float64 `msgpack:"cpu_ms" json:"cpu_ms"`
	ExecCPUMS  float64 `msgpack:"exec_cpu_ms,omitempty" json:"exec_cpu_ms,omitempty"`
	ExecMaxRSS int64   `msgpack:"exec_rss,omitempty" json:"exec_max_rss,omitempty"` // bytes
}

// ResourceTotals sums the usage of a workflow's tasks: each task once (its
// counted result), whatever its attempts or redeliveries.
type ResourceTotals struct {
	// Measured counts the tasks whose result carried a usage.
	Measured int `json:"measured"`
	// CPUMS is the handlers' CPU time, ExecCPUMS their child processes'.
	CPUMS     float64 `json:"cpu_ms"`
	ExecCPUMS float64 `json:"exec_cpu_ms"`
	// ExecMaxRSS is the largest peak resident size of one child, bytes.
	ExecMaxRSS int64 `json:"exec_max_rss"`
}

// maxUsageMS bounds one task's reported CPU: about 31 years. Anything
// beyond, negative or not a number counts as 0, so a bad agent cannot make
// the totals unprintable (JSON has no NaN) or overflow them.
const maxUsageMS = 1e12

func usageMS(v float64) float64 {
	if math.IsNaN(v) || v < 0 || v > maxUsageMS {
		return 0
	}
	return v
}

// Add counts u (nil: nothing) into t.
func (t *ResourceTotals) Add(u *TaskUsage) {
	if u == nil {
		return
	}
	t.Measured++
	t.CPUMS += usageMS(u.CPUMS)
	t.ExecCPUMS += usageMS(u.ExecCPUMS)
	if u.ExecMaxRSS > t.ExecMaxRSS && u.ExecMaxRSS < MaxMemory {
		t.ExecMaxRSS = u.ExecMaxRSS
	}
}

// Remove takes u (nil: nothing) out of t again: for a failed result that a
// later run of its task supersedes. ExecMaxRSS stays: that child did run.
func (t *ResourceTotals) Remove(u *TaskUsage) {
	if u == nil {
		return
	}
	t.Measured--
	t.CPUMS -= usageMS(u.CPUMS)
	t.ExecCPUMS -= usageMS(u.ExecCPUMS)
}

// Round rounds the sums to microseconds, for output.
func (t ResourceTotals) Round() ResourceTotals {
	t.CPUMS = math.Round(t.CPUMS*1000) / 1000
	t.ExecCPUMS = math.Round(t.ExecCPUMS*1000) / 1000
	return t
}

// ProcessUsage is an agent process's use of its machine, in its registry
// entry: CPU time since it started (user+system), CPU use over the last
// heartbeat interval (100 = one core busy) and its resident set size now
// and at its peak (bytes). Linux reads /proc/self/statm for RSS; elsewhere
// RSS is the peak.
type ProcessUsage struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUPercent float64 `json:"cpu_percent"`
	RSS        int64   `json:"rss"`
	MaxRSS     int64   `json:"max_rss"`
}
