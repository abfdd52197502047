package streams

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Ensure creates or updates every stream and bucket; it is safe to call from
// every service at every start.
func Ensure(ctx context.Context, js jetstream.JetStream, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	for _, sc := range c.Streams() {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("ensure stream %s: %w", sc.Name, err)
		}
	}
	for _, kc := range c.Buckets() {
		if _, err := js.CreateOrUpdateKeyValue(ctx, kc); err != nil {
			return fmt.Errorf("ensure bucket %s: %w", kc.Bucket, err)
		}
	}
	return nil
}

// EnsureLane creates or updates one lane consumer and returns it. A pause
// set on the lane (by baton or by `nats consumer pause`) is kept: an update
// without one would resume it.
func EnsureLane(ctx context.Context, js jetstream.JetStream, c Config, taskType string, priority int) (jetstream.Consumer, error) {
	cc := c.Lane(taskType, priority)
	if cons, err := js.Consumer(ctx, c.TasksStream(), cc.Durable); err == nil {
		cc.PauseUntil = cons.CachedInfo().Config.PauseUntil
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("ensure lane %s: %w", cc.Durable, err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, c.TasksStream(), cc)
	if err != nil {
		return nil, fmt.Errorf("ensure lane %s: %w", cc.Durable, err)
	}
	return cons, nil
}
