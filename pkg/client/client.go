package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Client talks to a baton deployment over one NATS connection. It is safe
// for concurrent use.
type Client struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	cfg  streams.Config
	subj events.Subjects

	mu        sync.Mutex
	outputs   jetstream.Stream   // OUTPUTS, once looked up (outputsStream)
	workflows jetstream.KeyValue // the workflows bucket, once looked up (workflowsBucket)
}

// New returns a client using nc. The caller keeps ownership of nc.
func New(nc *nats.Conn, cfg streams.Config) (*Client, error) {
	cfg = cfg.WithDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return &Client{nc: nc, js: js, cfg: cfg, subj: cfg.Subjects()}, nil
}

// withDefault gives ctx a deadline d away unless it has one.
func withDefault(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// Submit publishes a JSON job to JOBS and waits for the planner's answer. A
// rejected job returns the reply and its *events.ValidationError.
func (c *Client) Submit(ctx context.Context, job []byte) (*events.SubmitReply, error) {
	ctx, cancel := withDefault(ctx, 30*time.Second)
	defer cancel()
	data, err := SubmitAndWait(ctx, c.nc, c.js, c.subj, job)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	var r events.SubmitReply
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("client: planner reply: %w", err)
	}
	if r.Error != nil {
		return &r, r.Error
	}
	return &r, nil
}

// SubmitAndWait stores job in JOBS with an inbox in its Baton-Reply-To
// header and returns the planner's raw reply. It is the one way baton
// submits with a reply: the client and the planner's submit endpoint both
// use it.
func SubmitAndWait(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, subj events.Subjects, job []byte) ([]byte, error) {
	inbox := nc.NewRespInbox()
	// A channel of its own size: a synchronous subscription's is 64k
	// messages, made and cleared for one reply (a planner may reply
	// twice to a job stored twice).
	replies := make(chan *nats.Msg, 2)
	sub, err := nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	msg := nats.NewMsg(subj.Submit())
	msg.Data = job
	msg.Header.Set(events.HeaderReplyTo, inbox)
	msg.Header.Set(events.HeaderContentType, events.ContentJSON)
	// The inbox names this submission: published again, the job is
	// stored once.
	msg.Header.Set(jetstream.MsgIDHeader, inbox)
	for {
		// No responders means nothing was stored (a stream leader being
		// elected after a node loss): try again for up to 10 s. No answer
		// at all (the leader died with the message) is waited for
		// ConfirmWait, then the job is published again, until ctx ends:
		// one publish waiting on ctx alone took a whole minute.
		pctx, cancel := context.WithTimeout(ctx, streams.ConfirmWait)
		_, err := js.PublishMsg(pctx, msg, jetstream.WithRetryAttempts(40), jetstream.WithRetryWait(250*time.Millisecond))
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("store job: %w", err)
		}
	}
	select {
	case m := <-replies:
		return m.Data, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("job stored, %w (%v)", ErrNoPlanner, ctx.Err())
	}
}

// Workflow returns a workflow's record, or ErrUnknownWorkflow.
func (c *Client) Workflow(ctx context.Context, workflow string) (*events.Workflow, error) {
	if !events.ValidToken(workflow) {
		return nil, fmt.Errorf("client: %q is not a workflow id: %w", workflow, events.ErrBadRequest)
	}
	// A short deadline of its own: a request sent while a cluster node
	// rejoins can go unanswered, and a caller following for an hour must
	// not wait an hour on it.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	kv, err := c.workflowsBucket(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	rec, err := streams.GetWorkflow(ctx, kv, workflow)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if rec == nil {
		return nil, fmt.Errorf("client: %s: %w", workflow, ErrUnknownWorkflow)
	}
	return rec, nil
}

// Follow calls fn with every output of a workflow, partial ones first, from
// the beginning, and returns the final output. It stops early if fn returns
// an error or ctx ends. An unknown workflow is ErrUnknownWorkflow at once.
// It is FollowWith with the workflow's own collection mode.
func (c *Client) Follow(ctx context.Context, workflow string, fn func(*events.Output) error) (*events.Output, error) {
	return c.FollowWith(ctx, workflow, FollowOptions{}, fn)
}

// Run submits a job and waits for its final output, calling fn (if not nil)
// with every output on the way as Follow does.
func (c *Client) Run(ctx context.Context, job []byte, fn func(*events.Output) error) (*events.Output, error) {
	reply, err := c.Submit(ctx, job)
	if err != nil {
		return nil, err
	}
	if fn == nil && reply.Created {
		// A workflow this job created has no reopening before its first
		// final output: that one is awaited without reading the record.
		out, err := c.awaitFinal(ctx, reply.Workflow, 0)
		if !errors.Is(err, errNotFinal) {
			return out, err
		}
	}
	return c.Follow(ctx, reply.Workflow, fn)
}

// Final returns a workflow's final output; ErrUnknownWorkflow if there is
// no such workflow, ErrNoFinal if it has not finished.
func (c *Client) Final(ctx context.Context, workflow string) (*events.Output, error) {
	rec, err := c.Workflow(ctx, workflow)
	if err != nil {
		return nil, err
	}
	s, err := c.outputsStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	m, err := s.GetLastMsgForSubject(ctx, c.subj.Output(workflow, events.OutputFinal))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		if rec.Status == events.WorkflowNeedsAttention {
			return nil, fmt.Errorf("client: workflow %s: %w", workflow, ErrNeedsAttention)
		}
		return nil, fmt.Errorf("client: workflow %s is %s: %w", workflow, rec.Status, ErrNoFinal)
	}
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	var out events.Output
	if err := json.Unmarshal(m.Data, &out); err != nil {
		return nil, fmt.Errorf("client: output: %w", err)
	}
	return &out, nil
}
