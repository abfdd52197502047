package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go"
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
	if fn == nil && !opts.UntilReady && opts.Collect == "" {
		out, err := c.awaitFinal(ctx, workflow, rec.Reopened)
		if !errors.Is(err, errNotFinal) {
			return out, err
		}
		// Last on the subject is what is not the workflow's final output
		// (a forged message): read every message in order, as below.
		opts.Collect = events.CollectBatch
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
		// A message that is not one of this workflow's outputs, of the
		// kind its subject names, is not the aggregator's (a publisher
		// forged it): it is passed over, and cannot end or break the
		// following.
		var out events.Output
		if json.Unmarshal(m.Data(), &out) != nil || out.Workflow != workflow || m.Subject() != c.subj.Output(workflow, out.Kind) {
			continue
		}
		for i := range out.Results {
			out.Results[i].Step, _, _ = rec.PlanTask(out.Results[i].Task)
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

// errNotFinal says that the last message on a workflow's final output
// subject is not its final output.
var errNotFinal = errors.New("not the workflow's final output")

// awaitFinal returns a workflow's final output (of its reopening-th
// reopening or later) to a caller that wants nothing else: it subscribes
// to the final output's subject, then reads what OUTPUTS holds, so that a
// final stored before the subscription is found too. No consumer is made
// (creating one is most of a one-task job's wait). OUTPUTS is read again
// after a pause that doubles from 2 ms to 5 s: a final published just
// before the subscription, and read before the stream stored it, is found
// at once, and one published while the connection was down (a core
// subscription misses it) within 5 s.
func (c *Client) awaitFinal(ctx context.Context, workflow string, reopened int) (*events.Output, error) {
	subject := c.subj.Output(workflow, events.OutputFinal)
	finals := make(chan *nats.Msg, 4)
	sub, err := c.nc.ChanSubscribe(subject, finals)
	if err != nil {
		return nil, fmt.Errorf("client: follow: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	st, err := c.outputsStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: follow: %w", err)
	}
	// final reads one final output: ok is false for an earlier
	// reopening's, err errNotFinal for what is not the workflow's final.
	final := func(hdr nats.Header, data []byte) (*events.Output, bool, error) {
		var out events.Output
		if json.Unmarshal(data, &out) != nil || out.Kind != events.OutputFinal || out.Workflow != workflow {
			return nil, false, errNotFinal
		}
		if n, _ := strconv.Atoi(hdr.Get(events.HeaderReopened)); n < reopened {
			return nil, false, nil
		}
		return &out, true, nil
	}
	wait := 2 * time.Millisecond
	for {
		m, err := st.GetLastMsgForSubject(ctx, subject)
		switch {
		case err == nil:
			if out, ok, err := final(m.Header, m.Data); ok || err != nil {
				return out, err
			}
		case !errors.Is(err, jetstream.ErrMsgNotFound):
			return nil, fmt.Errorf("client: follow: %w", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case msg := <-finals:
			t.Stop()
			// What is not the final is passed over here (OUTPUTS, read
			// next, says what to make of it).
			if out, ok, _ := final(msg.Header, msg.Data); ok {
				return out, nil
			}
		case <-t.C:
			wait = min(2*wait, 5*time.Second)
		}
	}
}

// outputsStream is OUTPUTS, looked up once (its configuration says
// whether reads go to any replica).
func (c *Client) outputsStream(ctx context.Context) (jetstream.Stream, error) {
	return lookUpOnce(c, &c.outputs, func() (jetstream.Stream, error) { return c.js.Stream(ctx, c.cfg.OutputsStream()) })
}

// workflowsBucket is the workflows bucket, looked up once: a lookup is a
// stream-info request, which every Follow and Run paid before reading the
// record.
func (c *Client) workflowsBucket(ctx context.Context) (jetstream.KeyValue, error) {
	return lookUpOnce(c, &c.workflows, func() (jetstream.KeyValue, error) { return c.js.KeyValue(ctx, c.cfg.WorkflowsBucket()) })
}

// lookUpOnce returns *v, set by look the first time it succeeds.
func lookUpOnce[T comparable](c *Client, v *T, look func() (T, error)) (T, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero T
	if *v == zero {
		found, err := look()
		if err != nil {
			return zero, err
		}
		*v = found
	}
	return *v, nil
}
