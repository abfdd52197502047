package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/baton-dev/baton/pkg/events"
)

// Task is what a handler receives: the wire task plus where it runs.
type Task struct {
	events.Task
	Attempt int    // 1 on the first delivery
	Agent   string // the id of the agent running it
	child   childUsage
}

// Bind decodes the task's JSON input into v.
func (t *Task) Bind(v any) error {
	if len(t.Input) == 0 {
		return Permanent(fmt.Errorf("task %s has no input", t.ID))
	}
	if err := json.Unmarshal(t.Input, v); err != nil {
		return Permanent(fmt.Errorf("task %s: input: %w", t.ID, err))
	}
	return nil
}

// Handler does the work of one task type. The returned value becomes the
// result's data (JSON-encoded; a json.RawMessage is used as it is).
type Handler interface {
	Handle(ctx context.Context, t *Task) (any, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, t *Task) (any, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, t *Task) (any, error) { return f(ctx, t) }

// Middleware wraps a Handler with a cross-cutting concern.
type Middleware func(Handler) Handler

// Recover turns a panic in the handler into an error wrapping ErrPanic. The
// agent always applies it, outermost.
func Recover(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, t *Task) (v any, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%w: %v\n%s", ErrPanic, r, debug.Stack())
			}
		}()
		return next.Handle(ctx, t)
	})
}

// CPUBound bounds the handlers it wraps to n running at once across the
// process (n ≤ 0: the number of cores), for work that keeps a core busy. I/O
// bound handlers need no such bound: the agent's concurrency is theirs.
func CPUBound(n int) Middleware {
	if n <= 0 {
		n = runtime.NumCPU()
	}
	sem := make(chan struct{}, n)
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, t *Task) (any, error) {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			defer func() { <-sem }()
			return next.Handle(ctx, t)
		})
	}
}

// Chain applies middleware so that the first one listed is outermost.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}
