package agent

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// An idle agent leaves a pull of one task waiting on its lanes (a
// standby), so that a task stored there comes to it at once: no wake-up
// from the planner and no fetch in between. A retry coming due or a
// redelivery comes the same way, which no wake-up announces.
//
// Each standby holds one free slot until it ends, so a task it brings has
// its slot: an agent never runs more tasks than its concurrency, and a
// delivered task starts at once, as a fetched one does (a pause taken
// before the delivery holds it, as it holds a fetch). An idle agent arms
// at most standbyMost lanes and no more than it has free slots, the lanes
// that last brought tasks first, then by priority. Once it has work and
// its standbys hold the slots that work needs, it cancels them: the
// server is told the pull has no taker, and a task it sent before that is
// still run. A standby ends with its task, when the server lets the pull
// expire (standbyWait), or after that wait and a grace if the server's
// answer was lost with the connection; a cancelled one, once the server
// has seen the cancellation, or after a grace if the connection closed.

// standbyWait is how long a standby's pull waits before the server ends
// it; an idle agent then arms it again. A variable for a test that must
// not see it end.
var standbyWait = time.Second

// standbyMost is how many lanes an idle agent arms at most: the lanes
// most likely to bring its next task (those that last brought tasks or
// had a wake-up). Each standby costs a subscription and a request, and a
// busy agent that wants their slots back cancels them: a few keep that
// cheap when an agent goes idle for a moment between bursts. With
// standbyMost armed, a standby on a lane less recently active than an
// idle one gives way to it.
const standbyMost = 4

// standbyGrace is how long past standbyWait a standby waits for the
// server's end of its pull before giving it up.
const standbyGrace = time.Second

// standby is one lane's waiting pull.
type standby struct {
	l      *lane
	sub    *nats.Subscription
	msgs   chan *nats.Msg
	closed <-chan nats.SubStatus
	cancel chan struct{}
	once   sync.Once
	ended  sync.Once
}

// stop cancels the standby; it ends once the server has seen that.
func (s *standby) stop() { s.once.Do(func() { close(s.cancel) }) }

// standbys are the fetch loop's standbys; it stops them all (stopAll)
// before it returns.
type standbys struct {
	mu  sync.Mutex
	on  map[*lane]*standby
	run sync.WaitGroup
}

func newStandbys() *standbys { return &standbys{on: map[*lane]*standby{}} }

// cancelAll cancels every standby; they end in about a round trip.
func (sb *standbys) cancelAll() {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	for _, s := range sb.on {
		s.stop()
	}
}

// remove forgets s once it has ended, unless its lane was armed again
// meanwhile: the new standby stays, for cancelAll to find.
func (sb *standbys) remove(s *standby) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.on[s.l] == s {
		delete(sb.on, s.l)
	}
}

// stopAll cancels every standby and waits for them to end; a task one
// brought meanwhile has been started.
func (sb *standbys) stopAll() {
	sb.cancelAll()
	sb.run.Wait()
}

// arm leaves a standby on idle lanes, at most free of them. With
// standbyMost armed already, the standby on the lane least recently
// active gives way if the first lane left unarmed was active more
// recently: it ends in about a round trip, and the next arm takes that
// lane (else an agent whose standbys sit on lanes that never bring tasks
// fetches at every wake-up of the one that does).
func (a *Agent) arm(work context.Context, lanes []*lane, free int, tasks *sync.WaitGroup, sb *standbys) {
	now := time.Now()
	var idle []*lane
	for _, l := range lanes {
		if !l.armed.Load() && !l.maybe.Load() && !l.hold.held(now) {
			idle = append(idle, l)
		}
	}
	// lanes is in priority order: the stable sort keeps it among lanes
	// alike.
	slices.SortStableFunc(idle, func(x, y *lane) int {
		tx, ty := x.lastActive.Load(), y.lastActive.Load()
		switch {
		case tx > ty:
			return -1
		case tx < ty:
			return 1
		}
		return 0
	})
	room := standbyMost - int(a.reserved.Load())
	n := max(0, min(len(idle), free, room))
	for _, l := range idle[:n] {
		if err := a.armLane(work, l, tasks, sb); err != nil {
			l.fetching.fail(a.log, "waiting for tasks", err, "lane", streams.LaneConsumerOn(l.typ, l.tok))
			return
		}
	}
	if n < len(idle) && n < free && n == max(room, 0) {
		sb.yieldTo(idle[n])
	}
}

// yieldTo cancels the standby whose lane was active least recently, if l
// was active more recently.
func (sb *standbys) yieldTo(l *lane) {
	last := l.lastActive.Load()
	sb.mu.Lock()
	defer sb.mu.Unlock()
	var stale *standby
	for _, s := range sb.on {
		if t := s.l.lastActive.Load(); t < last && (stale == nil || t < stale.l.lastActive.Load()) {
			stale = s
		}
	}
	if stale != nil {
		stale.stop()
	}
}

// armLane sends one lane's standby pull and starts what serves it.
func (a *Agent) armLane(work context.Context, l *lane, tasks *sync.WaitGroup, sb *standbys) error {
	s := &standby{l: l, msgs: make(chan *nats.Msg, 4), cancel: make(chan struct{})}
	inbox := a.nc.NewInbox()
	var err error
	if s.sub, err = a.nc.ChanSubscribe(inbox, s.msgs); err != nil {
		return err
	}
	s.closed = s.sub.StatusChanged(nats.SubscriptionClosed)
	req, _ := json.Marshal(struct {
		Batch   int           `json:"batch"`
		Expires time.Duration `json:"expires"`
	}{1, standbyWait})
	info := l.cons.CachedInfo()
	// Held before the request goes: the task it brings has its slot.
	a.reserved.Add(1)
	l.armed.Store(true)
	if err := a.nc.PublishRequest(streams.PullSubject(info.Stream, info.Name), inbox, req); err != nil {
		_ = s.sub.Unsubscribe()
		a.endStandby(s, nil)
		return err
	}
	sb.mu.Lock()
	sb.on[l] = s
	sb.mu.Unlock()
	sb.run.Go(func() { a.serveStandby(work, s, tasks, sb) })
	return nil
}

// serveStandby waits for what the server sends a standby: its task, which
// it starts, or the end of the pull; or for its cancellation, after which
// it takes what the server sent before it saw that.
func (a *Agent) serveStandby(work context.Context, s *standby, tasks *sync.WaitGroup, sb *standbys) {
	defer sb.remove(s)
	expiry := time.NewTimer(standbyWait + standbyGrace)
	defer expiry.Stop()
	cancel := s.cancel
	draining := false
	// drain tells the server the pull has no taker; what it sent before
	// it saw that still comes, then closed.
	drain := func() {
		draining, cancel = true, nil
		if s.sub.Drain() != nil {
			_ = s.sub.Unsubscribe()
		}
		expiry.Reset(standbyGrace)
	}
	// last takes what came before the end.
	last := func() {
		for {
			select {
			case m := <-s.msgs:
				if a.standbyMsg(work, s, m, tasks) {
					return
				}
			default:
				a.endStandby(s, nil)
				return
			}
		}
	}
	for {
		select {
		case m := <-s.msgs:
			if done := a.standbyMsg(work, s, m, tasks); done {
				_ = s.sub.Unsubscribe()
				return
			}
		case <-cancel:
			drain()
		case <-expiry.C:
			if draining {
				// The drain's end never came (the connection closed):
				// nothing more can come.
				last()
				return
			}
			drain()
		case <-s.closed:
			last()
			return
		}
	}
}

// standbyMsg handles one message of a standby's pull; done when the pull
// has ended (its task came, or the server ended it).
func (a *Agent) standbyMsg(work context.Context, s *standby, m *nats.Msg, tasks *sync.WaitGroup) (done bool) {
	if len(m.Data) == 0 && m.Header.Get("Status") != "" {
		if m.Header.Get("Status") == "100" { // a heartbeat
			return false
		}
		// 408 (expired), 409 (the consumer was deleted, its leader
		// changed, …): the pull is over.
		a.endStandby(s, nil)
		return true
	}
	task := pulled{m}
	a.endStandby(s, func() {
		s.l.brought(task)
		a.take(work, s.l, task, tasks)
	})
	return true
}

// brought records that l's standby brought task message m: the lane is
// active, and worth a fetch if the server counted more tasks pending
// behind m. Set either way: a wake-up of this very task, handled while the
// standby waited, marked the lane, and m's count settles it.
func (l *lane) brought(m jetstream.Msg) {
	l.maybe.Store(morePending(m))
	l.lastActive.Store(time.Now().UnixNano())
}

// endStandby gives a standby's slot back, after start (if not nil) has
// started the task it brought, and nudges the fetch loop.
func (a *Agent) endStandby(s *standby, start func()) {
	s.ended.Do(func() {
		if start != nil {
			start()
		}
		s.l.armed.Store(false)
		a.reserved.Add(-1)
		a.slotFreed()
	})
}

// pulled is a task message a standby's pull brought, as the jetstream
// package's messages are.
type pulled struct{ m *nats.Msg }

var _ jetstream.Msg = pulled{}

func (p pulled) Data() []byte         { return p.m.Data }
func (p pulled) Headers() nats.Header { return p.m.Header }
func (p pulled) Subject() string      { return p.m.Subject }
func (p pulled) Reply() string        { return p.m.Reply }
func (p pulled) Ack() error           { return ackErr(p.m.Ack()) }
func (p pulled) Nak() error           { return ackErr(p.m.Nak()) }
func (p pulled) InProgress() error    { return ackErr(p.m.InProgress()) }
func (p pulled) Term() error          { return ackErr(p.m.Term()) }

// TermWithReason terminates the delivery, the reason in the
// acknowledgement as the server reads it.
func (p pulled) TermWithReason(reason string) error {
	return p.m.Respond([]byte("+TERM " + reason))
}

func (p pulled) DoubleAck(ctx context.Context) error {
	return ackErr(p.m.AckSync(nats.Context(ctx)))
}

func (p pulled) NakWithDelay(delay time.Duration) error {
	return ackErr(p.m.NakWithDelay(delay))
}

func (p pulled) Metadata() (*jetstream.MsgMetadata, error) {
	md, err := p.m.Metadata()
	if err != nil {
		return nil, err
	}
	return &jetstream.MsgMetadata{
		Sequence:     jetstream.SequencePair{Consumer: md.Sequence.Consumer, Stream: md.Sequence.Stream},
		NumDelivered: md.NumDelivered, NumPending: md.NumPending, Timestamp: md.Timestamp,
		Stream: md.Stream, Consumer: md.Consumer, Domain: md.Domain,
	}, nil
}

// ackErr gives an acknowledgement's error as the jetstream package does.
func ackErr(err error) error {
	if errors.Is(err, nats.ErrMsgAlreadyAckd) {
		return jetstream.ErrMsgAlreadyAckd
	}
	return err
}
