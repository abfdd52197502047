package streams

import (
	"context"
	"fmt"
	"sync"
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
// monitor rebuild their state after a restart and then carry on.
type Follower struct {
	// C delivers the messages in stream order. It is never closed: select on
	// it beside your own stop signal.
	C <-chan jetstream.Msg
	// Backlog is how many messages matched at the start: 0 means there is
	// nothing to replay and the follower is caught up at once.
	Backlog uint64

	cc   jetstream.ConsumeContext
	done chan struct{}
	stop func()
}

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
	cons, err := js.OrderedConsumer(ctx, fc.Stream, occ)
	if err != nil {
		return nil, fmt.Errorf("follow %s: %w", fc.Stream, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("follow %s: %w", fc.Stream, err)
	}
	if fc.Buffer <= 0 {
		fc.Buffer = 4096
	}
	ch := make(chan jetstream.Msg, fc.Buffer)
	f := &Follower{C: ch, Backlog: info.NumPending, done: make(chan struct{})}
	f.cc, err = cons.Consume(func(m jetstream.Msg) {
		select {
		case ch <- m:
		case <-f.done:
		}
	}, jetstream.PullMaxMessages(min(fc.Buffer, 2048)))
	if err != nil {
		return nil, fmt.Errorf("follow %s: %w", fc.Stream, err)
	}
	f.stop = sync.OnceFunc(func() {
		close(f.done)
		f.cc.Stop()
		<-f.cc.Closed()
	})
	return f, nil
}

// Stop ends the follow and waits until no more messages are delivered. It
// is safe to call twice.
func (f *Follower) Stop() { f.stop() }

// CaughtUp reports whether m was the last matching message of the stream
// when it was delivered: a replay is complete once m has been handled.
func CaughtUp(m jetstream.Msg) bool {
	meta, err := m.Metadata()
	return err != nil || meta.NumPending == 0
}
