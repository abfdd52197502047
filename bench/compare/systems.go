package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/baton-dev/baton/internal/benchkit"
	"github.com/baton-dev/baton/internal/service"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/hibiken/asynq"
	"github.com/nats-io/nats.go"
	"github.com/oklog/run"
)

// A system is one way of running n no-op tasks, on its own broker.
type system struct {
	name   string
	kind   string // name without the producers: the fastest of a kind is compared
	broker func(ctx context.Context, o options) (*broker, error)
	// prepare connects to the broker at addr and gets ready (untimed).
	prepare func(ctx context.Context, addr string, o options) (runner, error)
}

// A runner runs n tasks (timed): it returns once each has been handled.
// close stops it and checks that no task was handled twice.
type runner interface {
	run(ctx context.Context, n int) error
	close() error
}

func systems(o options) []system {
	slots := o.agents * o.slots
	natsBroker := func(ctx context.Context, o options) (*broker, error) { return startNATS(ctx, o.natsServer) }
	redisBroker := func(ctx context.Context, o options) (*broker, error) { return startRedis(ctx, o.redisServer) }
	baton := fmt.Sprintf("baton, one job (%d agents × %d slots)", o.agents, o.slots)
	all := []system{{name: baton, kind: baton, broker: natsBroker, prepare: prepareBaton}}
	// The others, each with every number of producers.
	kinds := []struct {
		kind    string
		broker  func(ctx context.Context, o options) (*broker, error)
		prepare func(ctx context.Context, addr string, producers int) (runner, error)
	}{
		{fmt.Sprintf("asynq, defaults (concurrency %d)", runtime.NumCPU()), redisBroker,
			func(_ context.Context, addr string, p int) (runner, error) { return prepareAsynq(addr, p, 0) }},
		{fmt.Sprintf("asynq, concurrency %d", slots), redisBroker,
			func(_ context.Context, addr string, p int) (runner, error) { return prepareAsynq(addr, p, slots) }},
		{"watermill-nats, defaults (1 subscriber)", natsBroker,
			func(ctx context.Context, addr string, p int) (runner, error) {
				return prepareWatermill(ctx, addr, p, 1)
			}},
		{fmt.Sprintf("watermill-nats, %d subscribers", slots), natsBroker,
			func(ctx context.Context, addr string, p int) (runner, error) {
				return prepareWatermill(ctx, addr, p, slots)
			}},
	}
	for _, p := range o.producers {
		for _, k := range kinds {
			all = append(all, system{name: fmt.Sprintf("%s, %d producers", k.kind, p), kind: k.kind, broker: k.broker,
				prepare: func(ctx context.Context, addr string, _ options) (runner, error) { return k.prepare(ctx, addr, p) }})
		}
	}
	return all
}

// batonRunner runs baton as `baton up` does, against the broker: the
// planner, the aggregator and the agents in this process on one
// connection. A run is one job of n no-op tasks (one step split by
// range), submitted and followed to its final output.
type batonRunner struct {
	nc     *nats.Conn
	cl     *client.Client
	cancel context.CancelFunc
	done   chan error
}

func prepareBaton(ctx context.Context, addr string, o options) (runner, error) {
	nc, err := nats.Connect("nats://"+addr, nats.Name("baton-compare"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, err
	}
	sys := &service.System{Agents: o.agents, Concurrency: o.slots, Types: []string{"noop"},
		Logger: slog.New(slog.DiscardHandler), Limits: events.Limits{MaxTasks: max(o.tasks, events.DefaultMaxTasks)}}
	sctx, cancel := context.WithCancel(ctx)
	var g run.Group
	g.Add(run.ContextHandler(sctx))
	if _, err := sys.Add(sctx, &g, nc); err != nil {
		cancel()
		nc.Close()
		return nil, err
	}
	r := &batonRunner{nc: nc, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- g.Run() }()
	if r.cl, err = client.New(nc, sys.Streams); err != nil {
		_ = r.close()
		return nil, err
	}
	// The first job waits for the agents to register.
	warm, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	if err := r.run(warm, 1); err != nil {
		_ = r.close()
		return nil, fmt.Errorf("first job: %w", err)
	}
	return r, nil
}

func (r *batonRunner) run(ctx context.Context, n int) error {
	_, err := benchkit.RunRange(ctx, r.cl, "noop", n)
	return err
}

func (r *batonRunner) close() error {
	r.cancel()
	err := <-r.done
	r.nc.Close()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// errCount is returned when a system handled another number of tasks
// than it was given.
var errCount = errors.New("wrong number of tasks handled")

// counter counts handled tasks and closes all once n have been.
type counter struct {
	n    int64
	seen atomic.Int64
	all  chan struct{}
}

func newCounter(n int) *counter { return &counter{n: int64(n), all: make(chan struct{})} }

func (c *counter) handled() {
	if c.seen.Add(1) == c.n {
		close(c.all)
	}
}

// wait waits until every task has been handled, or a producer failed.
func (c *counter) wait(ctx context.Context, failed <-chan error) error {
	select {
	case <-c.all:
		return nil
	case err := <-failed:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%d of %d tasks handled: %w", c.seen.Load(), c.n, ctx.Err())
	}
}

// check says whether exactly n tasks were handled.
func (c *counter) check() error {
	if got := c.seen.Load(); got != c.n {
		return fmt.Errorf("%w: %d of %d", errCount, got, c.n)
	}
	return nil
}

// produce calls send n times, from producers goroutines, until one
// fails or ctx ends; the first error goes to the returned channel. wait
// waits for the goroutines.
func produce(ctx context.Context, n, producers int, send func() error) (failed <-chan error, wait func()) {
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	per := n / producers
	for p := range producers {
		k := per
		if p == producers-1 {
			k = n - per*(producers-1)
		}
		wg.Go(func() {
			for range k {
				err := ctx.Err()
				if err == nil {
					err = send()
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		})
	}
	return errs, wg.Wait
}

// asynqRunner enqueues n tasks with asynq's client and runs them on an
// asynq server with a no-op handler. The server starts once the first
// task is queued: an asynq server that finds every queue empty sleeps up
// to its TaskCheckInterval (a second by default) before it looks again,
// which a throughput figure should not count from its start. When its
// workers outrun the producers later, it sleeps so too: that is counted,
// as a user of the defaults sees it.
type asynqRunner struct {
	opt         asynq.RedisClientOpt
	cl          *asynq.Client
	concurrency int
	producers   int
	srv         *asynq.Server
	count       *counter
	producing   func() // waits for the producers
}

func prepareAsynq(addr string, producers, concurrency int) (runner, error) {
	opt := asynq.RedisClientOpt{Addr: addr}
	cl := asynq.NewClient(opt)
	if err := cl.Ping(); err != nil {
		_ = cl.Close()
		return nil, err
	}
	return &asynqRunner{opt: opt, cl: cl, concurrency: concurrency, producers: producers}, nil
}

func (r *asynqRunner) run(ctx context.Context, n int) error {
	r.count = newCounter(n)
	r.srv = asynq.NewServer(r.opt, asynq.Config{Concurrency: r.concurrency, LogLevel: asynq.ErrorLevel})
	enqueue := func() error {
		_, err := r.cl.EnqueueContext(ctx, asynq.NewTask("noop", nil))
		return err
	}
	// The first task is queued before the server looks: it would sleep
	// if it found the queue empty.
	if err := enqueue(); err != nil {
		return err
	}
	failed, wait := produce(ctx, n-1, r.producers, enqueue)
	r.producing = wait
	if err := r.srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		r.count.handled()
		return nil
	})); err != nil {
		return err
	}
	return r.count.wait(ctx, failed)
}

func (r *asynqRunner) close() error {
	if r.producing != nil {
		r.producing()
	}
	if r.srv != nil {
		r.srv.Shutdown() // waits for its workers
	}
	_ = r.cl.Close()
	if r.count == nil {
		return nil
	}
	return r.count.check()
}

// watermillRunner publishes n messages with watermill-nats's JetStream
// publisher and handles them in a watermill router with a no-op handler:
// one hop, no task state.
type watermillRunner struct {
	pub       *wmnats.Publisher
	router    *message.Router
	cancel    context.CancelFunc
	done      chan error
	producers int
	producing func() // waits for the producers
	mu        sync.Mutex
	count     *counter
}

const watermillTopic = "compare"

func prepareWatermill(ctx context.Context, addr string, producers, subscribers int) (_ runner, err error) {
	url := "nats://" + addr
	logger := watermill.NopLogger{}
	pub, err := wmnats.NewPublisher(wmnats.PublisherConfig{URL: url}, logger)
	if err != nil {
		return nil, err
	}
	js := wmnats.JetStreamConfig{AutoProvision: true}
	cfg := wmnats.SubscriberConfig{URL: url, SubscribersCount: subscribers, JetStream: js}
	if subscribers > 1 {
		// Else each subscriber gets every message.
		cfg.QueueGroupPrefix, cfg.JetStream.DurablePrefix = "compare", "compare"
	}
	sub, err := wmnats.NewSubscriber(cfg, logger)
	if err != nil {
		_ = pub.Close()
		return nil, err
	}
	router, err := message.NewRouter(message.RouterConfig{}, logger)
	if err != nil {
		_ = pub.Close()
		_ = sub.Close()
		return nil, err
	}
	r := &watermillRunner{pub: pub, router: router, producers: producers, done: make(chan error, 1)}
	router.AddNoPublisherHandler("noop", watermillTopic, sub, func(*message.Message) error {
		r.mu.Lock()
		c := r.count
		r.mu.Unlock()
		if c != nil {
			c.handled()
		}
		return nil
	})
	rctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	go func() { r.done <- router.Run(rctx) }()
	select {
	case <-router.Running():
		return r, nil
	case err := <-r.done:
		cancel()
		_ = pub.Close()
		return nil, fmt.Errorf("watermill router: %v", err)
	case <-ctx.Done():
		_ = r.close()
		return nil, ctx.Err()
	}
}

func (r *watermillRunner) run(ctx context.Context, n int) error {
	c := newCounter(n)
	r.mu.Lock()
	r.count = c
	r.mu.Unlock()
	failed, wait := produce(ctx, n, r.producers, func() error {
		return r.pub.Publish(watermillTopic, message.NewMessage(watermill.NewUUID(), nil))
	})
	r.producing = wait
	return c.wait(ctx, failed)
}

func (r *watermillRunner) close() error {
	if r.producing != nil {
		r.producing()
	}
	err := r.router.Close() // waits for its handlers
	r.cancel()
	<-r.done
	_ = r.pub.Close()
	if err != nil {
		return err
	}
	if r.count == nil {
		return nil
	}
	return r.count.check()
}
