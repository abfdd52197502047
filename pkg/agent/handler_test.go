package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/events"
)

func TestRecover(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		panicWith any
		mention   string
	}{
		{name: "string", panicWith: "kaboom", mention: "kaboom"},
		{name: "error", panicWith: errors.New("bad state"), mention: "bad state"},
		{name: "runtime error", panicWith: nil, mention: "index out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := agent.Recover(agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) {
				if tc.panicWith == nil {
					var s []int
					_ = s[len(s)+1] // a runtime panic
				}
				panic(tc.panicWith)
			}))
			v, err := h.Handle(context.Background(), &agent.Task{})
			if !errors.Is(err, agent.ErrPanic) {
				t.Fatalf("error %v, want one wrapping ErrPanic", err)
			}
			if v != nil {
				t.Errorf("value %v, want nil", v)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not name the panic value %q", err, tc.mention)
			}
			var perm *agent.PermanentError
			if errors.As(err, &perm) {
				t.Errorf("a panic is not a permanent error: %v", err)
			}
		})
	}
}

func TestRecover_PassesThrough(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	for _, tc := range []struct {
		name    string
		value   any
		err     error
		wantErr error
	}{
		{name: "value", value: 42},
		{name: "error", err: boom, wantErr: boom},
		{name: "permanent error", err: agent.Permanent(boom), wantErr: boom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := agent.Recover(agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) { return tc.value, tc.err }))
			v, err := h.Handle(context.Background(), &agent.Task{})
			if v != tc.value || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("got %v, %v; want %v, %v", v, err, tc.value, tc.wantErr)
			}
			if errors.Is(err, agent.ErrPanic) {
				t.Errorf("error %v wraps ErrPanic without a panic", err)
			}
		})
	}
}

// trace returns a middleware that logs name before and after the handler.
func trace(mu *sync.Mutex, log *[]string, name string) agent.Middleware {
	return func(next agent.Handler) agent.Handler {
		return agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) {
			mu.Lock()
			*log = append(*log, name+">")
			mu.Unlock()
			v, err := next.Handle(ctx, t)
			mu.Lock()
			*log = append(*log, "<"+name)
			mu.Unlock()
			return v, err
		})
	}
}

func TestChain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mw   []string
		want []string
	}{
		{name: "none", mw: nil, want: []string{"handler"}},
		{name: "one", mw: []string{"a"}, want: []string{"a>", "handler", "<a"}},
		{name: "first listed is outermost", mw: []string{"outer", "middle", "inner"},
			want: []string{"outer>", "middle>", "inner>", "handler", "<inner", "<middle", "<outer"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var log []string
			var mws []agent.Middleware
			for _, name := range tc.mw {
				mws = append(mws, trace(&mu, &log, name))
			}
			h := agent.Chain(agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) {
				mu.Lock()
				log = append(log, "handler")
				mu.Unlock()
				return "done", nil
			}), mws...)
			v, err := h.Handle(context.Background(), &agent.Task{})
			if v != "done" || err != nil {
				t.Errorf("got %v, %v; want done, nil", v, err)
			}
			if !slices.Equal(log, tc.want) {
				t.Errorf("order %q, want %q", log, tc.want)
			}
		})
	}
}

func TestChain_RecoverOutermost(t *testing.T) {
	t.Parallel()
	// With Recover first, a panic in a later middleware is caught too.
	panicky := func(agent.Handler) agent.Handler {
		return agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) { panic("in middleware") })
	}
	h := agent.Chain(agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) { return nil, nil }), agent.Recover, panicky)
	if _, err := h.Handle(context.Background(), &agent.Task{}); !errors.Is(err, agent.ErrPanic) {
		t.Errorf("error %v, want one wrapping ErrPanic", err)
	}
}

func TestChain_ShortCircuit(t *testing.T) {
	t.Parallel()
	deny := errors.New("denied")
	guard := func(next agent.Handler) agent.Handler {
		return agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) {
			if t.Attempt > 1 {
				return nil, deny
			}
			return next.Handle(ctx, t)
		})
	}
	calls := 0
	h := agent.Chain(agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) {
		calls++
		return "ran", nil
	}), guard)
	for _, tc := range []struct {
		attempt   int
		wantErr   error
		wantCalls int
	}{{attempt: 1, wantCalls: 1}, {attempt: 2, wantErr: deny, wantCalls: 1}} {
		_, err := h.Handle(context.Background(), &agent.Task{Attempt: tc.attempt})
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) || calls != tc.wantCalls {
			t.Errorf("attempt %d: error %v, calls %d; want %v, %d", tc.attempt, err, calls, tc.wantErr, tc.wantCalls)
		}
	}
}

// gate is a handler that reports when it starts and runs until released.
type gate struct {
	entered chan struct{}
	release chan struct{}
}

func newGate(n int) *gate {
	return &gate{entered: make(chan struct{}, n), release: make(chan struct{})}
}

func (g *gate) Handle(ctx context.Context, _ *agent.Task) (any, error) {
	g.entered <- struct{}{}
	select {
	case <-g.release:
		return "released", nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestCPUBound(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		n     int
		slots int
	}{
		{name: "one", n: 1, slots: 1},
		{name: "three", n: 3, slots: 3},
		{name: "zero means the cores", n: 0, slots: runtime.NumCPU()},
		{name: "negative means the cores", n: -1, slots: runtime.NumCPU()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newGate(tc.slots + 2)
			// One middleware value bounds every handler it wraps, together.
			bound := agent.CPUBound(tc.n)
			h1, h2 := bound(g), bound(g)
			results := make(chan error, tc.slots)
			for i := range tc.slots {
				h := []agent.Handler{h1, h2}[i%2]
				go func() {
					_, err := h.Handle(context.Background(), &agent.Task{})
					results <- err
				}()
			}
			for range tc.slots {
				<-g.entered // every slot is taken
			}
			// One more must wait: with its context cancelled it gives up
			// without running.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if _, err := h2.Handle(ctx, &agent.Task{}); !errors.Is(err, context.Canceled) {
				t.Errorf("handler past the bound: %v, want context.Canceled", err)
			}
			select {
			case <-g.entered:
				t.Fatal("a handler ran past the bound")
			default:
			}
			close(g.release)
			for range tc.slots {
				if err := <-results; err != nil {
					t.Errorf("bounded handler: %v", err)
				}
			}
			// The slots are free again.
			if v, err := h1.Handle(context.Background(), &agent.Task{}); v != "released" || err != nil {
				t.Errorf("after release: %v, %v", v, err)
			}
		})
	}
}

func TestTask_Bind(t *testing.T) {
	t.Parallel()
	type in struct {
		Name string `json:"name"`
		N    int    `json:"n"`
	}
	for _, tc := range []struct {
		name      string
		input     string
		want      in
		permanent bool
		cause     any // a pointer to the error type the permanent error wraps
	}{
		{name: "object", input: `{"name":"x","n":2}`, want: in{Name: "x", N: 2}},
		{name: "unknown fields ignored", input: `{"name":"x","other":true}`, want: in{Name: "x"}},
		{name: "no input", input: ``, permanent: true},
		{name: "malformed", input: `{"name":`, permanent: true, cause: new(*json.SyntaxError)},
		{name: "wrong type", input: `{"n":"two"}`, permanent: true, cause: new(*json.UnmarshalTypeError)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			task := &agent.Task{Task: events.Task{ID: "t-1", Input: json.RawMessage(tc.input)}}
			var got in
			err := task.Bind(&got)
			var perm *agent.PermanentError
			if isPerm := errors.As(err, &perm); isPerm != tc.permanent {
				t.Fatalf("error %v: permanent %v, want %v", err, isPerm, tc.permanent)
			}
			if tc.cause != nil && !errors.As(err, tc.cause) {
				t.Errorf("error %v does not wrap %T", err, tc.cause)
			}
			if !tc.permanent && got != tc.want {
				t.Errorf("bound %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPermanent(t *testing.T) {
	t.Parallel()
	base := errors.New("down")
	for _, tc := range []struct {
		name string
		err  error
	}{
		{name: "direct", err: agent.Permanent(base)},
		{name: "wrapped again", err: fmt.Errorf("fetch page: %w", agent.Permanent(base))},
		{name: "wrapping a wrapped error", err: agent.Permanent(fmt.Errorf("fetch page: %w", base))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var perm *agent.PermanentError
			if !errors.As(tc.err, &perm) {
				t.Fatalf("%v is not a *PermanentError", tc.err)
			}
			if !errors.Is(tc.err, base) || !errors.Is(perm, base) {
				t.Errorf("%v does not wrap its cause", tc.err)
			}
			var snooze *agent.RetryAfterError
			if errors.As(tc.err, &snooze) {
				t.Errorf("%v is a RetryAfterError too", tc.err)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	base := errors.New("rate limited")
	for _, tc := range []struct {
		name  string
		err   error
		delay time.Duration
	}{
		{name: "direct", err: agent.RetryAfter(time.Minute, base), delay: time.Minute},
		{name: "wrapped again", err: fmt.Errorf("call api: %w", agent.RetryAfter(1500*time.Millisecond, base)), delay: 1500 * time.Millisecond},
		{name: "zero delay", err: agent.RetryAfter(0, base), delay: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var snooze *agent.RetryAfterError
			if !errors.As(tc.err, &snooze) {
				t.Fatalf("%v is not a *RetryAfterError", tc.err)
			}
			if snooze.Delay != tc.delay {
				t.Errorf("delay %v, want %v", snooze.Delay, tc.delay)
			}
			if !errors.Is(tc.err, base) {
				t.Errorf("%v does not wrap its cause", tc.err)
			}
			var perm *agent.PermanentError
			if errors.As(tc.err, &perm) {
				t.Errorf("%v is a PermanentError too", tc.err)
			}
		})
	}
}

func TestConfig_Validate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		cfg        agent.Config
		wantErr    bool
		wantStream bool // the error comes from the streams config
	}{
		{name: "zero value", cfg: agent.Config{}},
		{name: "full", cfg: agent.Config{ID: "agent-1_a", Concurrency: 4, Capabilities: []string{"gpu"}, Poll: time.Second,
			Streams: streams.Config{Prefix: "team1", AckWait: time.Second}}},
		{name: "64 character id", cfg: agent.Config{ID: strings.Repeat("a", 64)}},
		{name: "65 character id", cfg: agent.Config{ID: strings.Repeat("a", 65)}, wantErr: true},
		{name: "id with a space", cfg: agent.Config{ID: "a b"}, wantErr: true},
		{name: "id with a dot", cfg: agent.Config{ID: "a.b"}, wantErr: true},
		{name: "id with a wildcard", cfg: agent.Config{ID: "a*"}, wantErr: true},
		{name: "negative concurrency", cfg: agent.Config{Concurrency: -1}, wantErr: true},
		{name: "capacity", cfg: agent.Config{Capabilities: []string{"gpu", "lang:de", "ssd", "x.y"}, CPUs: 0.5, Memory: 1 << 30}},
		{name: "five capabilities", cfg: agent.Config{Capabilities: []string{"a", "b", "c", "d", "e"}}, wantErr: true},
		{name: "capability twice", cfg: agent.Config{Capabilities: []string{"gpu", "gpu"}}, wantErr: true},
		{name: "capability with a space", cfg: agent.Config{Capabilities: []string{"g pu"}}, wantErr: true},
		{name: "empty capability", cfg: agent.Config{Capabilities: []string{""}}, wantErr: true},
		{name: "negative cpus", cfg: agent.Config{CPUs: -1}, wantErr: true},
		{name: "cpus not a number", cfg: agent.Config{CPUs: math.NaN()}, wantErr: true},
		{name: "cpus below a millicore", cfg: agent.Config{CPUs: 0.0001}, wantErr: true},
		{name: "negative memory", cfg: agent.Config{Memory: -1}, wantErr: true},
		{name: "bad prefix", cfg: agent.Config{Streams: streams.Config{Prefix: "a.b"}}, wantErr: true, wantStream: true},
		{name: "ack wait too short", cfg: agent.Config{Streams: streams.Config{AckWait: time.Millisecond}}, wantErr: true, wantStream: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			if (err != nil) != tc.wantErr {
				t.Fatalf("Validate() = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr && !errors.Is(err, agent.ErrConfig) {
				t.Errorf("%v does not wrap agent.ErrConfig", err)
			}
			if errors.Is(err, streams.ErrConfig) != tc.wantStream {
				t.Errorf("%v: wraps streams.ErrConfig %v, want %v", err, !tc.wantStream, tc.wantStream)
			}
		})
	}
}
