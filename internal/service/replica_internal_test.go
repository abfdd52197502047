package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	streams "github.com/baton-dev/baton/jetstream"
)

// TestReplicated_StandsByAgainAfterAFailedTerm: a term that fails (a
// request timed out while the cluster elected its leaders) does not end
// the replica: it leads again after a backoff, and returns nil once
// stopped.
func TestReplicated_StandsByAgainAfterAFailedTerm(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	nc, _ := natstest.Connect(t, srv)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	terms := make(chan int, 4)
	n := 0
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- replicated(ctx, nc, streams.Config{}, "planner", true, log, func(term context.Context) error {
			n++
			terms <- n
			if n == 1 {
				return errors.New("consumer create: context deadline exceeded")
			}
			<-term.Done()
			return nil
		})
	}()
	for want := 1; want <= 2; want++ {
		select {
		case got := <-terms:
			if got != want {
				t.Fatalf("term %d, want %d", got, want)
			}
		case err := <-done:
			t.Fatalf("the replica ended after term %d: %v", want-1, err)
		case <-time.After(30 * time.Second):
			t.Fatalf("no term %d within 30 s", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("stopped: %v, want nil", err)
	}
}
