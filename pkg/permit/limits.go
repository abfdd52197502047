package permit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrNoLimit is returned for a type that has no per-type cap; it matches
// events.ErrNotFound.
var ErrNoLimit = fmt.Errorf("no limit set: %w", events.ErrNotFound)

// ErrBadLimit is wrapped by the error for a cap or type out of range; it
// matches events.ErrBadRequest.
var ErrBadLimit = fmt.Errorf("bad limit: %w", events.ErrBadRequest)

// MaxTypeLimit bounds a per-type cap (a task looks for a free slot among
// that many).
const MaxTypeLimit = events.MaxConcurrencyLimit

func parseLimit(v []byte) (int, error) {
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 1 || n > MaxTypeLimit || string(v) != strconv.Itoa(n) {
		return 0, fmt.Errorf("%w: %q: want a whole number 1..%d", ErrBadLimit, events.Short(string(v)), MaxTypeLimit)
	}
	return n, nil
}

func limitsBucket(ctx context.Context, js jetstream.JetStream, c streams.Config) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, c.WithDefaults().LimitsBucket())
	if err != nil {
		return nil, fmt.Errorf("limits bucket: %w", err)
	}
	return kv, nil
}

func checkType(typ string) error {
	if !events.ValidToken(typ) {
		return fmt.Errorf("%w: type %q: use 1-64 letters, digits, '-' or '_'", ErrBadLimit, events.Short(typ))
	}
	return nil
}

// SetTypeLimit caps how many tasks of typ run at once, system-wide, from
// now on (tasks already running finish; a lowered cap holds once enough
// of them have).
func SetTypeLimit(ctx context.Context, js jetstream.JetStream, c streams.Config, typ string, n int) error {
	if err := checkType(typ); err != nil {
		return err
	}
	if n < 1 || n > MaxTypeLimit {
		return fmt.Errorf("%w: %d: want 1..%d", ErrBadLimit, n, MaxTypeLimit)
	}
	kv, err := limitsBucket(ctx, js, c)
	if err != nil {
		return err
	}
	_, err = kv.Put(ctx, limitPrefix+typ, []byte(strconv.Itoa(n)))
	return err
}

// TypeLimit is typ's cap, or ErrNoLimit.
func TypeLimit(ctx context.Context, js jetstream.JetStream, c streams.Config, typ string) (int, error) {
	if err := checkType(typ); err != nil {
		return 0, err
	}
	kv, err := limitsBucket(ctx, js, c)
	if err != nil {
		return 0, err
	}
	e, err := kv.Get(ctx, limitPrefix+typ)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, fmt.Errorf("type %s: %w", typ, ErrNoLimit)
	}
	if err != nil {
		return 0, err
	}
	return parseLimit(e.Value())
}

// TypeLimits lists every per-type cap (a value baton did not write is
// left out).
func TypeLimits(ctx context.Context, js jetstream.JetStream, c streams.Config) (map[string]int, error) {
	kv, err := limitsBucket(ctx, js, c)
	if err != nil {
		return nil, err
	}
	keys, err := kv.ListKeysFiltered(ctx, limitPrefix+"*")
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue // deleted meanwhile
		}
		if n, err := parseLimit(e.Value()); err == nil {
			out[strings.TrimPrefix(k, limitPrefix)] = n
		}
	}
	return out, nil
}

// ClearTypeLimit removes typ's cap; ErrNoLimit if it had none.
func ClearTypeLimit(ctx context.Context, js jetstream.JetStream, c streams.Config, typ string) error {
	if err := checkType(typ); err != nil {
		return err
	}
	// A value baton did not write (ErrBadLimit) is cleared too.
	if _, err := TypeLimit(ctx, js, c, typ); err != nil && !errors.Is(err, ErrBadLimit) {
		return err
	}
	kv, err := limitsBucket(ctx, js, c)
	if err != nil {
		return err
	}
	return kv.Delete(ctx, limitPrefix+typ)
}
