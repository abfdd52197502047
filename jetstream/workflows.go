package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go/jetstream"
)

// GetWorkflow reads a workflow's record from the workflows bucket; nil
// (and no error) if there is none.
func GetWorkflow(ctx context.Context, kv jetstream.KeyValue, id string) (*events.Workflow, error) {
	e, err := kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read workflow %s: %w", id, err)
	}
	var rec events.Workflow
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, fmt.Errorf("workflow record %s: %w", id, err)
	}
	return &rec, nil
}

// PutWorkflow writes a workflow's record to the workflows bucket.
func PutWorkflow(ctx context.Context, kv jetstream.KeyValue, rec *events.Workflow) error {
	return writeWorkflow(rec, func(b []byte) (uint64, error) { return kv.Put(ctx, rec.ID, b) })
}

// CreateWorkflow writes a new workflow's record to the workflows bucket,
// in one round trip, unless the bucket holds one of that id already: then
// it changes nothing and the error is jetstream.ErrKeyExists.
func CreateWorkflow(ctx context.Context, kv jetstream.KeyValue, rec *events.Workflow) error {
	return writeWorkflow(rec, func(b []byte) (uint64, error) { return kv.Create(ctx, rec.ID, b) })
}

func writeWorkflow(rec *events.Workflow, write func([]byte) (uint64, error)) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode workflow %s: %w", rec.ID, err)
	}
	if _, err := write(b); err != nil {
		return fmt.Errorf("write workflow %s: %w", rec.ID, err)
	}
	return nil
}
