package retry

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/baton-dev/baton/pkg/events"
)

// Action is what follows a failed attempt.
type Action int

// Actions.
const (
	// Again hands the task back to its lane, to be tried after Delay.
	Again Action = iota
	// Fallback ends this round: the failure is published as not final and
	// the planner queues the task for its step's fallback type.
	Fallback
	// Fail ends the task for good.
	Fail
)

func (a Action) String() string {
	switch a {
	case Again:
		return "retry"
	case Fallback:
		return "fallback"
	}
	return "fail"
}

// Decision is what After decided.
type Decision struct {
	Action Action
	Delay  time.Duration // for Again
}

// After decides what follows attempt (1 for the first) of t failing. A
// permanent failure is not tried again; otherwise the task is tried until
// it has had MaxAttempts, with exponential backoff. Once the round is over,
// the fallback type takes over if the step has one and it has not run yet.
func After(t *events.Task, attempt int, permanent bool) Decision {
	if !permanent && attempt < t.MaxAttempts {
		return Decision{Action: Again, Delay: Backoff(t.Backoff, t.MaxBackoff, attempt)}
	}
	if HasFallback(t) {
		return Decision{Action: Fallback}
	}
	return Decision{Action: Fail}
}

// HasFallback reports whether a failure of t's current round is followed by
// a round on the step's fallback type: a failed result of t is then not
// final.
func HasFallback(t *events.Task) bool { return t.Fallback != "" && t.Round == 0 }

// FallbackDue reports whether the planner must queue a task for its
// fallback type on reading r: a result that is not final from the first
// round of a step that has a fallback.
func FallbackDue(r *events.Result, fallback string) bool {
	return !r.Final && r.Round == 0 && fallback != ""
}

// Backoff is the delay before attempt+1: base doubled per attempt, capped
// at limit, with "equal jitter" (half fixed, half random) so that retries
// do not stampede.
func Backoff(base, limit time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < limit; i++ {
		if d > limit/2 {
			d = limit // doubling would pass the limit, or overflow
			break
		}
		d *= 2
	}
	d = min(d, limit)
	if d <= 0 {
		return 0
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// Loop delays, for Do: from 100ms, doubling, to at most 2s.
const (
	firstDelay = 100 * time.Millisecond
	maxDelay   = 2 * time.Second
)

// stopError marks an error that waiting will not mend (see Stop).
type stopError struct{ err error }

func (e stopError) Error() string { return e.err.Error() }
func (e stopError) Unwrap() error { return e.err }

// Stop wraps err so that Do returns it at once instead of trying again:
// for failures that waiting will not mend (refused credentials, say).
func Stop(err error) error { return stopError{err} }

// Do calls fn until it returns nil, waiting between calls (100ms doubling
// to 2s) and logging each failure as what. It gives up with fn's last error
// after attempts calls (attempts ≤ 0: never), at once with the error fn
// wrapped in Stop, and with ctx's error when ctx ends first.
func Do(ctx context.Context, log *slog.Logger, what string, attempts int, fn func() error) error {
	return do(ctx, log, what, attempts, 0, fn)
}

// Await is Do without a limit on the attempts, for a wait that is expected
// (a service started beside the one that creates what it needs): failures
// in the first patience are logged at debug level, later ones as warnings.
func Await(ctx context.Context, log *slog.Logger, what string, patience time.Duration, fn func() error) error {
	return do(ctx, log, what, 0, patience, fn)
}

func do(ctx context.Context, log *slog.Logger, what string, attempts int, patience time.Duration, fn func() error) error {
	began := time.Now()
	delay := firstDelay
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		var stop stopError
		if errors.As(err, &stop) {
			return stop.err
		}
		if attempts > 0 && attempt >= attempts {
			return err
		}
		level := slog.LevelWarn
		if time.Since(began) < patience {
			level = slog.LevelDebug
		}
		log.Log(ctx, level, "retrying", "what", what, "attempt", attempt, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		delay = min(2*delay, maxDelay)
	}
}
