package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// bareStallWait is how long a publish may wait for a free place among the
// 4096 unacknowledged ones: on a loaded machine the server can take longer
// than the library's default of 200 ms to acknowledge, which would end the
// run with an error instead of a slower figure.
const bareStallWait = 30 * time.Second

// bareConfig configures a bare pipeline.
type bareConfig struct {
	name string // stream name stem, unique per pipeline on a server
	// workers are the connections of the pipeline's workers, one worker
	// (one Consume of the task consumer) per connection; none: one worker
	// on the publisher's connection.
	workers []*nats.Conn
	// work is how long each task takes (a sleep); 0: none, the worker
	// forwards each task in its consume callback.
	work time.Duration
	// concurrency bounds the tasks each worker runs at once when work > 0.
	concurrency int
	// shaped sends baton's message shapes (see shapes) through the pipeline
	// instead of one subject per stream, 96-byte bodies and no headers: what
	// baton's wire format costs the server and the client library, with
	// none of baton's own work.
	shaped bool
}

// barePipeline is the baseline `baton bench` compares baton with: the
// least a two-hop JetStream pipeline does per task — publish it to a
// work-queue stream, consume and ack it, publish a result to a second
// stream, consume and ack that — with async publishing and the library's
// default pull consumption, as a hand-written pipeline would.
type barePipeline struct {
	js           jetstream.JetStream // the publisher's and the collector's
	tsubj, rsubj string
	tasks        string // stream names
	results      string
	shapes       *shapes // nil: the plain pipeline
	readers      int64   // how many consumers read each result
	stops        []jetstream.ConsumeContext
	follows      []func()       // stop the followers of results and their readers
	running      sync.WaitGroup // tasks with work in flight
	got, want    atomic.Int64
	done         chan struct{} // a signal when got reaches want
	failed       chan error    // a worker's first publish failure
}

// newBare creates the pipeline's streams and consumers on nc and starts
// its workers and its collector. The caller closes it.
func newBare(ctx context.Context, nc *nats.Conn, c bareConfig) (*barePipeline, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, err
	}
	p := &barePipeline{
		js: js, tasks: c.name + "_T", results: c.name + "_R",
		tsubj: "bench." + c.name + ".t", rsubj: "bench." + c.name + ".r", readers: 1,
		done: make(chan struct{}, 1), failed: make(chan error, 1),
	}
	tfilter, rfilter := p.tsubj, p.rsubj
	if c.shaped {
		if p.shapes, err = newShapes("bench." + c.name); err != nil {
			return nil, err
		}
		tfilter, rfilter = p.shapes.subj.Tasks(), p.shapes.subj.Results()
		p.readers = 2
	}
	for _, sc := range []jetstream.StreamConfig{
		{Name: p.tasks, Subjects: []string{tfilter}, Retention: jetstream.WorkQueuePolicy},
		{Name: p.results, Subjects: []string{rfilter}},
	} {
		if _, err := js.CreateStream(ctx, sc); err != nil {
			p.close(ctx)
			return nil, err
		}
	}
	if _, err := js.CreateConsumer(ctx, p.tasks, jetstream.ConsumerConfig{Durable: "work", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		p.close(ctx)
		return nil, err
	}
	workers := c.workers
	if len(workers) == 0 {
		workers = []*nats.Conn{nc}
	}
	for _, wc := range workers {
		if err := p.startWorker(ctx, wc, c); err != nil {
			p.close(ctx)
			return nil, err
		}
	}
	if err := p.collect(ctx); err != nil {
		p.close(ctx)
		return nil, err
	}
	return p, nil
}

// collect starts the pipeline's reader of results: one acked consumer, or
// for baton's shapes two ordered ones (as the planner and the aggregator
// read RESULTS).
func (p *barePipeline) collect(ctx context.Context) error {
	count := func(m jetstream.Msg) {
		if p.got.Add(1) == p.want.Load() {
			p.done <- struct{}{}
		}
	}
	if p.shapes == nil {
		rc, err := p.js.CreateConsumer(ctx, p.results, jetstream.ConsumerConfig{Durable: "collect", AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			return err
		}
		cc, err := rc.Consume(func(m jetstream.Msg) {
			_ = m.Ack()
			count(m)
		}, streams.Liveness()...)
		if err != nil {
			return err
		}
		p.stops = append(p.stops, cc)
		return nil
	}
	// Followed as the planner and the aggregator follow RESULTS (an
	// ordered consumer with their pull options and watchdog; nats.go's
	// defaults left one stalled for 30 s now and then).
	for range p.readers {
		f, err := streams.Follow(ctx, p.js, streams.FollowConfig{Stream: p.results})
		if err != nil {
			return err
		}
		done := make(chan struct{})
		var reading sync.WaitGroup
		reading.Go(func() {
			for {
				select {
				case m := <-f.C:
					count(m)
				case <-done:
					return
				}
			}
		})
		p.follows = append(p.follows, func() {
			f.Stop()
			close(done)
			reading.Wait()
		})
	}
	return nil
}

// startWorker consumes tasks on nc and publishes a result for each.
func (p *barePipeline) startWorker(ctx context.Context, nc *nats.Conn, c bareConfig) error {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return err
	}
	tc, err := js.Consumer(ctx, p.tasks, "work")
	if err != nil {
		return err
	}
	forward := func(m jetstream.Msg) {
		var err error
		if p.shapes != nil {
			_, err = js.PublishMsgAsync(p.shapes.result(m.Headers()), jetstream.WithStallWait(bareStallWait))
		} else {
			_, err = js.PublishAsync(p.rsubj, m.Data(), jetstream.WithStallWait(bareStallWait))
		}
		if err != nil {
			select {
			case p.failed <- err:
			default:
			}
			return
		}
		_ = m.Ack()
	}
	handle := forward
	if c.work > 0 {
		slots := make(chan struct{}, max(c.concurrency, 1))
		handle = func(m jetstream.Msg) {
			slots <- struct{}{} // the callback waits for a free slot
			p.running.Add(1)
			go func() {
				defer p.running.Done()
				defer func() { <-slots }()
				time.Sleep(c.work)
				forward(m)
			}()
		}
	}
	cc, err := tc.Consume(handle, streams.Liveness()...)
	if err != nil {
		return err
	}
	p.stops = append(p.stops, cc)
	return nil
}

// run publishes n tasks and returns the time until the collector has
// consumed all n results. Calls to run must not overlap.
func (p *barePipeline) run(ctx context.Context, n int) (time.Duration, error) {
	p.want.Store(p.got.Load() + int64(n)*p.readers)
	start := time.Now()
	payload := make([]byte, 96)
	for i := range n {
		var err error
		if p.shapes != nil {
			_, err = p.js.PublishMsgAsync(p.shapes.task(i), jetstream.WithStallWait(bareStallWait))
		} else {
			_, err = p.js.PublishAsync(p.tsubj, payload, jetstream.WithStallWait(bareStallWait))
		}
		if err != nil {
			return 0, err
		}
	}
	select {
	case <-p.done:
		return time.Since(start), nil
	case err := <-p.failed:
		return 0, err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(10 * time.Minute):
		return 0, errors.New("no end after 10 minutes")
	}
}

// stored returns the bytes the pipeline's task and result streams hold.
func (p *barePipeline) stored(ctx context.Context) (tasks, results uint64, err error) {
	for _, s := range []struct {
		name string
		into *uint64
	}{{p.tasks, &tasks}, {p.results, &results}} {
		st, err := p.js.Stream(ctx, s.name)
		if err != nil {
			return 0, 0, fmt.Errorf("stream %s: %w", s.name, err)
		}
		*s.into = st.CachedInfo().State.Bytes
	}
	return tasks, results, nil
}

// close stops the workers and the collector, waits for tasks in flight
// and deletes the streams.
func (p *barePipeline) close(ctx context.Context) {
	for _, s := range p.stops {
		s.Stop()
	}
	for _, stop := range p.follows {
		stop()
	}
	p.running.Wait()
	ctx = context.WithoutCancel(ctx)
	_ = p.js.DeleteStream(ctx, p.tasks)
	_ = p.js.DeleteStream(ctx, p.results)
}

// shapes are baton's message shapes for the bare pipeline: a task as the
// planner publishes one of a no-op job (its msgpack body, a subject per
// task, the workflow, task and message-id headers) and a result as an
// agent publishes it (its body, a subject per task, a message id). The
// bodies are encoded once: what a message costs on the wire, not baton's
// encoding, which its own figures carry.
type shapes struct {
	subj       events.Subjects
	wf         string
	lane       string // the tasks' lane token
	taskBody   []byte
	resultBody []byte
	origin     string // the results' writer, in their message ids
}

func newShapes(prefix string) (*shapes, error) {
	sh := &shapes{subj: events.Subjects{Prefix: prefix}, wf: "wf-mwy0cj00-l0", lane: events.LaneToken(3, nil)}
	now := time.Now().UnixNano()
	var err error
	// As the planner's range split of a no-op step makes them, signed.
	if sh.taskBody, err = events.Encode(&events.Task{Workflow: sh.wf, ID: "noop-12345", Step: "noop", Index: 12345, Chunks: 50000,
		Type: "noop", Priority: 3, Input: json.RawMessage(`12345`), MaxAttempts: 3, Backoff: time.Second, MaxBackoff: time.Minute,
		Timeout: 5 * time.Minute, Lease: "k1.q2FJ3xW9bT0sLmN4vYcR7A"}); err != nil {
		return nil, err
	}
	r := &events.Result{Workflow: sh.wf, Task: "noop-12345", Step: "noop", Index: 12345, Type: "noop", Status: events.StateCompleted,
		Final: true, Data: json.RawMessage(`12345`), Attempts: 1, Agent: "agent-1", Started: now, Finished: now + 20_000, Priority: 3,
		Lease: "k1.q2FJ3xW9bT0sLmN4vYcR7A", Usage: &events.TaskUsage{CPUMS: 0.004}}
	if sh.resultBody, err = events.Encode(r); err != nil {
		return nil, err
	}
	sh.origin = events.ResultByAgent(r)
	return sh, nil
}

// task is the message of the pipeline's task i.
func (sh *shapes) task(i int) *nats.Msg {
	id := "noop-" + strconv.Itoa(i)
	return &nats.Msg{Subject: sh.subj.TaskOn("noop", sh.lane, sh.wf, id), Data: sh.taskBody,
		Header: events.TaskHeader(sh.wf, id, events.MsgID(sh.wf, id, 0, 0))}
}

// result is the message of the result of the task whose message has
// headers h.
func (sh *shapes) result(h nats.Header) *nats.Msg {
	id := h.Get(events.HeaderTask)
	return &nats.Msg{Subject: sh.subj.Result(sh.wf, id), Data: sh.resultBody, Header: events.ResultHeader(sh.wf, id, sh.origin)}
}
