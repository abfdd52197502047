package agent

import (
	"context"
	"sync"
	"time"

	"github.com/baton-dev/baton/pkg/events"
)

// startedWindow is how long an agent gathers starts after one it sent at
// once: the first start after a quiet window goes out as it happens (a
// live view sees a task start at once when few run), the starts that
// follow it within the window go out together when it ends, one event per
// workflow, at most events.MaxStartedTasks tasks each. Under load that is
// two messages per window instead of one per task; a task over before its
// start is sent is counted done already, and its late start is left out.
const startedWindow = 20 * time.Millisecond

// starts sends the agent's started events (startedWindow) through send:
// the first of a window at once, the rest when the window ends, when one
// names MaxStartedTasks tasks, and when run ends.
type starts struct {
	send    func(events.Event)
	kick    chan struct{} // a window opens
	mu      sync.Mutex
	pending map[string]*events.Event // by workflow
	open    bool                     // a window runs: starts are gathered
	stopped bool                     // run has ended: add sends at once
}

func newStarts(send func(events.Event)) *starts {
	return &starts{send: send, kick: make(chan struct{}, 1), pending: map[string]*events.Event{}}
}

// add notes that task of workflow started on agent at.
func (s *starts) add(workflow, task, agent string, at time.Time) {
	one := events.Event{Workflow: workflow, Kind: events.EventStarted, Task: task, Agent: agent, Time: at}
	s.mu.Lock()
	if s.stopped || !s.open {
		opens := !s.stopped
		s.open = opens
		s.mu.Unlock()
		s.send(one)
		if opens {
			select {
			case s.kick <- struct{}{}: // run takes it and ends the window
			default: // cannot happen: a window opens only after run closed the last
			}
		}
		return
	}
	e := s.pending[workflow]
	if e == nil {
		e = new(events.Event) // a copy: one stays off the heap
		*e = one
		s.pending[workflow] = e
	} else {
		// The event's time is its latest start: a monitor keeps a task
		// its agent's registry entry does not list if it started after
		// the entry was written, and none of these started later.
		e.Tasks = append(e.Tasks, task)
		if at.After(e.Time) {
			e.Time = at
		}
	}
	full := 1+len(e.Tasks) >= events.MaxStartedTasks
	if full {
		delete(s.pending, workflow)
	}
	s.mu.Unlock()
	if full {
		s.send(*e)
	}
}

// take returns what is gathered; end also closes the window.
func (s *starts) take(end bool) map[string]*events.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	gathered := s.pending
	s.pending = map[string]*events.Event{}
	if end {
		s.open = false
	}
	return gathered
}

func (s *starts) sendAll(gathered map[string]*events.Event) {
	for _, e := range gathered {
		s.send(*e)
	}
}

// flush sends what is gathered; a window that runs goes on.
func (s *starts) flush() { s.sendAll(s.take(false)) }

// run ends each window startedWindow after it opened, sending what it
// gathered, until ctx ends; then it sends what is left, and later starts
// go out at once.
func (s *starts) run(ctx context.Context) {
	defer func() {
		s.mu.Lock()
		s.stopped = true
		s.mu.Unlock()
		s.sendAll(s.take(true))
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		}
		t := time.NewTimer(startedWindow)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		s.sendAll(s.take(true))
	}
}
