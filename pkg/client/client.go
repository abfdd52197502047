// Package client submits jobs to baton and follows their outputs, from Go.
// The baton CLI is built on it.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// ErrNoPlanner is returned by Submit when no planner answered in time.
var ErrNoPlanner = errors.New("no reply from a planner: is one running?")

// ErrNotFound is returned by Final for a workflow without a final output.
var ErrNotFound = errors.New("no final output (yet) for that workflow")

// Client talks to a baton deployment over one NATS connection.
type Client struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	cfg  streams.Config
	subj events.Subjects
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

// Submit publishes a JSON job to JOBS and waits for the planner's answer. A
// rejected job returns the reply and its *events.ValidationError.
func (c *Client) Submit(ctx context.Context, job []byte) (*events.SubmitReply, error) {
	inbox := c.nc.NewRespInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	msg := nats.NewMsg(c.subj.Submit())
	msg.Data = job
	msg.Header.Set(events.HeaderReplyTo, inbox)
	msg.Header.Set(events.HeaderContentType, events.ContentJSON)
	if _, err := c.js.PublishMsg(ctx, msg); err != nil {
		return nil, fmt.Errorf("client: publish job: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	m, err := sub.NextMsgWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: %w (%v)", ErrNoPlanner, err)
	}
	var r events.SubmitReply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return nil, fmt.Errorf("client: planner reply: %w", err)
	}
	if r.Error != nil {
		return &r, r.Error
	}
	return &r, nil
}

// Follow calls fn with every output of a workflow, partial ones first, from
// the beginning, and returns the final output. It stops early if fn returns
// an error or ctx ends.
func (c *Client) Follow(ctx context.Context, workflow string, fn func(*events.Output) error) (*events.Output, error) {
	if !events.ValidToken(workflow) {
		return nil, fmt.Errorf("client: %q is not a workflow id", workflow)
	}
	cons, err := c.js.OrderedConsumer(ctx, c.cfg.OutputsStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{c.subj.Output(workflow, "*")},
	})
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
			return &out, nil
		}
	}
}

// Run submits a job and waits for its final output, calling fn (if not nil)
// with every output on the way as Follow does.
func (c *Client) Run(ctx context.Context, job []byte, fn func(*events.Output) error) (*events.Output, error) {
	reply, err := c.Submit(ctx, job)
	if err != nil {
		return nil, err
	}
	return c.Follow(ctx, reply.Workflow, fn)
}

// Control sends a request to the planner's control service (verb is one of
// events.Verbs) and decodes the reply into out. A request the planner
// refused returns its *events.ControlError; no planner, ErrNoPlanner.
func (c *Client) Control(ctx context.Context, verb string, req *events.ControlRequest, out any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 40*time.Second)
		defer cancel()
	}
	m, err := c.nc.RequestWithContext(ctx, c.subj.Control(verb), body)
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("client: %w", ErrNoPlanner)
	}
	if err != nil {
		return fmt.Errorf("client: %s: %w", verb, err)
	}
	if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
		ce := &events.ControlError{}
		if json.Unmarshal(m.Data, ce) != nil || ce.Message == "" {
			ce.Message = m.Header.Get(micro.ErrorHeader)
			ce.Code, _ = strconv.Atoi(code)
		}
		return ce
	}
	if err := json.Unmarshal(m.Data, out); err != nil {
		return fmt.Errorf("client: %s reply: %w", verb, err)
	}
	return nil
}

// Final returns a workflow's final output, or ErrNotFound.
func (c *Client) Final(ctx context.Context, workflow string) (*events.Output, error) {
	if !events.ValidToken(workflow) {
		return nil, fmt.Errorf("client: %q is not a workflow id", workflow)
	}
	s, err := c.js.Stream(ctx, c.cfg.OutputsStream())
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	m, err := s.GetLastMsgForSubject(ctx, c.subj.Output(workflow, events.OutputFinal))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, ErrNotFound
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
