package retry_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/retry"
)

func TestBackoff_Jitter(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond
	for _, tc := range []struct {
		name         string
		base, limit  time.Duration
		attempt      int
		full         time.Duration // the delay before jitter: the result is in [full/2, full]
		wantDistinct bool          // jitter must show over many draws
	}{
		{name: "first retry is the base", base: 100 * ms, limit: time.Second, attempt: 1, full: 100 * ms, wantDistinct: true},
		{name: "second doubles", base: 100 * ms, limit: time.Second, attempt: 2, full: 200 * ms, wantDistinct: true},
		{name: "third doubles again", base: 100 * ms, limit: time.Second, attempt: 3, full: 400 * ms, wantDistinct: true},
		{name: "fourth", base: 100 * ms, limit: time.Second, attempt: 4, full: 800 * ms, wantDistinct: true},
		{name: "capped at the limit", base: 100 * ms, limit: time.Second, attempt: 5, full: time.Second, wantDistinct: true},
		{name: "stays capped", base: 100 * ms, limit: time.Second, attempt: 100, full: time.Second, wantDistinct: true},
		{name: "uneven cap", base: 300 * ms, limit: time.Second, attempt: 3, full: time.Second, wantDistinct: true},
		{name: "limit below base", base: 5 * time.Second, limit: time.Second, attempt: 1, full: time.Second, wantDistinct: true},
		{name: "attempt zero is the base", base: 100 * ms, limit: time.Second, attempt: 0, full: 100 * ms, wantDistinct: true},
		{name: "negative attempt is the base", base: 100 * ms, limit: time.Second, attempt: -3, full: 100 * ms, wantDistinct: true},
		{name: "zero base", base: 0, limit: time.Second, attempt: 3, full: 0},
		{name: "zero limit", base: 100 * ms, limit: 0, attempt: 3, full: 0},
		{name: "one nanosecond", base: 1, limit: time.Second, attempt: 1, full: 1},
		// Doubling past half of the largest duration must not wrap around
		// to a negative delay (which became no delay at all).
		{name: "huge limit does not overflow", base: 1 << 61, limit: math.MaxInt64, attempt: 4, full: math.MaxInt64, wantDistinct: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			seen := map[time.Duration]bool{}
			lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
			for range 300 {
				d := retry.Backoff(tc.base, tc.limit, tc.attempt)
				if d < tc.full/2 || d > tc.full {
					t.Fatalf("Backoff(%v, %v, %d) = %v, outside [%v, %v]", tc.base, tc.limit, tc.attempt, d, tc.full/2, tc.full)
				}
				seen[d] = true
				lo, hi = min(lo, d), max(hi, d)
			}
			if !tc.wantDistinct {
				return
			}
			// 300 uniform draws over the upper half: the chance that none
			// falls in its lowest or highest fifth is below 1e-28.
			span := tc.full / 2
			if len(seen) < 100 || lo > tc.full/2+span/5 || hi < tc.full-span/5 {
				t.Errorf("%d distinct delays in [%v, %v]: want jitter over [%v, %v]", len(seen), lo, hi, tc.full/2, tc.full)
			}
		})
	}
}

func TestAfter(t *testing.T) {
	t.Parallel()
	base := events.Task{MaxAttempts: 3, Backoff: 10 * time.Millisecond, MaxBackoff: time.Second}
	withFallback := base
	withFallback.Fallback = "other"
	fallbackRound := withFallback
	fallbackRound.Round = 1
	for _, tc := range []struct {
		name      string
		task      events.Task
		attempt   int
		permanent bool
		want      retry.Action
	}{
		{name: "first failure retries", task: base, attempt: 1, want: retry.Again},
		{name: "second failure retries", task: base, attempt: 2, want: retry.Again},
		{name: "last attempt fails", task: base, attempt: 3, want: retry.Fail},
		{name: "beyond the attempts fails", task: base, attempt: 9, want: retry.Fail},
		{name: "permanent fails at once", task: base, attempt: 1, permanent: true, want: retry.Fail},
		{name: "last attempt goes to the fallback", task: withFallback, attempt: 3, want: retry.Fallback},
		{name: "permanent goes to the fallback", task: withFallback, attempt: 1, permanent: true, want: retry.Fallback},
		{name: "fallback round retries too", task: fallbackRound, attempt: 1, want: retry.Again},
		{name: "fallback round fails for good", task: fallbackRound, attempt: 3, want: retry.Fail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := retry.After(&tc.task, tc.attempt, tc.permanent)
			if d.Action != tc.want {
				t.Fatalf("After(attempt %d, permanent %v) = %v, want %v", tc.attempt, tc.permanent, d.Action, tc.want)
			}
			if d.Action == retry.Again && (d.Delay <= 0 || d.Delay > tc.task.MaxBackoff) {
				t.Fatalf("delay %v outside (0, %v]", d.Delay, tc.task.MaxBackoff)
			}
			// A failed result is final exactly when no fallback round follows.
			if final := !retry.HasFallback(&tc.task); (d.Action == retry.Fallback) == final {
				t.Fatalf("action %v but HasFallback %v", d.Action, !final)
			}
		})
	}
}

func TestFallbackDue(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		r        events.Result
		fallback string
		want     bool
	}{
		{name: "not final, first round, has fallback", r: events.Result{Round: 0}, fallback: "x", want: true},
		{name: "final", r: events.Result{Final: true}, fallback: "x"},
		{name: "second round", r: events.Result{Round: 1}, fallback: "x"},
		{name: "no fallback", r: events.Result{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := retry.FallbackDue(&tc.r, tc.fallback); got != tc.want {
				t.Fatalf("FallbackDue = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDo(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	boom := errors.New("boom")
	t.Run("succeeds after failures", func(t *testing.T) {
		t.Parallel()
		calls := 0
		err := retry.Do(t.Context(), log, "x", 0, func() error {
			if calls++; calls < 3 {
				return boom
			}
			return nil
		})
		if err != nil || calls != 3 {
			t.Fatalf("err %v after %d calls; want nil after 3", err, calls)
		}
	})
	t.Run("gives up after attempts", func(t *testing.T) {
		t.Parallel()
		calls := 0
		err := retry.Do(t.Context(), log, "x", 2, func() error { calls++; return boom })
		if !errors.Is(err, boom) || calls != 2 {
			t.Fatalf("err %v after %d calls; want boom after 2", err, calls)
		}
	})
	t.Run("stops at once on Stop", func(t *testing.T) {
		t.Parallel()
		calls := 0
		err := retry.Do(t.Context(), log, "x", 0, func() error { calls++; return retry.Stop(boom) })
		if err != boom || calls != 1 {
			t.Fatalf("err %v after %d calls; want boom itself after 1", err, calls)
		}
	})
	t.Run("stops with its context", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		calls := 0
		err := retry.Do(ctx, log, "x", 0, func() error {
			calls++
			cancel()
			return boom
		})
		if !errors.Is(err, context.Canceled) || calls != 1 {
			t.Fatalf("err %v after %d calls; want context.Canceled after 1", err, calls)
		}
	})
}

// levels records the level of every log record.
type levels struct {
	mu   sync.Mutex
	seen []slog.Level
}

func (l *levels) Enabled(context.Context, slog.Level) bool { return true }
func (l *levels) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, r.Level)
	return nil
}
func (l *levels) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *levels) WithGroup(string) slog.Handler      { return l }

// TestAwait_WarnsOnlyOnceImpatient: an expected wait is logged at debug
// level while it lasts less than its patience, as warnings after; Do warns
// at every failure.
func TestAwait_WarnsOnlyOnceImpatient(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	failTwice := func() func() error {
		calls := 0
		return func() error {
			if calls++; calls < 3 {
				return boom
			}
			return nil
		}
	}
	for _, tc := range []struct {
		name string
		run  func(*slog.Logger) error
		want slog.Level
	}{
		{"within its patience", func(log *slog.Logger) error { return retry.Await(t.Context(), log, "x", time.Hour, failTwice()) }, slog.LevelDebug},
		{"past its patience", func(log *slog.Logger) error { return retry.Await(t.Context(), log, "x", 0, failTwice()) }, slog.LevelWarn},
		{"Do", func(log *slog.Logger) error { return retry.Do(t.Context(), log, "x", 0, failTwice()) }, slog.LevelWarn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := &levels{}
			if err := tc.run(slog.New(h)); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(h.seen, []slog.Level{tc.want, tc.want}) {
				t.Fatalf("logged %v, want two at %v", h.seen, tc.want)
			}
		})
	}
}
