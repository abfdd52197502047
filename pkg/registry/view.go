package registry

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go/jetstream"
)

// View follows the registry and answers from memory what List reads from
// the server: a planner asks which agents are live for every job, and a
// List is a consumer created, read and deleted, about a millisecond of the
// planner's loop and of the server's time. An entry counts while it is
// younger than the bucket's TTL (the server drops it then without a delete
// the watch would see).
type View struct {
	reg *Registry
	ttl time.Duration

	mu     sync.Mutex
	agents map[string]viewEntry
	synced bool // every stored entry was read since the watch (re)started
}

type viewEntry struct {
	info    events.AgentInfo
	written time.Time // by the server's clock
}

// NewView returns a view of reg whose entries expire ttl after their last
// write (streams.Config.AgentTTL); Run fills it.
func NewView(reg *Registry, ttl time.Duration) *View {
	return &View{reg: reg, ttl: ttl, agents: map[string]viewEntry{}}
}

// Run follows the registry until ctx ends, then returns. A watch that
// fails or ends is started again after a second; meanwhile List says the
// view is not synced.
func (v *View) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if w, err := v.reg.Watch(ctx); err == nil {
			v.follow(ctx, w)
		}
		v.mu.Lock()
		v.synced = false
		clear(v.agents)
		v.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (v *View) follow(ctx context.Context, w jetstream.KeyWatcher) {
	defer func() { _ = w.Stop() }()
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case <-ctx.Done():
			return
		case e, ok = <-w.Updates():
			if !ok {
				return
			}
		}
		v.mu.Lock()
		switch {
		case e == nil: // the stored entries are read
			v.synced = true
		case e.Operation() != jetstream.KeyValuePut:
			delete(v.agents, e.Key())
		default:
			if a, ok := Decode(e.Key(), e.Value()); ok {
				v.agents[a.ID] = viewEntry{info: a, written: e.Created()}
			} else {
				delete(v.agents, e.Key())
			}
		}
		v.mu.Unlock()
	}
}

// List is the registry's entries, sorted by id, as Registry.List returns
// them; ok is false (and the list nil) while the view is not synced.
func (v *View) List() (agents []events.AgentInfo, ok bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.synced {
		return nil, false
	}
	for _, e := range v.agents {
		if time.Since(e.written) < v.ttl {
			agents = append(agents, e.info)
		}
	}
	slices.SortFunc(agents, func(x, y events.AgentInfo) int { return strings.Compare(x.ID, y.ID) })
	return agents, true
}
