package agent

import (
	"math"
	"sync"
	"time"

	"github.com/baton-dev/baton/pkg/events"
)

// childUsage is what a handler reported of the child processes it ran.
type childUsage struct {
	mu     sync.Mutex
	cpu    time.Duration
	maxRSS int64
	any    bool
}

// ReportChild adds the CPU time and peak resident size (bytes) of a child
// process the handler ran to the task's result (events.TaskUsage's
// ExecCPUMS and ExecMaxRSS). Use ChildUsage to read them from a finished
// command's ProcessState.SysUsage(). Safe to call more than once and from
// any goroutine; a report after the handler returned may be missed.
func (t *Task) ReportChild(cpu time.Duration, maxRSS int64) {
	t.child.mu.Lock()
	defer t.child.mu.Unlock()
	t.child.any = true
	t.child.cpu += max(cpu, 0)
	t.child.maxRSS = max(t.child.maxRSS, maxRSS)
}

// usage is the result's usage: the handler's CPU (if measured) and what it
// reported of its children.
func (t *Task) usage(cpu time.Duration, measured bool) *events.TaskUsage {
	t.child.mu.Lock()
	defer t.child.mu.Unlock()
	if !measured && !t.child.any {
		return nil
	}
	return &events.TaskUsage{CPUMS: ms(cpu), ExecCPUMS: ms(t.child.cpu), ExecMaxRSS: t.child.maxRSS}
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Microseconds())) / 1000 }

// procSampler reads the agent process's CPU and RSS for its registry
// entry; CPUPercent is over the time since the previous sample (at least
// a second; a sooner call repeats the last figure). Safe for concurrent use.
type procSampler struct {
	mu      sync.Mutex
	at      time.Time
	cpu     time.Duration
	percent float64
}

func (p *procSampler) sample() *events.ProcessUsage {
	cpu, maxRSS := selfUsage()
	now := time.Now()
	p.mu.Lock()
	if p.at.IsZero() {
		p.at, p.cpu = now, cpu
	} else if span := now.Sub(p.at); span >= time.Second {
		p.percent = math.Round(1000*float64(cpu-p.cpu)/float64(span)) / 10
		p.at, p.cpu = now, cpu
	}
	percent := p.percent
	p.mu.Unlock()
	rss := residentBytes()
	if rss == 0 {
		rss = maxRSS
	}
	return &events.ProcessUsage{CPUSeconds: math.Round(cpu.Seconds()*1000) / 1000, CPUPercent: percent, RSS: rss, MaxRSS: maxRSS}
}
