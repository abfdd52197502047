package webhook_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-dev/baton/pkg/webhook"
)

// outcomes collects what a Sender reports.
type outcomes struct {
	mu  sync.Mutex
	got []webhook.Outcome
	ch  chan struct{}
}

func newOutcomes() *outcomes { return &outcomes{ch: make(chan struct{}, 100)} }

func (o *outcomes) report(out webhook.Outcome) {
	o.mu.Lock()
	o.got = append(o.got, out)
	o.mu.Unlock()
	o.ch <- struct{}{}
}

// wait waits for n outcomes and returns them all.
func (o *outcomes) wait(tb testing.TB, n int) []webhook.Outcome {
	tb.Helper()
	for range n {
		select {
		case <-o.ch:
		case <-time.After(20 * time.Second):
			tb.Fatalf("waited in vain for %d outcomes", n)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]webhook.Outcome(nil), o.got...)
}

// server answers with the statuses given, in turn (the last one after),
// and counts the requests.
func server(tb testing.TB, statuses ...int) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		i := int(n.Add(1)) - 1
		w.WriteHeader(statuses[min(i, len(statuses)-1)])
	}))
	tb.Cleanup(srv.Close)
	return srv, &n
}

func TestSender_Send(t *testing.T) {
	t.Parallel()
	fast := webhook.Config{Backoff: time.Millisecond, Timeout: 5 * time.Second}
	for _, tc := range []struct {
		name     string
		statuses []int
		attempts int
		ok       bool
	}{
		{"delivered at once", []int{204}, 1, true},
		{"after a 503", []int{503, 200}, 2, true},
		// A receiver that always fails is asked a bounded number of times,
		// whatever the job: the planner cannot be made to hammer it.
		{"always failing, bounded", []int{500}, 3, false},
		{"refused, not asked again", []int{403}, 1, false},
		{"too many requests is retried", []int{429, 429, 202}, 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, n := server(t, tc.statuses...)
			o := newOutcomes()
			s := webhook.New(fast, o.report)
			defer s.Stop()
			s.Send(srv.URL+"/hook", "wf-1", []byte(`{"workflow":"wf-1"}`))
			got := o.wait(t, 1)[0]
			if got.Attempts != tc.attempts || int(n.Load()) != tc.attempts || (got.Err == nil) != tc.ok || got.Key != "wf-1" {
				t.Errorf("outcome %+v after %d requests; want %d attempts, ok %v", got, n.Load(), tc.attempts, tc.ok)
			}
		})
	}
}

func TestSender_Refuses(t *testing.T) {
	t.Parallel()
	srv, n := server(t, 200)
	o := newOutcomes()
	s := webhook.New(webhook.Config{MaxBytes: 64}, o.report)
	defer s.Stop()
	s.Send("file:///etc/passwd", "a", []byte(`{}`))
	s.Send(srv.URL, "b", []byte(`{"big":"`+strings.Repeat("x", 100)+`"}`))
	got := o.wait(t, 2)
	if got[0].Err == nil || !strings.Contains(got[0].Err.Error(), "only http and https") {
		t.Errorf("file URL: %+v", got[0])
	}
	if !errors.Is(got[1].Err, webhook.ErrTooLarge) {
		t.Errorf("large payload: %+v", got[1])
	}
	if n.Load() != 0 {
		t.Errorf("%d requests sent", n.Load())
	}
}

// TestSender_BoundedInFlight: past MaxInFlight, a notification is dropped
// (and says so) rather than queued or blocking the caller; Stop abandons
// the ones in flight and returns.
func TestSender_BoundedInFlight(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	o := newOutcomes()
	s := webhook.New(webhook.Config{MaxInFlight: 2, Timeout: time.Minute}, o.report)
	start := time.Now()
	for range 5 {
		s.Send(srv.URL, "wf", []byte(`{}`))
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Send blocked for %v", d)
	}
	busy := o.wait(t, 3)
	for _, b := range busy {
		if !errors.Is(b.Err, webhook.ErrBusy) {
			t.Errorf("outcome %+v, want ErrBusy", b)
		}
	}
	s.Stop()
	all := o.wait(t, 2)
	for _, a := range all[3:] {
		if a.Err == nil {
			t.Errorf("abandoned notification reported delivered: %+v", a)
		}
	}
}
