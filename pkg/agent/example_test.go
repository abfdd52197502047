package agent_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/events"
)

// Example wraps a HandlerFunc in middleware. In a service the same handler is
// registered with a.Handle("greet", h) and a.Use(logged) on an agent from
// agent.New(nc, cfg), and a.Run serves it on JetStream; here it is called
// directly.
func Example() {
	greet := agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) {
		var name string
		if err := t.Bind(&name); err != nil {
			return nil, err // Bind's errors are permanent: bad input is not retried
		}
		if name == "" {
			panic("no name")
		}
		return "hello " + name, nil
	})
	logged := func(next agent.Handler) agent.Handler {
		return agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) {
			v, err := next.Handle(ctx, t)
			var perm *agent.PermanentError
			switch {
			case errors.Is(err, agent.ErrPanic):
				fmt.Println(t.ID, "panicked")
			case errors.As(err, &perm):
				fmt.Println(t.ID, "failed for good")
			default:
				fmt.Println(t.ID, "attempt", t.Attempt, "→", v)
			}
			return v, err
		})
	}
	h := agent.Chain(greet, logged, agent.Recover)
	for i, input := range []string{`"baton"`, `42`, `""`} {
		t := &agent.Task{Task: events.Task{ID: fmt.Sprintf("t-%d", i+1), Input: []byte(input)}, Attempt: 1}
		_, _ = h.Handle(context.Background(), t)
	}
	// Output:
	// t-1 attempt 1 → hello baton
	// t-2 failed for good
	// t-3 panicked
}
