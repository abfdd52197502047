package streams

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Replay hands every message of fc's stream and filter stored until now to
// handle, in order, and returns once they all have been (ErrDrainTimeout
// after timeout). It is how a service rebuilds one workflow's state while
// it keeps following the stream for the others.
func Replay(ctx context.Context, js jetstream.JetStream, fc FollowConfig, timeout time.Duration, handle func(jetstream.Msg)) error {
	f, err := Follow(ctx, js, fc)
	if err != nil {
		return err
	}
	defer f.Stop()
	if f.Backlog == 0 {
		return nil
	}
	return f.Drain(ctx, timeout, handle)
}
