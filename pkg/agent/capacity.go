package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go/jetstream"
)

// Capability lanes and resource capacity.
//
// An agent serves, for each of its types and priorities, the lane of every
// subset of its capabilities (Config.Capabilities, at most
// events.MaxCapabilities): a task requiring {gpu} waits on the {gpu} lane,
// which only agents advertising gpu consume.
//
// An agent with a declared capacity (Config.CPUs, Config.Memory) fetches
// one task at a time and starts it only if its needs fit what the running
// tasks leave. A task that does not fit now is handed back (a copy queued
// again that carries the attempts used: no attempt is spent) and the agent
// leaves that lane alone until one of its tasks ends. A task that can
// never fit (it needs more than the whole capacity) is handed back too:
// its copy goes to the back of the lane, so the agent's next fetch there
// gets the tasks behind it. Only when it finds such tasks twice in a row
// does it leave the lane alone for a while (1 s, doubling to 30 s while it
// keeps finding them), so a lane of nothing but such tasks costs it no busy
// loop. Nothing wedges: the lane's other tasks and other agents carry on.

// Fit says whether a task's needs fit an agent's capacity.
type fit int

const (
	fitsNow fit = iota
	fitsLater
	fitsNever
)

// capacity is an agent's declared resources and what its running tasks
// hold of them. Safe for concurrent use.
type capacity struct {
	cpu, mem int64 // declared: thousandths of a core, bytes; 0 = none
	mu       sync.Mutex
	cpuUsed  int64
	memUsed  int64
}

func (c *capacity) declared() bool { return c.cpu > 0 || c.mem > 0 }

// take reserves cpu and mem if they fit now.
func (c *capacity) take(cpu, mem int64) fit {
	if (c.cpu > 0 && cpu > c.cpu) || (c.mem > 0 && mem > c.mem) {
		return fitsNever
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if (c.cpu > 0 && c.cpuUsed+cpu > c.cpu) || (c.mem > 0 && c.memUsed+mem > c.mem) {
		return fitsLater
	}
	c.cpuUsed += cpu
	c.memUsed += mem
	return fitsNow
}

// give returns what take reserved.
func (c *capacity) give(n need) {
	c.mu.Lock()
	c.cpuUsed -= n.cpu
	c.memUsed -= n.mem
	c.mu.Unlock()
}

func (c *capacity) used() (cpu, mem int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cpuUsed, c.memUsed
}

// need is what a started task holds of its agent's capacity.
type need struct{ cpu, mem int64 }

// laneHold is an agent's own reason to leave a lane alone for now.
type laneHold struct {
	mu      sync.Mutex
	full    bool    // its last task did not fit now: until a task ends
	neverOn backoff // its last tasks could never fit here
	never   int     // tasks in a row that could never fit here
}

const (
	neverFitFirstHold = time.Second
	neverFitMaxHold   = 30 * time.Second
)

func (h *laneHold) held(now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.full || h.neverOn.held(now)
}

// backoff leaves a lane alone until a time, for a wait that doubles each
// time its cause repeats: a lane whose tasks never fit (laneHold), one
// whose fetches go unanswered (lane.silent). Its user guards it.
type backoff struct {
	wait  time.Duration
	until time.Time
}

func (b *backoff) held(now time.Time) bool { return now.Before(b.until) }

// grow holds from now for twice the last wait, at least first and at
// most most, and returns the wait.
func (b *backoff) grow(now time.Time, first, most time.Duration) time.Duration {
	b.wait = min(max(2*b.wait, first), most)
	b.until = now.Add(b.wait)
	return b.wait
}

// reset lifts the hold and forgets its wait: its cause is gone.
func (b *backoff) reset() { *b = backoff{} }

// openCapLanes ensures the lanes of every subset of the agent's
// capabilities for each type and priority: per priority (most urgent
// first), every (type, capability set) pair. A capability lane it makes
// starts with the pause of its plain lane.
func (a *Agent) openCapLanes(ctx context.Context, types []string) ([]*lane, error) {
	var lanes []*lane
	for _, prio := range events.Priorities {
		for _, t := range types {
			var pausedUntil *time.Time
			for _, caps := range events.Subsets(a.cfg.Capabilities) {
				cons, err := streams.EnsureLaneFor(ctx, a.js, a.cfg.Streams, t, prio, caps, pausedUntil)
				if err != nil {
					return nil, err
				}
				if len(caps) == 0 {
					if info := cons.CachedInfo(); info != nil && info.Paused {
						pausedUntil = info.Config.PauseUntil
					}
				}
				l := &lane{typ: t, prio: prio, tok: events.LaneToken(prio, caps), cons: cons}
				l.maybe.Store(true)
				lanes = append(lanes, l)
			}
		}
	}
	return lanes, nil
}

// admit decides whether the agent starts task message m fetched from l:
// it reserves the task's needs, or hands the task back when they do not
// fit (see the top of this file). A message it cannot decode is admitted:
// process refuses it.
func (a *Agent) admit(ctx context.Context, l *lane, m jetstream.Msg) (need, bool) {
	if !a.capacity.declared() {
		return need{}, true
	}
	t, err := events.DecodeTask(m.Data())
	if err != nil {
		return need{}, true
	}
	n := need{cpu: max(t.CPUMilli, 0), mem: max(t.Memory, 0)}
	f := a.capacity.take(n.cpu, n.mem)
	l.hold.mu.Lock()
	why := "it does not fit what the running tasks leave"
	switch f {
	case fitsNow:
		l.hold.neverOn.wait, l.hold.never = 0, 0
	case fitsLater:
		l.hold.full, l.hold.never = true, 0
	default:
		why = "it needs more than this agent's whole capacity"
		if l.hold.never++; l.hold.never > 1 {
			wait := l.hold.neverOn.grow(time.Now(), neverFitFirstHold, neverFitMaxHold)
			why += fmt.Sprintf("; looking at the lane again in %v", wait)
		}
	}
	l.hold.mu.Unlock()
	if f == fitsNow {
		return n, true
	}
	log := a.log.With("workflow", t.Workflow, "task", t.ID, "cpu_milli", n.cpu, "memory", n.mem)
	log.Debug("task handed back: " + why)
	a.handBack(ctx, log, m, attemptOf(m))
	return need{}, false
}

// freeLanes lifts the "full" holds: a task ended, so capacity came free.
func freeLanes(lanes []*lane) {
	for _, l := range lanes {
		l.hold.mu.Lock()
		l.hold.full = false
		l.hold.mu.Unlock()
	}
}

// fetchSize is how many tasks to fetch with n slots free: one at a time
// with a declared capacity, since each must fit what the others leave.
func (a *Agent) fetchSize(n int) int {
	if a.capacity.declared() {
		return min(n, 1)
	}
	return n
}

// checkRequires refuses a task whose required capabilities the agent does
// not have: it came on a lane whose key matched by accident (or forgery).
func (a *Agent) checkRequires(t *events.Task) error {
	if !events.HasAll(a.cfg.Capabilities, t.Requires) {
		return fmt.Errorf("%w: task %s/%s requires capabilities this agent does not have", events.ErrForged, t.Workflow, t.ID)
	}
	return nil
}
