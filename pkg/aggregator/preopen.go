package aggregator

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go"
)

// Pre-opening: when the planner says a workflow was created (its created
// event), the aggregator reads the workflow's record and outputs then,
// while its first tasks run, instead of when the first result comes. That
// read was one round trip on every workflow's way to its final output.
//
// It is only a head start: a look-up not done in time, dropped, or older
// than preopenFresh is made again when the first result comes. The event
// can be forged (anyone who may publish events), so at most preopenMost
// look-ups are under way and preopenKeep kept, and each is the read a
// result of that workflow would make anyway.
const (
	preopenMost  = 16
	preopenKeep  = 1024
	preopenFresh = 2 * time.Second
)

// preopened is a look-up made on a created event.
type preopened struct {
	id string
	l  *lookup
	at time.Time
}

// preopener runs the look-ups of created events for Run's loop.
type preopener struct {
	events chan *nats.Msg
	done   chan preopened
	sub    *nats.Subscription
	ctx    context.Context
	cancel context.CancelFunc
	reads  sync.WaitGroup

	running int                  // look-ups under way (the loop's)
	kept    map[string]preopened // done, not yet used (the loop's)
}

// openPreopener subscribes to the created events; nil (no head start) if
// it cannot. Its stop ends the look-ups under way and waits for them.
func (a *Aggregator) openPreopener(ctx context.Context) *preopener {
	p := &preopener{events: make(chan *nats.Msg, 256), done: make(chan preopened, preopenMost), kept: map[string]preopened{}}
	var err error
	if p.sub, err = a.nc.ChanSubscribe(a.subj.Event("*", events.EventCreated), p.events); err != nil {
		a.log.Warn("created events: no early look-up of new workflows", "err", err)
		return nil
	}
	p.ctx, p.cancel = context.WithCancel(ctx)
	return p
}

func (p *preopener) stop() {
	_ = p.sub.Unsubscribe()
	p.cancel()
	p.reads.Wait()
}

// onCreated starts the look-up of the workflow a created event names,
// unless it is open or finished already, or enough are under way or kept.
func (a *Aggregator) onCreated(p *preopener, m *nats.Msg) {
	id, ok := strings.CutPrefix(m.Subject, strings.TrimSuffix(a.subj.Event("", ""), "."))
	id, ok2 := strings.CutSuffix(id, "."+events.EventCreated)
	if !ok || !ok2 || !events.ValidToken(id) || a.replaying || a.wfs[id] != nil || p.running >= preopenMost || len(p.kept) >= preopenKeep {
		return
	}
	if _, done := a.finalized[id]; done {
		return
	}
	if _, kept := p.kept[id]; kept {
		return
	}
	p.running++
	p.reads.Go(func() {
		l := a.lookup(p.ctx, id)
		select {
		case p.done <- preopened{id: id, l: l, at: time.Now()}:
		case <-p.ctx.Done():
		}
	})
}

// onPreopened keeps a finished look-up for the workflow's first result.
func (p *preopener) onPreopened(d preopened) {
	p.running--
	p.kept[d.id] = d
}

// take returns the look-up kept for id if it is fresh, and forgets it.
func (p *preopener) take(id string) *lookup {
	if p == nil {
		return nil
	}
	d, ok := p.kept[id]
	if !ok {
		return nil
	}
	delete(p.kept, id)
	if time.Since(d.at) > preopenFresh {
		return nil
	}
	return d.l
}

// expire forgets look-ups kept past preopenFresh (a workflow whose first
// result is slow to come is looked up again then).
func (p *preopener) expire() {
	if p == nil {
		return
	}
	for id, d := range p.kept {
		if time.Since(d.at) > preopenFresh {
			delete(p.kept, id)
		}
	}
}
