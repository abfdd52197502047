package agent

import (
	"slices"
	"sync"
	"time"
)

// polls schedules an agent's looks at its lanes without a wake-up: a poll
// a period after the last task came or wake-up was heard, the period
// doubling from Poll up to PollMax while polls find nothing, and each
// retry the agent set on a lane when it comes due. While tasks keep
// coming the poll is put off: a busy agent's fetch loop does not ask
// every lane, nor wait on a lane whose consumer has no reachable leader
// (a fetch there takes its full second). Used by the fetch loop alone.
type polls struct {
	base, most time.Duration
	every      time.Duration
	at         time.Time // the next poll
}

// newPolls starts the schedule at now; most is at least base
// (Config.setDefaults).
func newPolls(base, most time.Duration, now time.Time) *polls {
	return &polls{base: base, most: most, every: base, at: now.Add(base)}
}

// active says a task came or a wake-up was heard: the period is Poll
// again, counted from now.
func (p *polls) active(now time.Time) {
	p.every, p.at = p.base, now.Add(p.base)
}

// retryLag is how long after a retry's due time its lane is marked: the
// server makes the message available by its own timer, and a fetch just
// before that would find nothing and leave the lane to the next poll.
const retryLag = 10 * time.Millisecond

// next is how long the loop may wait for the next poll, retry due, or end
// of a marked lane's hold after unanswered fetches (lane.silent).
func (p *polls) next(lanes []*lane, now time.Time) time.Duration {
	at := p.at
	for _, l := range lanes {
		if due, ok := l.retries.next(); ok && due.Add(retryLag).Before(at) {
			at = due.Add(retryLag)
		}
		if l.maybe.Load() && l.silent.held(now) && l.silent.until.Before(at) {
			at = l.silent.until
		}
	}
	return max(at.Sub(now), 0)
}

// fire marks the lanes whose retries came due and, if the poll is due,
// every lane (unless a standby waits there: it gets what comes), and
// doubles the period: the lanes' fetches that follow would reset it had
// they brought a task (active).
func (p *polls) fire(lanes []*lane, now time.Time) {
	for _, l := range lanes {
		if l.retries.take(now.Add(-retryLag)) {
			l.maybe.Store(true)
		}
	}
	if now.Before(p.at) {
		return
	}
	for _, l := range lanes {
		l.mayHold()
	}
	p.every = min(2*p.every, p.most)
	p.at = now.Add(p.every)
}

// retriesMost bounds the due times a lane keeps; past it the latest are
// dropped (such a retry is found by the lane's fetches, its standby or the
// poll).
const retriesMost = 256

// retriesApart is the grid due times are rounded up to: a lane is looked
// at once for the retries due within one step, at most this late for the
// earliest, so a burst of failures wakes the fetch loop at most once per
// step and lane.
const retriesApart = 20 * time.Millisecond

// retries are the due times of the retries an agent set on one lane,
// earliest first. Safe for concurrent use: workers add, the fetch loop
// reads and takes.
type retries struct {
	mu  sync.Mutex
	due []time.Time
}

// add records that a task of the lane, nak'ed with a delay, comes back at
// t.
func (r *retries) add(t time.Time) {
	t = t.Round(0) // the wall clock alone, as Truncate leaves the rounded ones
	if g := t.Truncate(retriesApart); g.Before(t) {
		t = g.Add(retriesApart)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i, found := slices.BinarySearchFunc(r.due, t, time.Time.Compare)
	if found || i == retriesMost {
		return
	}
	if len(r.due) == retriesMost {
		r.due = r.due[:retriesMost-1]
	}
	r.due = slices.Insert(r.due, i, t)
}

// next returns the earliest due time; ok is false when none is recorded.
func (r *retries) next() (t time.Time, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.due) == 0 {
		return time.Time{}, false
	}
	return r.due[0], true
}

// take forgets the due times up to t and says whether there were any.
func (r *retries) take(t time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for n < len(r.due) && !r.due[n].After(t) {
		n++
	}
	r.due = r.due[n:]
	return n > 0
}
