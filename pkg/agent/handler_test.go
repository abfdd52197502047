package agent_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/baton-dev/baton/pkg/agent"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	base, limit := 100*time.Millisecond, time.Second
	for _, tc := range []struct {
		attempt int
		full    time.Duration // the un-jittered delay: the result is in [full/2, full]
	}{{1, 100 * time.Millisecond}, {2, 200 * time.Millisecond}, {3, 400 * time.Millisecond}, {4, 800 * time.Millisecond}, {5, time.Second}, {30, time.Second}} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := agent.Backoff(base, limit, tc.attempt)
			if d < tc.full/2 || d > tc.full {
				t.Fatalf("attempt %d: %v outside [%v, %v]", tc.attempt, d, tc.full/2, tc.full)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("attempt %d: only %d distinct delays: no jitter", tc.attempt, len(seen))
		}
	}
	if d := agent.Backoff(0, time.Second, 3); d != 0 {
		t.Errorf("zero base: %v", d)
	}
}

func TestRecover(t *testing.T) {
	t.Parallel()
	h := agent.Recover(agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) { panic("kaboom") }))
	_, err := h.Handle(context.Background(), &agent.Task{})
	if !errors.Is(err, agent.ErrPanic) || !strings.Contains(err.Error(), "kaboom") {
		t.Errorf("got %v, want ErrPanic with the panic value", err)
	}
}

func TestChain_Order(t *testing.T) {
	t.Parallel()
	var trail []string
	mw := func(name string) agent.Middleware {
		return func(next agent.Handler) agent.Handler {
			return agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) {
				trail = append(trail, name)
				return next.Handle(ctx, t)
			})
		}
	}
	h := agent.Chain(agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) {
		trail = append(trail, "handler")
		return nil, nil
	}), mw("outer"), mw("inner"))
	_, _ = h.Handle(context.Background(), &agent.Task{})
	if fmt.Sprint(trail) != "[outer inner handler]" {
		t.Errorf("order %v", trail)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	base := errors.New("down")
	var p *agent.PermanentError
	if err := agent.Permanent(base); !errors.As(err, &p) || !errors.Is(err, base) {
		t.Errorf("Permanent: %v", err)
	}
	var r *agent.RetryAfterError
	if err := agent.RetryAfter(time.Minute, base); !errors.As(err, &r) || r.Delay != time.Minute || !errors.Is(err, base) {
		t.Errorf("RetryAfter: %v", err)
	}
}

func TestConfig_Validate(t *testing.T) {
	t.Parallel()
	for _, c := range []agent.Config{{ID: "a b"}, {Concurrency: -1}} {
		if err := c.Validate(); !errors.Is(err, agent.ErrConfig) {
			t.Errorf("%+v: %v, want ErrConfig", c, err)
		}
	}
	if err := (agent.Config{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
}

// Example shows a handler with middleware; agent.New(nc, cfg), a.Handle
// and a.Run serve it on JetStream.
func Example() {
	greet := agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) {
		var name string
		if err := t.Bind(&name); err != nil {
			return nil, agent.Permanent(err) // bad input: no retry
		}
		return "hello " + name, nil
	})
	logged := func(next agent.Handler) agent.Handler {
		return agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) {
			v, err := next.Handle(ctx, t)
			fmt.Println("task", t.ID, "attempt", t.Attempt, "→", v)
			return v, err
		})
	}
	h := agent.Chain(greet, agent.Recover, logged)
	t := &agent.Task{Attempt: 1}
	t.ID, t.Input = "t-1", []byte(`"baton"`)
	_, _ = h.Handle(context.Background(), t)
	// Output: task t-1 attempt 1 → hello baton
}
