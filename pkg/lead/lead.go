// Package lead lets replicas of a service take turns: one leads, the others
// stand by and take over when it stops or dies.
//
// The lead is a key of the leases bucket, whose entries expire TTL after
// their last write (the bucket's MaxAge, kept by the server, so no clock
// of a replica matters). A replica leads from the moment its Create of the
// key succeeds; it renews the key every TTL/3 with an Update conditional on
// the revision it last wrote, so a lead taken over cannot be renewed (a
// fence: the old leader learns it lost at its next renewal). A leader that
// cannot renew for TTL/2 stops acting before its key can expire, so two
// replicas never act at once for longer than a stalled renewal takes. One
// that stops cleanly deletes the key, and a standby takes over within one
// poll (TTL/8); one that dies is replaced within TTL + TTL/8.
package lead

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Config configures one replica.
type Config struct {
	KV  jetstream.KeyValue // the leases bucket
	Key string             // what is led: "planner", "aggregator"
	ID  string             // this replica, as other replicas and people see it
	// TTL is the bucket's entry lifetime (its MaxAge); it bounds how long a
	// dead leader's lead lasts.
	TTL time.Duration
	Log *slog.Logger
}

// ErrLost is the cause of a term's context ending because the lead was
// lost: taken over, or not renewed in time.
var ErrLost = errors.New("lead lost")

// Lost reports whether ctx, a term's context or one made from it, ended
// because the lead was lost: a service then stops acting at once, doing
// none of the work of a graceful stop (another replica may lead already).
func Lost(ctx context.Context) bool { return errors.Is(context.Cause(ctx), ErrLost) }

// Run calls fn each time this replica takes the lead, with a context that
// ends when the lead is lost, until ctx ends (then it resigns, so that a
// standby takes over at once, and returns nil) or fn returns an error
// while leading (returned). After a lost lead it stands by again.
func Run(ctx context.Context, c Config, fn func(ctx context.Context) error) error {
	if c.TTL <= 0 {
		return fmt.Errorf("lead: TTL %v must be positive", c.TTL)
	}
	log := c.Log.With("lead", c.Key, "replica", c.ID)
	for {
		rev, err := c.acquire(ctx, log)
		if err != nil {
			return nil // ctx ended while standing by
		}
		log.Info("leading")
		term, lose := context.WithCancelCause(ctx)
		renewed := make(chan uint64, 1)
		go func() { renewed <- c.renew(term, lose, rev, log) }()
		err = fn(term)
		lose(nil)
		rev = <-renewed
		if cause := context.Cause(term); ctx.Err() == nil && errors.Is(cause, ErrLost) {
			log.Warn("lead lost; standing by", "why", cause)
			continue
		}
		// Stopped, or fn returned while leading (an error, or done).
		c.resign(ctx, rev, log)
		return err
	}
}

// acquire polls until this replica creates the key.
func (c Config) acquire(ctx context.Context, log *slog.Logger) (uint64, error) {
	poll := time.NewTicker(max(c.TTL/8, 10*time.Millisecond))
	defer poll.Stop()
	waiting, unreachable := false, false
	for {
		rev, err := c.KV.Create(ctx, c.Key, []byte(c.ID))
		if err == nil {
			return rev, nil
		}
		switch {
		case ctx.Err() != nil:
		case !errors.Is(err, jetstream.ErrKeyExists):
			if !unreachable { // once per outage, not once per poll
				unreachable = true
				log.Warn("lead: cannot reach the leases bucket; trying on", "err", err)
			}
		case unreachable:
			unreachable = false
			log.Info("lead: leases bucket reachable again")
		}
		if errors.Is(err, jetstream.ErrKeyExists) && !waiting && ctx.Err() == nil {
			waiting = true
			holder := "?"
			if e, err := c.KV.Get(ctx, c.Key); err == nil {
				holder = string(e.Value())
			}
			log.Info("standing by", "leader", holder)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-poll.C:
		}
	}
}

// renew keeps the lead until term ends; it ends term with ErrLost when the
// lead is taken over or cannot be renewed for TTL/2. It returns the last
// revision it wrote.
func (c Config) renew(term context.Context, lose context.CancelCauseFunc, rev uint64, log *slog.Logger) uint64 {
	tick := time.NewTicker(c.TTL / 3)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-term.Done():
			return rev
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(term, c.TTL/4)
		next, err := c.KV.Update(ctx, c.Key, []byte(c.ID), rev)
		cancel()
		switch {
		case err == nil:
			rev, last = next, time.Now()
		case term.Err() != nil:
			return rev
		case isTakenOver(err):
			lose(fmt.Errorf("%w: another replica holds it (%v)", ErrLost, err))
			return rev
		case time.Since(last) > c.TTL/2:
			lose(fmt.Errorf("%w: not renewed for %v (%v)", ErrLost, time.Since(last).Round(time.Millisecond), err))
			return rev
		default:
			log.Warn("lead: renewal failed; trying again", "err", err)
		}
	}
}

// isTakenOver reports a conditional update refused because the key moved
// on (another replica's write) or expired.
func isTakenOver(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyNotFound) ||
		errors.Is(err, jetstream.ErrKeyExists) || (errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant))
}

// resign deletes the key if this replica still holds it, so that a standby
// takes over without waiting for it to expire.
func (c Config) resign(ctx context.Context, rev uint64, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	err := c.KV.Delete(ctx, c.Key, jetstream.LastRevision(rev))
	if isTakenOver(err) {
		// A renewal cut short by the stop may still have been stored, at a
		// revision this replica never learnt: if the key is still its own,
		// delete it at the revision it has now.
		e, gerr := c.KV.Get(ctx, c.Key)
		if gerr != nil || string(e.Value()) != c.ID {
			return // another replica leads, or the key expired
		}
		err = c.KV.Delete(ctx, c.Key, jetstream.LastRevision(e.Revision()))
	}
	if err != nil && !isTakenOver(err) {
		log.Warn("lead: resign", "err", err)
		return
	}
	log.Info("resigned the lead")
}
