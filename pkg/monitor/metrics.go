package monitor

import (
	"context"
	"net/http"
	"time"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics exposes a Monitor's figures to Prometheus under the baton_
// prefix: gauges read from a snapshot at each scrape, plus a counter and a
// histogram of the task results the monitor reads. Labels carry ids,
// types, lanes and statuses, never a workflow's name or data; the
// per-workflow series cover the workflows a status lists by default, so
// their number stays bounded.
type Metrics struct {
	m        *Monitor
	reg      *prometheus.Registry
	finished *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the collectors; call it before m.Run so that the
// histogram sees the results of the window too.
func NewMetrics(m *Monitor) *Metrics {
	x := &Metrics{
		m:   m,
		reg: prometheus.NewRegistry(),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "baton_tasks_finished_total", Help: "Tasks finished (final results read), by type and status.",
		}, []string{"type", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "baton_task_duration_seconds", Help: "Handler execution time of finished tasks.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
		}, []string{"type"}),
	}
	m.OnResult(func(r *events.Result) {
		x.finished.WithLabelValues(r.Type, r.Status).Inc()
		if r.Started > 0 && r.Finished > r.Started {
			x.duration.WithLabelValues(r.Type).Observe(time.Duration(r.Finished - r.Started).Seconds())
		}
	})
	x.reg.MustRegister(x.finished, x.duration, snapshotCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return x
}

// Handler serves the metrics in the Prometheus text format.
func (x *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(x.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// snapshotCollector turns a fresh snapshot into gauges at each scrape.
type snapshotCollector struct{ m *Monitor }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	dTasks        = desc("baton_tasks", "Tasks of the unfinished workflows, by state.", "state")
	dThroughput   = desc("baton_throughput_tasks_per_second", "Tasks finished per second over the rate window.")
	dErrorRatio   = desc("baton_task_error_ratio", "Failed ÷ (completed + failed) over the window.")
	dQuantile     = desc("baton_task_duration_window_seconds", "Task execution time over the window: average and quantiles.", "stat")
	dAgents       = desc("baton_agents", "Registered agents, by status.", "status")
	dSlots        = desc("baton_agent_slots", "Task slots of the active agents.")
	dBusySlots    = desc("baton_agent_busy_slots", "Slots running a task now.")
	dUtilization  = desc("baton_agent_utilization_ratio", "Busy slots ÷ slots.")
	dAgentFailure = desc("baton_agent_failure_ratio", "Task failures ÷ tasks handled by the active agents.")
	dWorkflows    = desc("baton_workflows", "Every workflow, by status.", "status")
	dWfProgress   = desc("baton_workflow_progress_ratio", "Finished tasks ÷ tasks.", "workflow", "status")
	dWfTasks      = desc("baton_workflow_tasks", "A workflow's tasks, by state.", "workflow", "state")
	dWfETA        = desc("baton_workflow_eta_seconds", "Estimated time to completion, once a rate exists.", "workflow")
	dWfCritical   = desc("baton_workflow_critical_path_remaining_steps", "Unfinished steps on the longest dependency chain.", "workflow")
	dWfOnSched    = desc("baton_workflow_critical_path_on_schedule", "1 when the critical path fits within the ETA.", "workflow")
	dLaneBacklog  = desc("baton_lane_backlog", "Tasks queued on a lane, not yet delivered.", "lane")
	dLaneFlight   = desc("baton_lane_in_flight", "Tasks delivered and not acknowledged.", "lane")
	dLaneRedeliv  = desc("baton_lane_redelivered", "Tasks delivered more than once and not yet acknowledged.", "lane")
	dLanePaused   = desc("baton_lane_paused", "1 when the lane consumer is paused.", "lane")
	dLaneUntil    = desc("baton_lane_paused_until_timestamp_seconds", "When a lane pause ends.", "lane")
	dBottleneck   = desc("baton_bottleneck", "1 on the lane whose backlog takes longest to drain.", "lane")
	dScrapeErrors = desc("baton_monitor_up", "1 when the snapshot could be computed.")

	// Per agent, for the agents a status lists (at most MaxStatusAgents).
	dAgentRunning = desc("baton_agent_running_tasks", "Tasks an agent runs now.", "agent")
	dAgentSlotUse = desc("baton_agent_slot_utilization_ratio", "An agent's running tasks ÷ its slots.", "agent")
	dAgentCPU     = desc("baton_agent_process_cpu_percent", "An agent process's CPU use over its last heartbeat interval (100 = one core).", "agent")
	dAgentCPUSecs = desc("baton_agent_process_cpu_seconds", "An agent process's CPU time since it started (user + system).", "agent")
	dAgentRSS     = desc("baton_agent_process_resident_bytes", "An agent process's resident set size.", "agent")
	dAgentCapCPU  = desc("baton_agent_cpu_capacity_cores", "An agent's declared CPU capacity (only agents that declare one).", "agent")
	dAgentUsedCPU = desc("baton_agent_cpu_reserved_cores", "CPUs its running tasks hold of an agent's declared capacity.", "agent")
	dAgentCapMem  = desc("baton_agent_memory_capacity_bytes", "An agent's declared memory capacity (only agents that declare one).", "agent")
	dAgentUsedMem = desc("baton_agent_memory_reserved_bytes", "Memory its running tasks hold of an agent's declared capacity.", "agent")
)

func (snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dTasks, dThroughput, dErrorRatio, dQuantile, dAgents, dSlots, dBusySlots,
		dUtilization, dAgentFailure, dWorkflows, dWfProgress, dWfTasks, dWfETA, dWfCritical, dWfOnSched, dLaneBacklog, dLaneFlight,
		dLaneRedeliv, dLanePaused, dLaneUntil, dBottleneck, dScrapeErrors,
		dAgentRunning, dAgentSlotUse, dAgentCPU, dAgentCPUSecs, dAgentRSS, dAgentCapCPU, dAgentUsedCPU, dAgentCapMem, dAgentUsedMem} {
		ch <- d
	}
}

func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := c.m.Snapshot(ctx, Query{})
	if err != nil {
		ch <- prometheus.MustNewConstMetric(dScrapeErrors, prometheus.GaugeValue, 0)
		return
	}
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	g(dScrapeErrors, 1)
	t := s.Tasks
	for state, n := range map[string]int{"pending": t.Pending, "running": t.Running, "completed": t.Completed, "failed": t.Failed, "cancelled": t.Cancelled} {
		g(dTasks, float64(n), state)
	}
	g(dThroughput, t.Throughput)
	g(dErrorRatio, t.ErrorRate)
	g(dQuantile, t.AvgSeconds, "avg")
	g(dQuantile, t.P50Seconds, "p50")
	g(dQuantile, t.P95Seconds, "p95")
	a := s.Agents
	for status, n := range map[string]int{"idle": a.Idle, "busy": a.Busy, "draining": a.Draining, "failed": a.Failed} {
		g(dAgents, float64(n), status)
	}
	g(dSlots, float64(a.Slots))
	g(dBusySlots, float64(a.BusySlots))
	g(dUtilization, a.Utilization)
	g(dAgentFailure, a.FailureRate)
	w := s.Totals
	for status, n := range map[string]int{events.WorkflowRunning: w.Running, events.WorkflowPaused: w.Paused,
		events.WorkflowStopped: w.Stopped, events.WorkflowNeedsAttention: w.NeedsAttention,
		events.WorkflowCompleted: w.Completed, events.WorkflowFailed: w.Failed} {
		g(dWorkflows, float64(n), status)
	}
	// One workflow's series for each workflow the default status lists (the
	// open ones first), labelled by id and status only: never a name.
	for _, w := range s.Workflows {
		g(dWfProgress, w.Progress/100, w.ID, w.Status)
		n := w.Counts
		for state, v := range map[string]int{"pending": n.Pending - w.Active, "running": w.Active, "completed": n.Completed, "failed": n.Failed, "cancelled": n.Cancelled} {
			g(dWfTasks, float64(v), w.ID, state)
		}
		if w.ETASeconds != nil {
			g(dWfETA, *w.ETASeconds, w.ID)
		}
		g(dWfCritical, float64(w.CriticalPath.Remaining), w.ID)
		g(dWfOnSched, boolGauge(w.CriticalPath.OnSchedule), w.ID)
	}
	for _, l := range s.Lanes {
		g(dLaneBacklog, float64(l.Backlog), l.Lane)
		g(dLaneFlight, float64(l.InFlight), l.Lane)
		g(dLaneRedeliv, float64(l.Redelivered), l.Lane)
		g(dLanePaused, boolGauge(l.Paused), l.Lane)
		if l.Paused && l.PausedUntil != nil {
			g(dLaneUntil, float64(l.PausedUntil.Unix()), l.Lane)
		}
	}
	if s.Bottleneck != nil {
		g(dBottleneck, 1, s.Bottleneck.Lane)
	}
	for _, ag := range s.Agents.List {
		agentGauges(g, ag)
	}
}

// agentGauges writes one agent's series, labelled by its id (a token).
func agentGauges(g func(*prometheus.Desc, float64, ...string), a events.AgentInfo) {
	g(dAgentRunning, float64(a.Running), a.ID)
	if a.Concurrency > 0 {
		g(dAgentSlotUse, float64(a.Running)/float64(a.Concurrency), a.ID)
	}
	if p := a.Process; p != nil {
		g(dAgentCPU, p.CPUPercent, a.ID)
		g(dAgentCPUSecs, p.CPUSeconds, a.ID)
		g(dAgentRSS, float64(p.RSS), a.ID)
	}
	if a.CPUMilli > 0 {
		g(dAgentCapCPU, float64(a.CPUMilli)/1000, a.ID)
		g(dAgentUsedCPU, float64(a.CPUMilliUsed)/1000, a.ID)
	}
	if a.Memory > 0 {
		g(dAgentCapMem, float64(a.Memory), a.ID)
		g(dAgentUsedMem, float64(a.MemoryUsed), a.ID)
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
