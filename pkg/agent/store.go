package agent

import (
	"context"
	"time"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/retry"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// resultRetry is the first pause before a result RESULTS did not take is
// published again; it doubles up to resultRetryMax (retry.Backoff).
const (
	resultRetry    = 250 * time.Millisecond
	resultRetryMax = 2 * time.Second
)

// storeFailed handles a failed try to store the result of the task message
// m: it reports whether to try again, after how long. Once the agent is
// stopping or crashed it is not tried again; otherwise the outage is
// logged and m's claim renewed, so that the task does not run elsewhere
// meanwhile: no pause is longer than a third of the ack wait.
func (a *Agent) storeFailed(m jetstream.Msg, err error, tries int) (time.Duration, bool) {
	if a.dead.Load() || a.isStopping() {
		return 0, false
	}
	a.storing.fail(a.log, "storing results", err)
	_ = m.InProgress()
	return retry.Backoff(resultRetry, min(resultRetryMax, a.cfg.Streams.AckWait/3), tries), true
}

// storeResult publishes msg, the result of the task message m, without
// waiting, and calls done once RESULTS has stored it or storing it is
// given up. A result RESULTS does not take (no leader during a failover, a
// full stream, a lost acknowledgement) is published again after a pause,
// and m's claim renewed, so that the task is not run again elsewhere
// meanwhile; its Nats-Msg-Id stores it once. Once the agent is stopping
// (a draining agent still publishes the results of the tasks it finishes)
// or crashed (a drill), a failure is not tried again: the task is left to
// its ack wait. Until done the result counts as unconfirmed, and the agent
// takes no more tasks than its slots leave room for beside those: an agent
// whose results cannot be stored stops taking tasks.
func (a *Agent) storeResult(m jetstream.Msg, msg *nats.Msg, done func(stored bool, err error)) {
	a.unconfirmed.Add(1)
	finish := func(stored bool, err error) {
		a.unconfirmed.Add(-1)
		done(stored, err)
		a.slotFreed()
	}
	tries := 0
	var try func()
	try = func() {
		a.confirms.Publish(msg, a.results, func(stored bool, err error) {
			if stored {
				a.storing.ok(a.log, "storing results")
				finish(true, nil)
				return
			}
			tries++
			pause, again := a.storeFailed(m, err, tries)
			if !again {
				finish(false, err)
				return
			}
			time.AfterFunc(pause, try)
		})
	}
	try()
}

// publishResultClaimed publishes r, the result of the task message m, and
// waits until RESULTS stores it, publishing it again after a pause as
// storeResult does, m's claim renewed meanwhile; it is for results the
// agent must see stored before it goes on (a permit is given back, a
// failure settled). It returns the last error once the agent is stopping
// or crashed: the task is then left to its ack wait.
func (a *Agent) publishResultClaimed(ctx context.Context, m jetstream.Msg, r *events.Result) error {
	msg, err := a.subj.ResultMsg(r, events.ResultByAgent(r))
	if err != nil {
		return err
	}
	for tries := 1; ; tries++ {
		err := a.store(ctx, msg)
		if err == nil {
			a.storing.ok(a.log, "storing results")
			return nil
		}
		wait, again := a.storeFailed(m, err, tries)
		if !again {
			return err
		}
		pause := time.NewTimer(wait)
		select {
		case <-pause.C:
		case <-a.stopping:
			pause.Stop()
			return err
		}
	}
}

// isStopping reports whether Run's context has ended.
func (a *Agent) isStopping() bool {
	select {
	case <-a.stopping:
		return true
	default:
		return false
	}
}
