package agent

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/permit"
)

// The gate: a task with a synchronisation point (a concurrency key, a rate,
// or a type with a cap) starts only once it holds its permits (package
// permit). While it waits it holds no slot: it stays claimed on its lane
// (InProgress keeps it), costs no attempt, and the agent runs other tasks
// in the meantime.
const (
	// PermitWaitMax is how long a task waits for its permits on one agent
	// before it is handed back to its lane (at no cost of an attempt), so
	// that no agent sits on tasks it cannot start.
	PermitWaitMax = 10 * time.Second
	// permitBackoff and permitBackoffMax pace the tries of a waiting task;
	// a permit this agent gives back wakes its waiters at once.
	permitBackoff    = 25 * time.Millisecond
	permitBackoffMax = 500 * time.Millisecond
)

// waitRoom is how many more tasks may wait for permits: at most four
// times the concurrency wait at once, so an agent does not claim more of
// a lane than it can start soon.
func (a *Agent) waitRoom() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return 4*a.cfg.Concurrency - a.waiting
}

// setWaiting gives up j's slot while it waits.
func (a *Agent) setWaiting(j *job) {
	a.mu.Lock()
	if !j.waiting {
		j.waiting = true
		a.waiting++
	}
	a.mu.Unlock()
	a.changed.Store(true)
	a.slotFreed()
}

// claimSlot takes a slot for j again, if one is free.
func (a *Agent) claimSlot(j *job) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !j.waiting {
		return true
	}
	if len(a.running)-a.waiting >= a.cfg.Concurrency {
		return false
	}
	j.waiting = false
	a.waiting--
	a.changed.Store(true)
	return true
}

// acquire waits until t holds its permits and a slot; ok is false when the
// task was settled instead: cancelled, handed back by a pause, handed back
// because the agent stops or it waited PermitWaitMax here.
func (a *Agent) acquire(ctx context.Context, log *slog.Logger, j *job, t *events.Task, attempt int) (*permit.Held, bool) {
	first := time.Now()
	backoff := permitBackoff
	what := t.Workflow + "/" + t.ID
	for {
		freed := a.gate.Freed(t)
		delay := backoff
		if a.claimSlot(j) {
			h, retry, err := a.gate.Try(ctx, t, what)
			if err != nil {
				a.gating.fail(a.log, "taking permits", err)
			} else {
				a.gating.ok(a.log, "taking permits")
			}
			if h != nil {
				if h.Wait(ctx) == nil {
					return h, true
				}
				h.Release(ctx)
			} else {
				a.setWaiting(j)
				delay = max(delay, retry)
			}
		}
		backoff = min(2*backoff, permitBackoffMax)
		if ctx.Err() == nil {
			left := PermitWaitMax - time.Since(first)
			if left <= 0 {
				log.Info("no permit yet: handing the task back", "waited", time.Since(first).Round(time.Millisecond))
				a.handBack(ctx, log, j.msg, attempt)
				return nil, false
			}
			delay = min(delay/2+rand.N(delay/2+1), left)
			timer := time.NewTimer(delay)
			select {
			case <-freed:
			case <-timer.C:
			case <-ctx.Done():
			case <-a.stopping:
				timer.Stop()
				if ctx.Err() == nil {
					a.handBack(ctx, log, j.msg, attempt)
					return nil, false
				}
			}
			timer.Stop()
		}
		if ctx.Err() != nil {
			if !a.settleInterrupted(ctx, func() *slog.Logger { return log }, j, t, attempt, time.Now()) {
				a.handBack(ctx, log, j.msg, attempt) // the drain gave up on it
			}
			return nil, false
		}
	}
}

// settleInterrupted ends a task a control command stopped: cancelled (with
// a cancelled result) or handed back by a pause with --now. It reports
// whether it did.
func (a *Agent) settleInterrupted(ctx context.Context, log func() *slog.Logger, j *job, t *events.Task, attempt int, started time.Time) bool {
	a.mu.Lock()
	cancelled, handback, why, kind := j.cancelled, j.handback, j.why, j.kind
	a.mu.Unlock()
	switch {
	case cancelled:
		a.cancelled(ctx, log(), t, j.msg, attempt, started, why, kind)
		return true
	case handback:
		log().Info("task handed back: its workflow was paused")
		settle(log(), "nak", j.msg.Nak())
		return true
	}
	return false
}

// cancelOnLost cancels the handler (cancel) if held loses a permit while it
// runs; the returned stop ends the watch and says whether that happened.
func (a *Agent) cancelOnLost(held *permit.Held, cancel context.CancelFunc) (stop func() bool) {
	if held == nil {
		return func() bool { return false }
	}
	done := make(chan struct{})
	var lost atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-held.Lost():
			lost.Store(true)
			cancel()
		case <-done:
		}
	})
	return func() bool {
		close(done)
		wg.Wait()
		return lost.Load()
	}
}
