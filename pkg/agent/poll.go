package agent

import "time"

// polls schedules an agent's looks at its lanes without a wake-up: a poll
// a period after the last task came or wake-up was heard, the period
// doubling from Poll up to PollMax while polls find nothing, and each
// lane's retry when it comes due. While tasks keep coming the poll is put
// off: a busy agent's fetch loop does not ask every lane, nor wait on a
// lane whose consumer has no reachable leader (a fetch there takes its
// full second). Used by the fetch loop alone.
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

// next is how long the loop may wait for the next poll or retry due.
func (p *polls) next(lanes []*lane, now time.Time) time.Duration {
	at := p.at
	for _, l := range lanes {
		if due, _, ok := l.retryDue(); ok && due.Before(at) {
			at = due
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
		if due, d, ok := l.retryDue(); ok && !now.Before(due) {
			l.due.CompareAndSwap(d, 0)
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

// retryDue returns when the loop marks l for its earliest retry (its due
// time plus retryLag) and the recorded due time d; ok is false when no
// retry is recorded.
func (l *lane) retryDue() (at time.Time, d int64, ok bool) {
	if d = l.due.Load(); d == 0 {
		return time.Time{}, 0, false
	}
	return time.Unix(0, d).Add(retryLag), d, true
}

// retryAt records that a task of l, nak'ed with a delay, comes back at t:
// the lane keeps the earliest such time (a later one is found by the
// lane's fetches, its standby or the poll).
func (l *lane) retryAt(t time.Time) {
	n := t.UnixNano()
	for {
		d := l.due.Load()
		if d != 0 && d <= n {
			return
		}
		if l.due.CompareAndSwap(d, n) {
			return
		}
	}
}
