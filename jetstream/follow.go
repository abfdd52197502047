package streams

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// FollowConfig says what to follow. Exactly one start may be set; with
// none, the follow starts at the end of the stream (new messages only).
type FollowConfig struct {
	Stream string
	Filter string // subject filter; empty: the whole stream
	// FromSeq starts at this stream sequence (replay from there).
	FromSeq uint64
	// FromTime starts at the first message stored at or after this time.
	FromTime time.Time
	// Buffer is the capacity of C; default 4096.
	Buffer int
}

// Follower replays a stream from a start and then follows it live, with an
// ordered consumer (no server-side state, recreated by the library after a
// reconnect or a gap). It is how the planner, the aggregator and the
// monitor rebuild their state after a restart and then carry on. A
// watchdog recreates the consumer itself should it stall (see watch).
type Follower struct {
	// C delivers the messages in stream order. It is never closed: select on
	// it beside your own stop signal.
	C <-chan jetstream.Msg
	// Backlog is how many messages matched at the start: 0 means there is
	// nothing to replay and the follower is caught up at once.
	Backlog uint64

	js        jetstream.JetStream
	stream    string
	st        jetstream.Stream // looked up by the watchdog's first check
	occ       jetstream.OrderedConsumerConfig
	ch        chan jetstream.Msg
	opts      []jetstream.PullConsumeOpt
	mu        sync.Mutex // guards cons and cc (the watchdog replaces them)
	cons      jetstream.Consumer
	cc        jetstream.ConsumeContext
	done      chan struct{}
	stop      func()
	watching  sync.WaitGroup
	delivered atomic.Uint64 // stream sequence of the last message put on C
	restarts  atomic.Int64
}

// Liveness are the pull options of every long-lived consume: each pull
// expires after 5 s and the server sends a heartbeat every second, so a
// consume whose pull was lost (its consumer's leader node died, a
// partition) notices within 2 s and pulls again. nats.go's defaults (30 s
// pulls, 15 s heartbeats) left a planner deaf to new jobs for 30 s after
// such a loss.
func Liveness() []jetstream.PullConsumeOpt {
	return []jetstream.PullConsumeOpt{jetstream.PullExpiry(5 * time.Second), jetstream.PullHeartbeat(time.Second)}
}

// StallCheck is how often a follower's watchdog compares what it delivered
// with what the stream holds for its filter; two checks in a row with
// messages waiting and none delivered make it recreate its consumer. At
// 5 s, a planner whose results consumer went silent with a node heard of
// a 3-task job's results 17 s late.
const StallCheck = 2 * time.Second

// ErrDrainTimeout is returned by Drain when the stream's messages did not
// all arrive in time.
var ErrDrainTimeout = errors.New("follow: drain timed out")

// Follow starts following. The caller must call Stop.
func Follow(ctx context.Context, js jetstream.JetStream, fc FollowConfig) (*Follower, error) {
	occ := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy}
	if fc.Filter != "" {
		occ.FilterSubjects = []string{fc.Filter}
	}
	switch {
	case fc.FromSeq > 0:
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, fc.FromSeq
	case !fc.FromTime.IsZero():
		from := fc.FromTime
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &from
	}
	if fc.Buffer <= 0 {
		fc.Buffer = 4096
	}
	ch := make(chan jetstream.Msg, fc.Buffer)
	f := &Follower{C: ch, ch: ch, js: js, stream: fc.Stream, occ: occ, done: make(chan struct{}),
		opts: append(Liveness(), jetstream.PullMaxMessages(min(fc.Buffer, 2048)))}
	cons, err := js.OrderedConsumer(ctx, fc.Stream, occ)
	if err != nil {
		return nil, fmt.Errorf("follow %s: %w", fc.Stream, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("follow %s: %w", fc.Stream, err)
	}
	f.Backlog = info.NumPending
	f.delivered.Store(info.Delivered.Stream) // where the consumer starts
	if err := f.consume(cons); err != nil {
		return nil, fmt.Errorf("follow %s: %w", fc.Stream, err)
	}
	f.stop = sync.OnceFunc(func() {
		close(f.done)
		f.watching.Wait()
		f.mu.Lock()
		defer f.mu.Unlock()
		f.cc.Stop()
		<-f.cc.Closed()
	})
	f.watching.Go(f.watch)
	return f, nil
}

// consume starts delivering cons's messages onto C, skipping any already
// delivered (a recreated consumer may repeat the last one).
func (f *Follower) consume(cons jetstream.Consumer) error {
	cc, err := cons.Consume(func(m jetstream.Msg) {
		meta, err := m.Metadata()
		if err == nil && meta.Sequence.Stream <= f.delivered.Load() && f.restarts.Load() > 0 {
			return // delivered by the consumer this one replaced
		}
		if err == nil {
			m = parsed{Msg: m, meta: meta} // read once, not again by each reader
		}
		select {
		case f.ch <- m:
			if err == nil {
				f.delivered.Store(meta.Sequence.Stream)
			}
		case <-f.done:
		}
	}, f.opts...)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.cons, f.cc = cons, cc
	f.mu.Unlock()
	return nil
}

// watch is the follower's watchdog. nats.go recreates an ordered consumer
// whose node went away, but after a node loss one was seen to stay silent
// for good, leaving an aggregator deaf. Every StallCheck, watch compares
// the last sequence delivered with the last one stored that matches the
// filter; when messages are waiting, C is empty (so its reader is not the
// holdup) and nothing was delivered since the previous check, it
// recreates the consumer from the next sequence.
func (f *Follower) watch() {
	t := time.NewTicker(StallCheck)
	defer t.Stop()
	var last uint64
	stalled := false
	for {
		select {
		case <-f.done:
			return
		case <-t.C:
		}
		d := f.delivered.Load()
		stored, err := f.lastStored()
		waiting := err == nil && stored > d && len(f.ch) == 0
		if !waiting || d != last {
			last, stalled = d, false
			continue
		}
		if !stalled {
			stalled = true // once more, to be sure
			continue
		}
		f.restart(d)
		last, stalled = f.delivered.Load(), false
	}
}

// lastStored returns the sequence of the last message stored that the
// follower's filter matches (the stream's last one without a filter; 0 if
// none matches).
func (f *Follower) lastStored() (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), StallCheck)
	defer cancel()
	if f.st == nil {
		st, err := f.js.Stream(ctx, f.stream)
		if err != nil {
			return 0, err
		}
		f.st = st
	}
	if len(f.occ.FilterSubjects) == 0 {
		info, err := f.st.Info(ctx)
		if err != nil {
			return 0, err
		}
		return info.State.LastSeq, nil
	}
	m, err := f.st.GetLastMsgForSubject(ctx, f.occ.FilterSubjects[0])
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}

// Restarts is how often the watchdog has recreated the consumer.
func (f *Follower) Restarts() int64 { return f.restarts.Load() }

// restart replaces the consumer with one that starts after seq.
func (f *Follower) restart(seq uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), StallCheck)
	defer cancel()
	occ := f.occ
	occ.DeliverPolicy, occ.OptStartSeq, occ.OptStartTime = jetstream.DeliverByStartSequencePolicy, seq+1, nil
	cons, err := f.js.OrderedConsumer(ctx, f.stream, occ)
	if err != nil {
		return // tried again at the next check
	}
	f.mu.Lock()
	old := f.cc
	f.mu.Unlock()
	old.Stop()
	select {
	case <-old.Closed():
	case <-f.done:
		return
	}
	f.restarts.Add(1)
	_ = f.consume(cons)
}

// Delivered is the stream sequence of the last message put on C (or, before
// any, the one before where the follower started): every message at or
// below it is stored, so a message stored from now on has a higher one.
func (f *Follower) Delivered() uint64 { return f.delivered.Load() }

// Stop ends the follow and waits until no more messages are delivered. It
// is safe to call twice.
func (f *Follower) Stop() { f.stop() }

// Drain hands every matching message stored until now to handle, in
// order, and returns once they all have been: a service that stops calls it
// so that what is already stored is handled before it goes, not replayed by
// its successor. It returns ErrDrainTimeout after timeout, or ctx's error.
func (f *Follower) Drain(ctx context.Context, timeout time.Duration, handle func(jetstream.Msg)) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case m := <-f.C:
			handle(m)
			continue
		default:
		}
		// Nothing waiting on C: done if the server has sent every matching
		// message and the last one it sent is on C or handled.
		f.mu.Lock()
		cons := f.cons
		f.mu.Unlock()
		info, err := cons.Info(ctx)
		if err == nil && info.NumPending == 0 && f.delivered.Load() >= info.Delivered.Stream {
			break
		}
		select {
		case m := <-f.C:
			handle(m)
		case <-tick.C:
		case <-deadline.C:
			return ErrDrainTimeout
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for {
		select {
		case m := <-f.C:
			handle(m)
		default:
			return nil
		}
	}
}

// CaughtUp reports whether m was the last matching message of the stream
// when it was delivered: a replay is complete once m has been handled.
func CaughtUp(m jetstream.Msg) bool {
	meta, err := m.Metadata()
	return err != nil || meta.NumPending == 0
}

// WorkContext returns the context a service's loop hands its work: unlike
// ctx, it does not end the moment ctx does, but grace later, so that a
// result half applied or an output half published when the service is
// told to stop is finished, not cut. The caller calls cancel when it
// returns.
func WorkContext(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(grace, cancelWork) })
	return work, func() { stop(); cancelWork() }
}

// StopWatch stops a key-value watch and takes what it still delivers
// until it closes its channel: the watch's subscription blocks while it
// hands an entry over, so without this its goroutine could stay blocked.
func StopWatch(w jetstream.KeyWatcher) {
	_ = w.Stop()
	for range w.Updates() {
	}
}

// parsed is a message whose metadata (parsed from its reply subject) is
// read already.
type parsed struct {
	jetstream.Msg
	meta *jetstream.MsgMetadata
}

func (m parsed) Metadata() (*jetstream.MsgMetadata, error) { return m.meta, nil }
