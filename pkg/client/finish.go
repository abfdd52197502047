package client

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrNeedsAttention is wrapped by Final's error for a workflow that missed
// its success threshold and escalated: it has no final output until a
// person resolves it (Resolve). It also matches ErrNoFinal.
var ErrNeedsAttention = fmt.Errorf("the workflow needs attention: resolve it (accept, retry_failed or fail): %w", ErrNoFinal)

// Resolve ends an escalated workflow's wait (status needs_attention) with
// events.ResolveAccept (finish as partial with what there is),
// events.ResolveRetryFailed (run its failed tasks again) or
// events.ResolveFail. A workflow that is not waiting is events.ErrConflict.
func (c *Client) Resolve(ctx context.Context, workflow, resolution string) (*events.ResolveReply, error) {
	var out events.ResolveReply
	return &out, c.call(ctx, events.VerbResolve, &events.ControlRequest{Workflow: workflow, Resolution: resolution}, &out)
}

// FollowOptions tune FollowWith.
type FollowOptions struct {
	// Collect picks the outputs to follow: events.CollectStream (partial
	// outputs, then the final one), events.CollectBatch (the final output
	// only) or events.CollectHybrid (partial outputs, the ready output,
	// the final one). Default: the workflow's own collection mode.
	Collect string
	// UntilReady returns at the ready output (of a hybrid workflow)
	// instead of waiting for the final one.
	UntilReady bool
}

// FollowWith is Follow with options: it calls fn with each output of the
// kinds opts.Collect picks, from the beginning, and returns the final
// output (or, with UntilReady, the ready output if it comes first). Of a
// workflow reopened (restart with retry_failed once finished) it returns
// the final output of its latest reopening, passing the older ones to fn.
func (c *Client) FollowWith(ctx context.Context, workflow string, opts FollowOptions, fn func(*events.Output) error) (*events.Output, error) {
	rec, err := c.Workflow(ctx, workflow)
	if err != nil {
		return nil, err
	}
	mode := opts.Collect
	if mode == "" {
		mode = rec.CollectMode()
	}
	if !slices.Contains(events.CollectModes, mode) {
		return nil, fmt.Errorf("client: collect %q: want stream, batch or hybrid: %w", mode, events.ErrBadRequest)
	}
	kinds := []string{events.OutputPartial, events.OutputFinal}
	switch mode {
	case events.CollectBatch:
		kinds = []string{events.OutputFinal}
	case events.CollectHybrid:
		kinds = []string{events.OutputPartial, events.OutputReady, events.OutputFinal}
	}
	var filters []string
	for _, k := range kinds {
		filters = append(filters, c.subj.Output(workflow, k))
	}
	cons, err := c.js.OrderedConsumer(ctx, c.cfg.OutputsStream(), jetstream.OrderedConsumerConfig{FilterSubjects: filters})
	if err != nil {
		return nil, fmt.Errorf("client: follow: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("client: follow: %w", err)
	}
	defer it.Stop()
	defer context.AfterFunc(ctx, it.Stop)()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("client: follow: %w", err)
		}
		var out events.Output
		if err := json.Unmarshal(m.Data(), &out); err != nil {
			return nil, fmt.Errorf("client: output: %w", err)
		}
		if fn != nil {
			if err := fn(&out); err != nil {
				return nil, err
			}
		}
		if out.Kind == events.OutputFinal {
			if n, _ := strconv.Atoi(m.Headers().Get(events.HeaderReopened)); n < rec.Reopened {
				continue // the final output before a reopening
			}
		}
		if out.Kind == events.OutputFinal || out.Kind == events.OutputReady && opts.UntilReady {
			return &out, nil
		}
	}
}
