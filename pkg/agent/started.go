package agent

import (
	"context"
	"sync"
	"time"

	"github.com/baton-dev/baton/pkg/events"
)

// startedWindow is how long an agent gathers the starts of one workflow's
// tasks into one live started event: one message per workflow and window
// instead of one per task, at most events.MaxStartedTasks tasks each. A
// live view hears of a start at most this much later; a task over by then
// is counted done already, and its late start is left out.
const startedWindow = 20 * time.Millisecond

// starts gathers the agent's started events (startedWindow) and sends
// them through send when the window ends, when one names
// MaxStartedTasks tasks, and when run ends.
type starts struct {
	send    func(events.Event)
	kick    chan struct{} // a window starts
	mu      sync.Mutex
	pending map[string]*events.Event // by workflow
	stopped bool                     // run has ended: add sends at once
}

func newStarts(send func(events.Event)) *starts {
	return &starts{send: send, kick: make(chan struct{}, 1), pending: map[string]*events.Event{}}
}

// add notes that task of workflow started on agent at.
func (s *starts) add(workflow, task, agent string, at time.Time) {
	one := events.Event{Workflow: workflow, Kind: events.EventStarted, Task: task, Agent: agent, Time: at}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		s.send(one)
		return
	}
	first := len(s.pending) == 0
	e := s.pending[workflow]
	if e == nil {
		e = new(events.Event) // a copy: one stays off the heap
		*e = one
		s.pending[workflow] = e
	} else {
		e.Tasks = append(e.Tasks, task)
	}
	full := 1+len(e.Tasks) >= events.MaxStartedTasks
	if full {
		delete(s.pending, workflow)
	}
	s.mu.Unlock()
	if full {
		s.send(*e)
	}
	if first {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// flush sends what is gathered.
func (s *starts) flush() {
	s.mu.Lock()
	gathered := s.pending
	s.pending = map[string]*events.Event{}
	s.mu.Unlock()
	for _, e := range gathered {
		s.send(*e)
	}
}

// run sends each window's starts when it ends, until ctx ends; then it
// sends what is left, and later starts go out at once.
func (s *starts) run(ctx context.Context) {
	defer func() {
		s.mu.Lock()
		s.stopped = true
		s.mu.Unlock()
		s.flush()
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
		s.flush()
	}
}
