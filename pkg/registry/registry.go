package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go/jetstream"
)

// Registry reads and writes the agents bucket.
type Registry struct {
	kv jetstream.KeyValue
}

// Open returns the registry of the deployment c describes. The bucket must
// exist (streams.Ensure creates it).
func Open(ctx context.Context, js jetstream.JetStream, c streams.Config) (*Registry, error) {
	kv, err := js.KeyValue(ctx, c.AgentsBucket())
	if err != nil {
		return nil, fmt.Errorf("registry: agents bucket: %w", err)
	}
	return &Registry{kv: kv}, nil
}

// Put writes an agent's entry: its heartbeat.
func (r *Registry) Put(ctx context.Context, a events.AgentInfo) error {
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("registry: encode %s: %w", a.ID, err)
	}
	if _, err := r.kv.Put(ctx, a.ID, b); err != nil {
		return fmt.Errorf("registry: put %s: %w", a.ID, err)
	}
	return nil
}

// Delete removes an agent's entry: it left.
func (r *Registry) Delete(ctx context.Context, id string) error {
	if err := r.kv.Delete(ctx, id); err != nil {
		return fmt.Errorf("registry: delete %s: %w", id, err)
	}
	return nil
}

// List reads every entry, sorted by id, in one pass over the bucket (not
// one request per agent). An entry that expires while it is read, or that
// is not an agent record (Decode), is left out.
func (r *Registry) List(ctx context.Context) ([]events.AgentInfo, error) {
	w, err := r.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("registry: list: %w", err)
	}
	defer streams.StopWatch(w)
	byID := map[string]events.AgentInfo{}
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("registry: list: %w", ctx.Err())
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return nil, errors.New("registry: list: the watch ended early")
			case e != nil:
				if a, ok := Decode(e.Key(), e.Value()); ok {
					byID[a.ID] = a // a later revision of the same entry replaces it
				}
				continue
			}
			out := make([]events.AgentInfo, 0, len(byID))
			for _, a := range byID {
				out = append(out, a)
			}
			slices.SortFunc(out, func(x, y events.AgentInfo) int { return strings.Compare(x.ID, y.ID) })
			return out, nil
		}
	}
}

// Watch follows every entry: first those stored, then a nil entry, then
// each put and delete as it happens. The caller stops it.
func (r *Registry) Watch(ctx context.Context) (jetstream.KeyWatcher, error) {
	w, err := r.kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("registry: watch: %w", err)
	}
	return w, nil
}

// Decode reads the entry stored under key; ok is false for what is not
// an agent record: not JSON of one, or an id that is not a token or not
// its key.
func Decode(key string, value []byte) (a events.AgentInfo, ok bool) {
	if json.Unmarshal(value, &a) != nil || a.ID != key || !events.ValidToken(key) {
		return events.AgentInfo{}, false
	}
	return a, true
}

// ServedTypes lists the task types some agent that has not failed serves.
func ServedTypes(agents []events.AgentInfo) map[string]bool {
	served := map[string]bool{}
	for _, a := range agents {
		if a.Status != events.AgentFailed {
			for _, t := range a.Types {
				served[t] = true
			}
		}
	}
	return served
}

// Live lists the ids of the agents that have not failed.
func Live(agents []events.AgentInfo) map[string]bool {
	live := map[string]bool{}
	for _, a := range agents {
		if a.Status != events.AgentFailed {
			live[a.ID] = true
		}
	}
	return live
}
