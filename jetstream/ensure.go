package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/baton-dev/baton/pkg/retry"

	"github.com/nats-io/nats.go/jetstream"
)

// Ensure creates every stream and bucket that is missing and updates those
// whose definition differs; it leaves alone those that match. It is safe to
// call from every service at every start, and while work is in flight: an
// update of a work-queue stream that consumers are reading can disturb
// their pending acknowledgements, so none is sent when nothing changed.
func Ensure(ctx context.Context, js jetstream.JetStream, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	return ensure(ctx, js, c, 0)
}

// ensure is Ensure with, if each > 0, a deadline of each per stream and
// bucket.
func ensure(ctx context.Context, js jetstream.JetStream, c Config, each time.Duration) error {
	within := func(ensure func(context.Context) error) error {
		if each <= 0 {
			return ensure(ctx)
		}
		ctx, cancel := context.WithTimeout(ctx, each)
		defer cancel()
		return ensure(ctx)
	}
	for _, sc := range c.Streams() {
		if err := within(func(ctx context.Context) error { return ensureStream(ctx, js, sc) }); err != nil {
			return fmt.Errorf("ensure stream %s: %w", sc.Name, err)
		}
	}
	for _, kc := range c.Buckets() {
		if err := within(func(ctx context.Context) error { return ensureBucket(ctx, js, kc) }); err != nil {
			return fmt.Errorf("ensure bucket %s: %w", kc.Bucket, err)
		}
	}
	return nil
}

// startWait is how long a request of a starting service waits for its
// answer before it is sent again. A request to a stream without a leader
// (a cluster electing after a node loss) goes unanswered: waiting 10 s
// for it held a planner taking over that long after the stream had a
// leader again.
const startWait = 3 * time.Second

// EnsureWait is Ensure for a service starting: until JetStream can serve
// it (a cluster still electing its leaders, a server not up yet) it tries
// again, backing off to once every 2 s with a log line each time, and
// gives up only when ctx ends.
func EnsureWait(ctx context.Context, js jetstream.JetStream, c Config, log *slog.Logger) error {
	if err := c.Validate(); err != nil {
		return err
	}
	return retry.Do(ctx, log, "ensure streams and buckets: waiting for JetStream", 0, func() error {
		return ensure(ctx, js, c, startWait)
	})
}

func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) error {
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = js.CreateStream(ctx, want)
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return err
		}
		s, err = js.Stream(ctx, want.Name) // another service created it meanwhile
	}
	if err != nil {
		return err
	}
	if sameStream(s.CachedInfo().Config, want) {
		return nil
	}
	_, err = js.UpdateStream(ctx, want)
	return err
}

// sameStream compares the fields Streams sets; the server fills the rest.
func sameStream(have, want jetstream.StreamConfig) bool {
	return have.Description == want.Description && slices.Equal(have.Subjects, want.Subjects) &&
		have.Retention == want.Retention && have.Storage == want.Storage && have.Replicas == want.Replicas &&
		have.Duplicates == want.Duplicates && have.MaxAge == want.MaxAge && have.AllowDirect == want.AllowDirect &&
		have.MaxBytes == want.MaxBytes && have.Discard == want.Discard
}

func ensureBucket(ctx context.Context, js jetstream.JetStream, want jetstream.KeyValueConfig) error {
	kv, err := js.KeyValue(ctx, want.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		_, err = js.CreateKeyValue(ctx, want)
		if !errors.Is(err, jetstream.ErrBucketExists) {
			return err
		}
		kv, err = js.KeyValue(ctx, want.Bucket)
	}
	if err != nil {
		return err
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return err
	}
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		have := bs.StreamInfo().Config
		if have.Description == want.Description && have.Replicas == max(want.Replicas, 1) && have.Storage == want.Storage &&
			st.TTL() == want.TTL && st.History() == int64(max(want.History, 1)) &&
			have.MaxBytes == unlimited(want.MaxBytes) && have.MaxMsgSize == unlimited(want.MaxValueSize) {
			return nil
		}
	}
	_, err = js.UpdateKeyValue(ctx, want)
	return err
}

// unlimited is how the server stores a bound: 0 (none) becomes -1.
func unlimited[T int32 | int64](v T) T {
	if v <= 0 {
		return -1
	}
	return v
}

// EnsureLane creates or updates one lane consumer and returns it. A lane
// whose definition matches is returned untouched; a pause set on the lane
// (by baton or by `nats consumer pause`) is kept: an update without one
// would resume it.
func EnsureLane(ctx context.Context, js jetstream.JetStream, c Config, taskType string, priority int) (jetstream.Consumer, error) {
	return EnsureLaneFor(ctx, js, c, taskType, priority, nil, nil)
}

// EnsureLaneFor is EnsureLane for the lane of tasks requiring caps. A
// capability lane it creates starts paused until pausedUntil, when that is
// set: a creator passes the pause of the plain lane of the same type and
// priority, so that pausing a lane (by type and priority) also holds the
// capability lanes agents open later.
func EnsureLaneFor(ctx context.Context, js jetstream.JetStream, c Config, taskType string, priority int, caps []string, pausedUntil *time.Time) (jetstream.Consumer, error) {
	cc := c.LaneFor(taskType, priority, caps)
	cons, err := js.Consumer(ctx, c.TasksStream(), cc.Durable)
	switch {
	case err == nil:
		have := cons.CachedInfo().Config
		if sameLane(have, cc) {
			return cons, nil
		}
		cc.PauseUntil = have.PauseUntil
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, fmt.Errorf("ensure lane %s: %w", cc.Durable, err)
	case pausedUntil != nil && pausedUntil.After(time.Now()):
		cc.PauseUntil = pausedUntil
	}
	cons, err = js.CreateOrUpdateConsumer(ctx, c.TasksStream(), cc)
	if err != nil {
		return nil, fmt.Errorf("ensure lane %s: %w", cc.Durable, err)
	}
	return cons, nil
}

// sameLane compares the fields Lane sets.
func sameLane(have, want jetstream.ConsumerConfig) bool {
	return have.Description == want.Description && have.FilterSubject == want.FilterSubject &&
		have.Metadata[RequiresMetadata] == want.Metadata[RequiresMetadata] &&
		have.AckPolicy == want.AckPolicy && have.AckWait == want.AckWait && have.MaxAckPending == want.MaxAckPending &&
		have.MaxDeliver == want.MaxDeliver && have.DeliverPolicy == want.DeliverPolicy && have.MaxWaiting == want.MaxWaiting
}

// waitPatience is how long Wait waits for the streams before it warns:
// services started together find them a moment after the planner starts.
const waitPatience = 10 * time.Second

// Wait is for services that do not own the streams (agents, aggregators):
// it returns once every named stream or bucket exists, without creating or
// changing any, so that their connections need no stream-admin rights.
// Until then it tries again, backing off to once every 2 s with a log line
// each time, a warning once it has waited waitPatience; it gives up only
// when ctx ends. Names are stream names; a bucket's stream is
// "KV_<bucket>".
func Wait(ctx context.Context, js jetstream.JetStream, c Config, log *slog.Logger, names ...string) error {
	if err := c.Validate(); err != nil {
		return err
	}
	return retry.Await(ctx, log, "waiting for JetStream and for the planner to create the streams", waitPatience, func() error {
		for _, name := range names {
			ctx, cancel := context.WithTimeout(ctx, startWait)
			_, err := js.Stream(ctx, name)
			cancel()
			if err != nil {
				return fmt.Errorf("stream %s: %w", name, err)
			}
		}
		return nil
	})
}

// BucketStream is the stream that backs a key-value bucket.
func BucketStream(bucket string) string { return "KV_" + bucket }

// IsFull reports whether err is a stream refusing a message because it is
// at its size bound (a DiscardNew stream: jobs, tasks, results).
func IsFull(err error) bool {
	return err != nil && strings.Contains(err.Error(), "maximum bytes exceeded")
}
