package aggregator

import (
	"context"
	"errors"
	"fmt"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go/jetstream"
)

// How a workflow's outputs end: the hybrid mode's ready output, and the
// final output of a workflow that missed its success threshold under an
// on_threshold_missed policy, which waits for the planner's decision (a
// retry round's results, or the verdict the planner or a person wrote into
// the workflow record).

// finishing is the part of a workflow's state this file keeps.
type finishing struct {
	completed int  // tasks whose first final result completed
	critDone  int  // of them critical
	ready     bool // the ready output is stored
	// waiting: every task has a result, but the verdict is the planner's
	// (pollWaiting reads the record); verdict is that decision.
	waiting bool
	verdict string
	// reopened: the workflow had a final output and was restarted with
	// retry_failed; a new final output is due.
	reopened bool
}

// waitPoll is how often the records of waiting workflows are read;
// waitPollMax bounds how many are read each time.
const (
	waitPoll    = time.Second
	waitPollMax = 64
)

// openFinish sets what of s is already stored: whether its ready output
// was published (err is that of reading the last one).
func openFinish(s *state, err error) error {
	if s.rec.CollectMode() != events.CollectHybrid {
		return nil
	}
	switch {
	case err == nil:
		s.ready = true
	case !errors.Is(err, jetstream.ErrMsgNotFound):
		return fmt.Errorf("aggregator: look for ready output of %s: %w", s.rec.ID, err)
	}
	return nil
}

// readyHolds reports whether a hybrid workflow's consumers may go on
// without the rest: every critical task completed, or, in a job without
// critical tasks, the completed share reached the success threshold.
func (s *state) readyHolds() bool {
	return s.rec.ReadyHolds(s.completed, s.critDone, len(s.critical))
}

// maybeReady publishes a hybrid workflow's ready output once readyHolds:
// the data of the tasks completed so far, status running. It is stored
// once (its Nats-Msg-Id is the workflow's); a failure is tried again with
// the next result.
func (a *Aggregator) maybeReady(ctx context.Context, s *state) {
	if s.ready || a.replaying || s.rec.CollectMode() != events.CollectHybrid || !s.readyHolds() {
		return
	}
	out, err := a.final(s, true)
	if err != nil {
		a.log.Warn("build ready output", "workflow", s.rec.ID, "err", err)
		return
	}
	out.Kind, out.Status = events.OutputReady, events.OutcomeRunning
	out.Missing = nil // the rest is not missing: it is still running
	a.partials(ctx)
	if err := a.publish(ctx, *out, events.MsgID(s.rec.ID, events.OutputReady), 0, 0); err != nil {
		a.log.Warn("publish ready output; trying again with the next result", "workflow", s.rec.ID, "err", err)
		return
	}
	s.ready = true
	a.log.Info("ready output", "workflow", s.rec.ID, "completed", s.completed, "total", s.rec.Counts.Total)
}

// conclude publishes the final output of a workflow every task of which
// has a result, unless the verdict is the planner's: a workflow that
// missed its threshold with an on_threshold_missed policy is retried,
// escalated or failed by the planner, and its final output waits for the
// record to say so (pollWaiting) with the counts the aggregator has.
//
// Under a policy the record is read again first: a failed result that a
// retry round superseded (its generation is older than the record's Retry
// for its task; the planner stores the record before it queues the retry)
// is no final result, so the workflow is not concluded before its retried
// tasks are done.
func (a *Aggregator) conclude(ctx context.Context, s *state) {
	if s.rec.OnThresholdMissed != nil || s.reopened {
		rec, err := streams.GetWorkflow(ctx, a.kv, s.rec.ID)
		if err != nil || rec == nil {
			s.waiting = true // pollWaiting tries again
			return
		}
		s.rec = *rec
		retried := false
		s.final.unfinished(func(r *events.Result) {
			retried = retried || r.Gen < s.rec.Retry[r.Task]
		})
		if retried {
			s.waiting = true // retried: its new result is to come
			return
		}
	}
	c := s.counts()
	crit := false
	s.final.unfinished(func(r *events.Result) {
		crit = crit || s.critical[r.Task]
	})
	out, _ := s.rec.Verdict(c, crit)
	if !s.rec.AwaitsDecision(out, crit) {
		s.waiting, s.verdict = false, ""
		a.finish(ctx, s)
		return
	}
	rc := s.rec.Counts
	if s.rec.Decided() && rc.Completed == c.Completed && rc.Failed == c.Failed && rc.Cancelled == c.Cancelled {
		s.waiting, s.verdict = false, s.rec.Outcome
		a.finish(ctx, s)
		return
	}
	if !s.waiting {
		a.log.Info("threshold missed: waiting for the planner's decision", "workflow", s.rec.ID,
			"completed", c.Completed, "total", c.Total)
	}
	s.waiting = true
}

// pollWaiting reads the records of workflows waiting for a decision, at
// most waitPollMax of them every waitPoll, and concludes those decided.
func (a *Aggregator) pollWaiting(ctx context.Context) {
	if time.Since(a.polled) < waitPoll {
		return
	}
	a.polled = time.Now()
	n := 0
	for _, s := range a.wfs {
		if !s.waiting {
			continue
		}
		if n++; n > waitPollMax {
			return
		}
		a.conclude(ctx, s) // reads the record
	}
}

// reopenWait bounds how long reading a reopened workflow's results back
// may take.
const reopenWait = 30 * time.Second

// backfill reads a reopened workflow's stored results back into s: the
// aggregator has followed RESULTS past them since its final output.
// Applying a result twice changes nothing (the first final result of a
// task wins, unless a later generation supersedes a failure).
func (a *Aggregator) backfill(ctx context.Context, s *state) error {
	replaying := a.replaying
	a.replaying = true // no ready output from old results
	defer func() { a.replaying = replaying }()
	err := streams.Replay(ctx, a.js, streams.FollowConfig{Stream: a.cfg.Streams.ResultsStream(),
		Filter: a.subj.Result(s.rec.ID, "*"), FromSeq: max(s.rec.ResultsFrom, 1)}, reopenWait,
		func(m jetstream.Msg) { a.onResult(ctx, m) })
	if err != nil {
		return fmt.Errorf("aggregator: read back the results of reopened workflow %s: %w", s.rec.ID, err)
	}
	a.log.Info("reopened workflow read back", "workflow", s.rec.ID, "results", s.final.len())
	return nil
}

// finalID is the Nats-Msg-Id of a workflow's final output: one per
// reopening.
func finalID(s *state) string {
	if s.rec.Reopened > 0 {
		return events.MsgID(s.rec.ID, events.OutputFinal, s.rec.Reopened)
	}
	return events.MsgID(s.rec.ID, events.OutputFinal)
}
