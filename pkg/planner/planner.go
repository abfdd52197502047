package planner

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/lead"
	"github.com/baton-dev/baton/pkg/lease"
	"github.com/baton-dev/baton/pkg/registry"
	"github.com/baton-dev/baton/pkg/webhook"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// Planner is the planning service. Create it with New and run it with Run.
//
// One goroutine, Run's loop, owns every workflow's state: results, jobs and
// control requests all reach it through channels, so nothing in flows is
// locked.
type Planner struct {
	cfg  Config
	nc   *nats.Conn
	js   jetstream.JetStream
	kv   jetstream.KeyValue // workflow records and specs
	key  *lease.Key         // signs tasks, checks results
	subj events.Subjects
	log  *slog.Logger

	reg    *registry.Registry
	agents *registry.View // the registry, followed: what new jobs are checked against
	asker  *registry.Asker

	flows     map[string]*flow
	replaying bool
	confirms  *streams.Confirms          // tasks and results published, acknowledgements awaited (set by Run)
	out       outbox                     // what flush waits to see stored
	unsent    []*nats.Msg                // to be stored by flush
	wake      map[string]bool            // wake subjects of lanes that got tasks
	sent      int                        // messages published since the last flush
	results   *streams.Follower          // RESULTS, as the loop follows it (set by Run)
	lastSeq   uint64                     // RESULTS' last sequence when the replay started
	backlog   []*flow                    // flows with ready tasks past the window (dispatchWindow)
	ctl       chan *ctlCall              // control requests for the loop
	unwritten map[string]events.Workflow // finished workflows' records not stored yet (checkpoint writes them)
	refused   events.Refusals            // results refused, by kind and source
	hooks     *webhook.Sender            // escalation webhooks; Run owns it
}

// New checks cfg and returns a planner that will use nc. It does no I/O.
func New(nc *nats.Conn, cfg Config) (*Planner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("planner: %w", err)
	}
	return &Planner{
		cfg: cfg, nc: nc, js: js, subj: cfg.Streams.Subjects(), log: cfg.Logger.With("service", "planner"),
		flows: map[string]*flow{}, wake: map[string]bool{}, ctl: make(chan *ctlCall), unwritten: map[string]events.Workflow{},
	}, nil
}

// Run plans jobs and follows results until ctx is cancelled (then it returns
// nil) or JetStream fails in a way it cannot ride out. It may be called once.
//
// It replays the results of every unfinished workflow first; jobs and
// control requests are taken only once the replay has caught up, so that
// nothing is decided on half-rebuilt state.
func (p *Planner) Run(ctx context.Context) (err error) {
	defer func() {
		if ctx.Err() != nil {
			err = nil // stopped: what failed meanwhile was cut short by it
		}
	}()
	if err := p.open(ctx); err != nil || ctx.Err() != nil {
		return err // nil if stopped while waiting for JetStream
	}
	defer p.confirms.Close()
	// The reaper marks agents whose heartbeat stopped as failed; it lives
	// as long as Run.
	reapCtx, stopReaper := context.WithCancel(ctx)
	var reaper sync.WaitGroup
	reaper.Go(func() { _ = registry.NewReaper(p.reg, p.nc, p.cfg.Streams, p.log).Run(reapCtx) })
	// So does the view of the registry that new jobs are checked against.
	reaper.Go(func() { p.agents.Run(reapCtx) })
	defer reaper.Wait()
	defer stopReaper()

	// Escalation webhooks are sent on goroutines of their own, never on
	// the loop; they are abandoned when Run returns.
	p.hooks = webhook.New(webhook.Config{}, p.reportWebhook)
	defer p.hooks.Stop()

	results, err := p.startReplay(ctx)
	if err != nil {
		return err
	}
	defer results.Stop()
	in := &intake{p: p}
	defer in.stop()
	if !p.replaying {
		if err := p.finishReplay(ctx); err != nil {
			return err
		}
		if err := in.start(ctx); err != nil {
			return err
		}
	}
	p.results = results
	return p.loop(ctx, results, in)
}

// open ensures the streams and opens the buckets.
func (p *Planner) open(ctx context.Context) error {
	if err := streams.EnsureWait(ctx, p.js, p.cfg.Streams, p.log); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting for JetStream
		}
		return err
	}
	kv, err := p.js.KeyValue(ctx, p.cfg.Streams.WorkflowsBucket())
	if err != nil {
		return fmt.Errorf("planner: workflows bucket: %w", err)
	}
	p.kv = kv
	if p.key, err = lease.Open(ctx, p.js, p.cfg.Streams.KeysBucket()); err != nil {
		return err
	}
	if p.reg, err = registry.Open(ctx, p.js, p.cfg.Streams); err != nil {
		return err
	}
	p.asker = registry.NewAsker(p.reg, p.nc, p.subj, 0, p.log)
	p.agents = registry.NewView(p.reg, p.cfg.Streams.WithDefaults().AgentTTL)
	if p.confirms, err = streams.OpenConfirms(p.nc); err != nil {
		return fmt.Errorf("planner: %w", err)
	}
	p.out.settled = make(chan struct{}, 1)
	return nil
}

// loop is the one goroutine that owns the workflows.
func (p *Planner) loop(ctx context.Context, results *streams.Follower, in *intake) error {
	// Work in progress when ctx ends is finished, not cut (see WorkContext).
	work, cancel := streams.WorkContext(ctx, stopWait)
	defer cancel()
	tick := time.NewTicker(p.cfg.Checkpoint)
	defer tick.Stop()
	for {
		var more <-chan struct{} // ready while flows wait for a window
		if len(p.backlog) > 0 {
			more = always
		}
		select {
		case <-ctx.Done():
			p.stop(ctx, results, nil)
			return nil
		case <-more:
			p.dispatchBacklog()
			if err := p.flush(work); err != nil {
				return err
			}
		case m := <-results.C:
			if ctx.Err() != nil { // stopping: the select chose the message
				p.stop(ctx, results, m)
				return nil
			}
			caughtUp := p.onResult(work, m)
			// Take what else has arrived before flushing, in one batch.
			for more := true; more && p.sent < 4096; {
				select {
				case m := <-results.C:
					caughtUp = p.onResult(work, m)
				default:
					more = false
				}
			}
			if p.replaying && caughtUp {
				if err := p.finishReplay(work); err != nil {
					return err
				}
				if err := in.start(ctx); err != nil {
					return err
				}
			}
			if err := p.flush(work); err != nil {
				return err
			}
			if !p.replaying {
				p.stopEarly(work)
			}
		case m := <-in.jobs:
			if err := p.onJob(work, m); err != nil {
				return err
			}
		case c := <-p.ctl:
			p.onControl(work, c)
		case now := <-tick.C:
			if !p.replaying {
				p.expireDue(work, now)
				p.stopEarly(work)
				if err := p.flush(work); err != nil {
					return err
				}
			}
			p.checkpoint(work, false)
		}
	}
}

// always is a closed channel: a select case on it is always ready.
var always = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// stopWait bounds how long a stopping planner takes the results stored
// before it stopped.
const stopWait = 5 * time.Second

// stop applies the results stored until now (the last ones of draining
// agents, first m if not nil), stores what follows from them, and writes
// every record: the next planner has less to replay.
//
// A planner whose lead was lost does none of that: another replica may lead
// already, and this one stops acting at once (package lead), as if it had
// died; the next replays what it had not recorded.
func (p *Planner) stop(ctx context.Context, results *streams.Follower, m jetstream.Msg) {
	if lead.Lost(ctx) {
		p.log.Warn("lead lost: stopping without applying or recording more; the next planner replays it")
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopWait)
	defer cancel()
	if m != nil {
		p.onResult(ctx, m)
	}
	if !p.replaying {
		if err := results.Drain(ctx, stopWait, func(m jetstream.Msg) { p.onResult(ctx, m) }); err != nil {
			p.log.Warn("stopping before every stored result was applied; the next start replays them", "err", err)
		}
		if err := p.flush(ctx); err != nil {
			p.log.Warn("flush", "err", err)
		}
	}
	p.checkpoint(ctx, true)
}

// intake is what lets work in: the JOBS consumer and the control service.
// Its jobs channel is nil, so never ready, until start.
type intake struct {
	p    *Planner
	jobs chan jetstream.Msg
	done chan struct{}
	jc   jetstream.ConsumeContext
	svc  micro.Service
}

func (in *intake) start(ctx context.Context) error {
	p := in.p
	var err error
	if in.svc, err = p.startService(ctx); err != nil {
		return err
	}
	cons, err := p.js.CreateOrUpdateConsumer(ctx, p.cfg.Streams.JobsStream(), p.cfg.Streams.Planner())
	if err != nil {
		return fmt.Errorf("planner: jobs consumer: %w", err)
	}
	in.jobs, in.done = make(chan jetstream.Msg, 64), make(chan struct{})
	in.jc, err = cons.Consume(func(m jetstream.Msg) {
		select {
		case in.jobs <- m:
		case <-in.done:
			handBack(p.log, m) // stopping
		}
	}, append(streams.Liveness(), jetstream.PullMaxMessages(16))...)
	if err != nil {
		return fmt.Errorf("planner: jobs consumer: %w", err)
	}
	return nil
}

// stop stops the service, then the consumer. Jobs it had fetched and the
// loop had not taken are handed back (a nak), so the next planner takes
// them at once: left to the consumer's ack wait, a job delivered to a
// planner that lost its lead waited 30 s to be planned.
func (in *intake) stop() {
	if in.svc != nil {
		_ = in.svc.Stop()
	}
	if in.jc == nil {
		return
	}
	close(in.done)
	// Drain hands the consumer's buffered jobs to the callback, which
	// naks them now; a drain that cannot finish (the connection lost)
	// is cut short, and what it held waits for its ack wait.
	in.jc.Drain()
	select {
	case <-in.jc.Closed():
	case <-time.After(intakeDrain):
		in.jc.Stop()
	}
	for {
		select {
		case m := <-in.jobs:
			handBack(in.p.log, m)
		default:
			return
		}
	}
}

// intakeDrain bounds how long a stopping planner hands back the jobs its
// consumer had buffered.
const intakeDrain = 2 * time.Second

// checkpoint writes the counters of workflows that changed (all: every one).
// Records of finished workflows whose last write failed are written again,
// unless the workflow is open again (its flow's record is the newer).
func (p *Planner) checkpoint(ctx context.Context, all bool) {
	for _, f := range p.flows {
		if !f.dirty && !all {
			continue
		}
		f.refresh()
		if err := p.putRecord(ctx, &f.rec); err != nil {
			p.log.Warn("checkpoint", "workflow", f.rec.ID, "err", err)
			continue // still dirty
		}
		f.dirty = false
	}
	for id, rec := range p.unwritten {
		if p.flows[id] == nil {
			if err := p.putRecord(ctx, &rec); err != nil {
				p.log.Warn("checkpoint", "workflow", id, "err", err)
				continue
			}
			p.log.Info("finished workflow recorded", "workflow", id, "status", rec.Status)
		}
		delete(p.unwritten, id)
	}
}

func (p *Planner) getRecord(ctx context.Context, id string) (*events.Workflow, error) {
	rec, err := streams.GetWorkflow(ctx, p.kv, id)
	if err != nil {
		return nil, fmt.Errorf("planner: %w", err)
	}
	return rec, nil
}

func (p *Planner) putRecord(ctx context.Context, rec *events.Workflow) error {
	if err := streams.PutWorkflow(ctx, p.kv, rec); err != nil {
		return fmt.Errorf("planner: %w", err)
	}
	return nil
}
