package permit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go/jetstream"
)

// MaxReserve is how far ahead a task may reserve its start under a rate:
// further than that, Try gives back what it took and says when to try again.
const MaxReserve = time.Second

// Gate takes and gives back the permits of tasks for one holder (an agent).
// Open it, run Watch beside it, then call Needs and Try per task.
type Gate struct {
	permits, rates, limits jetstream.KeyValue
	ttl                    time.Duration
	holder                 string
	log                    *slog.Logger

	caps    atomic.Pointer[map[string]int] // type → cap, from the limits bucket
	watcher jetstream.KeyWatcher

	mu    sync.Mutex
	freed map[string]chan struct{} // permit key prefix → closed when this gate gives one back
}

// Open binds the buckets (the planner creates them) and reads the per-type
// caps; Watch keeps them current. holder names the holder in the permits
// it takes.
func Open(ctx context.Context, js jetstream.JetStream, c streams.Config, holder string, log *slog.Logger) (*Gate, error) {
	c = c.WithDefaults()
	g := &Gate{holder: holder, log: log, freed: map[string]chan struct{}{}}
	var err error
	if g.permits, err = js.KeyValue(ctx, c.PermitsBucket()); err != nil {
		return nil, fmt.Errorf("permit: bucket %s: %w", c.PermitsBucket(), err)
	}
	if g.rates, err = js.KeyValue(ctx, c.RatesBucket()); err != nil {
		return nil, fmt.Errorf("permit: bucket %s: %w", c.RatesBucket(), err)
	}
	if g.limits, err = js.KeyValue(ctx, c.LimitsBucket()); err != nil {
		return nil, fmt.Errorf("permit: bucket %s: %w", c.LimitsBucket(), err)
	}
	st, err := g.permits.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("permit: bucket %s: %w", c.PermitsBucket(), err)
	}
	// The bucket's TTL, whoever created it, is what holders must beat.
	g.ttl = st.TTL()
	if g.ttl <= 0 {
		g.ttl = c.PermitTTL
	}
	empty := map[string]int{}
	g.caps.Store(&empty)
	// The watcher's subscription lives until Watch returns (or Close).
	g.watcher, err = g.limits.Watch(context.WithoutCancel(ctx), limitPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("permit: watch %s: %w", c.LimitsBucket(), err)
	}
	caps := map[string]int{}
	for {
		select {
		case e := <-g.watcher.Updates():
			if e == nil { // the current values are all in
				g.caps.Store(&caps)
				return g, nil
			}
			g.applyCap(caps, e)
		case <-ctx.Done():
			_ = g.watcher.Stop()
			return nil, ctx.Err()
		}
	}
}

// TTL is how long a permit outlives its holder's last renewal.
func (g *Gate) TTL() time.Duration { return g.ttl }

// Close stops watching the per-type caps (Watch returns). It is safe to
// call more than once, and after Watch returned.
func (g *Gate) Close() { _ = g.watcher.Stop() }

// Watch keeps the per-type caps current until ctx ends or Close; then it
// stops the watcher. Call it once.
func (g *Gate) Watch(ctx context.Context) {
	defer g.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-g.watcher.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue
			}
			next := map[string]int{}
			for k, v := range *g.caps.Load() {
				next[k] = v
			}
			g.applyCap(next, e)
			g.caps.Store(&next)
		}
	}
}

func (g *Gate) applyCap(caps map[string]int, e jetstream.KeyValueEntry) {
	typ := strings.TrimPrefix(e.Key(), limitPrefix)
	if e.Operation() != jetstream.KeyValuePut {
		delete(caps, typ)
		return
	}
	n, err := parseLimit(e.Value())
	if err != nil {
		g.log.Warn("ignoring a per-type limit that baton did not write", "type", events.Short(typ), "err", err)
		delete(caps, typ)
		return
	}
	caps[typ] = n
}

// Cap is the per-type cap of typ; 0: none.
func (g *Gate) Cap(typ string) int { return (*g.caps.Load())[typ] }

// Needs reports whether t has a synchronisation point: a concurrency key,
// a rate, or its type a cap. It does no I/O.
func (g *Gate) Needs(t *events.Task) bool {
	return t.Key != "" || t.Rate != "" || g.Cap(t.Type) > 0
}

// Freed returns a channel closed when this gate next gives back a permit
// that t could use: a holder waiting for one tries again at once.
func (g *Gate) Freed(t *events.Task) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	// One channel per task type: a release of a key or a type cap wakes
	// the waiting tasks of the type (a few extra tries, no bookkeeping).
	ch, ok := g.freed[t.Type]
	if !ok {
		ch = make(chan struct{})
		g.freed[t.Type] = ch
	}
	return ch
}

func (g *Gate) wake(typ string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ch, ok := g.freed[typ]; ok {
		close(ch)
		delete(g.freed, typ)
	}
}

// Held is the permits one task holds. Its renewals run until Release.
type Held struct {
	g       *Gate
	typ     string
	slots   []*slot
	readyAt time.Time
	value   []byte // what the slots hold: holder and task
	lost    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

type slot struct {
	key string
	rev uint64
}

// Try takes everything t needs — its type's cap, its key's slot, a start
// under its rate, in that order — or nothing: when something is not to be
// had, it gives back what it took and returns a nil Held with how long to
// wait before trying again (a rate knows; a full key says "soon"). An error
// is JetStream's (the caller waits and tries again too).
func (g *Gate) Try(ctx context.Context, t *events.Task, what string) (*Held, time.Duration, error) {
	h := &Held{g: g, typ: t.Type, lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	h.value, _ = json.Marshal(struct {
		Holder string `json:"holder"`
		Task   string `json:"task"`
	}{events.Clip(g.holder, 64), events.Clip(what, 160)})
	if n := g.Cap(t.Type); n > 0 {
		ok, err := h.take(ctx, typePrefix+t.Type, n)
		if !ok || err != nil {
			h.giveBack(ctx)
			return nil, soon, err
		}
	}
	if t.Key != "" && t.Limit > 0 {
		ok, err := h.take(ctx, keyPrefix+t.Key, t.Limit)
		if !ok || err != nil {
			h.giveBack(ctx)
			return nil, soon, err
		}
	}
	if t.Rate != "" {
		rk := typePrefix + t.Type
		if t.Key != "" {
			rk = keyPrefix + t.Key
		}
		at, retry, err := g.reserve(ctx, rk, t.Rate, t.Burst)
		if err != nil || retry > 0 {
			h.giveBack(ctx)
			return nil, retry, err
		}
		h.readyAt = at
	}
	if len(h.slots) > 0 {
		// Renewals outlive the call, not the values of its context.
		go h.renew(context.WithoutCancel(ctx))
	} else {
		close(h.done)
	}
	return h, 0, nil
}

// soon is how long a full key suggests waiting; the caller adds its own
// backoff and wakes early on Freed.
const soon = 50 * time.Millisecond

// take looks for a free slot of prefix among limit, starting at a random
// one; ok is false when all are held.
func (h *Held) take(ctx context.Context, prefix string, limit int) (bool, error) {
	start := rand.IntN(limit)
	for i := range limit {
		key := prefix + "." + strconv.Itoa((start+i)%limit)
		rev, err := h.g.permits.Create(ctx, key, h.value)
		switch {
		case err == nil:
			h.slots = append(h.slots, &slot{key: key, rev: rev})
			return true, nil
		case errors.Is(err, jetstream.ErrKeyExists):
			continue
		default:
			return false, fmt.Errorf("permit: take %s: %w", key, err)
		}
	}
	return false, nil
}

// Wait waits until the start the rate reserved (at most MaxReserve).
func (h *Held) Wait(ctx context.Context) error {
	d := time.Until(h.readyAt)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Lost is closed when a permit could not be renewed in time: another
// holder may have it now, so the task should stop.
func (h *Held) Lost() <-chan struct{} { return h.lost }

// renew keeps the slots alive at a quarter of the TTL, each on its own
// revision. A slot someone else changed, or one not renewed for half the
// TTL (renewals failing), is lost: the holder is told before the TTL lets
// anyone else take it.
func (h *Held) renew(base context.Context) {
	defer close(h.done)
	every := h.g.ttl / 4
	tick := time.NewTicker(every)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-h.stop:
			return
		case <-tick.C:
		}
		ok := true
		for _, s := range h.slots {
			ctx, cancel := context.WithTimeout(base, every)
			rev, err := h.g.permits.Update(ctx, s.key, h.value, s.rev)
			cancel()
			switch {
			case err == nil:
				s.rev = rev
			case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyNotFound):
				h.g.log.Warn("permit lost: someone else changed it", "permit", s.key, "err", err)
				h.markLost()
				return
			default:
				ok = false
				h.g.log.Warn("renew permit", "permit", s.key, "err", err)
			}
		}
		if ok {
			last = time.Now()
		} else if time.Since(last) > h.g.ttl/2 {
			h.g.log.Warn("permit lost: not renewed for half its TTL", "ttl", h.g.ttl)
			h.markLost()
			return
		}
	}
}

func (h *Held) markLost() { h.once.Do(func() { close(h.lost) }) }

// Release stops the renewals and gives the permits back. It is safe to
// call on a nil Held and more than once.
func (h *Held) Release(ctx context.Context) {
	if h == nil {
		return
	}
	select {
	case <-h.stop:
		return
	default:
		close(h.stop)
	}
	<-h.done
	if len(h.slots) > 0 {
		h.giveBack(ctx)
		h.g.wake(h.typ)
	}
}

// giveBack deletes the slots taken, each on its own revision (so a slot
// that aged out and went to another holder is left alone).
func (h *Held) giveBack(ctx context.Context) {
	if len(h.slots) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, s := range h.slots {
		if err := h.g.permits.Delete(ctx, s.key, jetstream.LastRevision(s.rev)); err != nil &&
			!errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			h.g.log.Warn("give back permit; it ages out instead", "permit", s.key, "err", err)
		}
	}
	h.slots = nil
}

// reserve advances the rate's theoretical arrival time (GCRA) by one
// interval with compare-and-set and returns when this task may start; or,
// when that is more than MaxReserve away, how long to wait before asking
// again (nothing reserved).
func (g *Gate) reserve(ctx context.Context, key, rate string, burst int) (time.Time, time.Duration, error) {
	r, err := events.CheckRate(rate, burst)
	if err != nil {
		return time.Time{}, 0, err // DecodeTask checked it: not reached
	}
	interval := time.Duration(float64(time.Second) / r.PerSecond())
	tolerance := time.Duration(max(burst, 1)-1) * interval
	for range 50 {
		now := time.Now()
		var rev uint64
		tat := now
		e, err := g.rates.Get(ctx, key)
		switch {
		case err == nil:
			rev = e.Revision()
			if n, perr := strconv.ParseInt(string(e.Value()), 10, 64); perr == nil {
				// A time further ahead than any honest reservation reaches
				// (someone wrote it) is cut back to that reach, in the
				// bucket too: it costs one wait of about MaxReserve.
				tat = time.Unix(0, n)
				if limit := now.Add(tolerance + MaxReserve + interval); tat.After(limit) {
					_, _ = g.rates.Update(ctx, key, []byte(strconv.FormatInt(limit.UnixNano(), 10)), rev)
					continue
				}
			}
		case errors.Is(err, jetstream.ErrKeyNotFound):
		default:
			return time.Time{}, 0, fmt.Errorf("permit: rate %s: %w", key, err)
		}
		if tat.Before(now) {
			tat = now
		}
		start := tat.Add(-tolerance)
		if wait := start.Sub(now); wait > MaxReserve {
			return time.Time{}, wait - MaxReserve, nil
		}
		next := []byte(strconv.FormatInt(tat.Add(interval).UnixNano(), 10))
		if rev == 0 {
			_, err = g.rates.Create(ctx, key, next)
		} else {
			_, err = g.rates.Update(ctx, key, next, rev)
		}
		switch {
		case err == nil:
			return start, 0, nil
		case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			continue // another task moved it: read it again
		default:
			return time.Time{}, 0, fmt.Errorf("permit: rate %s: %w", key, err)
		}
	}
	return time.Time{}, soon, nil
}

// Key prefixes in the buckets.
const (
	keyPrefix   = "k."    // permits and rates of a concurrency key
	typePrefix  = "t."    // permits of a type's cap, rates of a type
	limitPrefix = "type." // a per-type cap in the limits bucket
)
