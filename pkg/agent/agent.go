package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/permit"
	"github.com/baton-dev/baton/pkg/registry"
	"github.com/baton-dev/baton/pkg/retry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Agent serves the lanes of the task types it has handlers for.
type Agent struct {
	cfg      Config
	nc       *nats.Conn
	js       jetstream.JetStream
	subj     events.Subjects
	log      *slog.Logger
	handlers map[string]Handler
	mw       []Middleware

	// gate takes the permits of tasks with synchronisation points
	// (concurrency keys, rates, per-type caps); stopping is closed when
	// Run's context ends, so tasks waiting for permits are handed back.
	gate     *permit.Gate
	stopping <-chan struct{}

	mu       sync.Mutex
	running  map[*job]struct{}
	waiting  int                  // of running: tasks waiting for permits, holding no slot
	paused   map[string]time.Time // workflow → until when no task of it may start
	draining bool
	started  time.Time
	done     atomic.Int64
	failures atomic.Int64
	freed    chan struct{} // a slot came free
	reserved atomic.Int32  // free slots held by standbys (standby.go)
	changed  atomic.Bool   // running tasks changed since the registry entry was written
	// These say once that heartbeats, permit requests or result stores
	// fail (the server is unreachable), then once that they work again;
	// each lane has its own for fetches.
	beating, gating, storing outage
	refused                  events.Refusals // task messages refused as forged
	// A crash drill sets dead, closes crashed and ends the fetch loop
	// through stopLoop (set by Run).
	dead      atomic.Bool
	crashed   chan struct{}
	crashOnce sync.Once
	stopLoop  context.CancelFunc
	capacity  capacity          // declared resources and what running tasks hold
	proc      procSampler       // the process's CPU and RSS, for the registry
	workers   *pool             // the goroutines tasks run on (set by Run)
	confirms  *streams.Confirms // results waiting for their acknowledgements (set by Run)
	results   string            // the results stream's name (set by Run)
	// unconfirmed counts results published and not yet stored or given
	// up on (storeResult).
	unconfirmed atomic.Int32
	starts      *starts // started events gathered for a short window
}

// outage logs a run of failures once, at its start, and once at its end,
// instead of once per failure (hundreds a second while a server is away).
type outage struct {
	down     atomic.Bool
	failures atomic.Int64
}

func (o *outage) fail(log *slog.Logger, what string, err error, args ...any) {
	o.failures.Add(1)
	if o.down.CompareAndSwap(false, true) {
		log.Warn(what+" fails; logging again when it works", append(args, "err", err)...)
	}
}

func (o *outage) ok(log *slog.Logger, what string, args ...any) {
	if o.down.CompareAndSwap(true, false) {
		log.Info(what+" works again", append(args, "failures", o.failures.Swap(0))...)
	}
}

// job is one task being handled.
type job struct {
	msg    jetstream.Msg
	lane   *lane // where it came from
	wf, id string
	cancel context.CancelFunc
	// Set under Agent.mu by a control command: the task was cancelled (end
	// it with a cancelled result, with why and kind) or handed back by a
	// pause with --now (end it without a result; the planner queues it
	// again on resume).
	cancelled, handback bool
	why, kind           string
	// waiting: the task waits for permits and holds no slot (under Agent.mu).
	waiting bool
	// started: its handler runs or has run (under Agent.mu); until then a
	// pause hands it back.
	started bool
	need    need // what it holds of the agent's capacity
}

type lane struct {
	typ  string
	prio int
	tok  string // the lane subject's priority token (events.LaneToken)
	cons jetstream.Consumer
	hold laneHold // set when its last task did not fit the capacity
	// silent holds it after unanswered fetches (fetch loop only).
	silent backoff
	// maybe is false while the lane is known to be empty: its last fetch
	// came back short and no wake-up or poll tick has come since. It spares
	// a round trip to every empty lane each time a slot frees.
	maybe atomic.Bool
	// armed is true while the lane has a standby (standby.go); lastActive
	// is when it last brought a task or had a wake-up (Unix ns), to arm
	// busy lanes first.
	armed      atomic.Bool
	lastActive atomic.Int64
	// retries are when the retries this agent set on the lane come due:
	// the fetch loop marks the lane then (poll.go).
	retries retries
	// fetching logs this lane's fetch failures (an outage per lane: a
	// lane without a leader while others work logged a failure and a
	// recovery every poll when the agent shared one).
	fetching outage
}

// New returns an agent that will use nc. It does no I/O.
func New(nc *nats.Conn, cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a := &Agent{
		cfg: cfg, nc: nc, js: js, subj: cfg.Streams.Subjects(),
		log:      cfg.Logger.With("service", "agent", "agent", cfg.ID),
		handlers: map[string]Handler{}, running: map[*job]struct{}{}, paused: map[string]time.Time{},
		freed: make(chan struct{}, 1), crashed: make(chan struct{}),
		capacity: capacity{cpu: cfg.CPUMilli(), mem: cfg.Memory},
	}
	a.starts = newStarts(func(e events.Event) {
		if !a.dead.Load() { // a crashed agent (a drill) says nothing more
			a.event(e)
		}
	})
	return a, nil
}

// ID returns the agent's id.
func (a *Agent) ID() string { return a.cfg.ID }

// Handle registers h for tasks of taskType. Call it before Run.
func (a *Agent) Handle(taskType string, h Handler) {
	a.handlers[taskType] = h
}

// Use adds middleware around every handler; the first added is outermost
// (inside Recover). Call it before Run.
func (a *Agent) Use(mw ...Middleware) { a.mw = append(a.mw, mw...) }

// Types lists the registered task types, sorted.
func (a *Agent) Types() []string {
	out := make([]string, 0, len(a.handlers))
	for t := range a.handlers {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Run serves tasks until ctx is cancelled, then drains: running tasks finish
// (or, after DrainTimeout, are cancelled and handed back), the registry entry
// is removed, and Run returns nil. It may be called once.
func (a *Agent) Run(ctx context.Context) error {
	types, err := a.prepare()
	if err != nil {
		return err
	}
	// The planner creates the streams; an agent only waits for them (and
	// creates its own types' lanes), so it needs no stream-admin rights.
	c := a.cfg.Streams
	if err := streams.Wait(ctx, a.js, c, a.log, c.TasksStream(), c.ResultsStream(), c.DeadStream(), streams.BucketStream(c.AgentsBucket()),
		streams.BucketStream(c.PermitsBucket()), streams.BucketStream(c.RatesBucket()), streams.BucketStream(c.LimitsBucket())); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting for JetStream
		}
		return err
	}
	// A cluster still electing its leaders can time requests out: each
	// step is tried again until it works or the agent is stopped.
	var lanes []*lane
	var reg *registry.Registry
	err = retry.Do(ctx, a.log, "opening the lanes, the registry and the permits", 0, func() (err error) {
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if lanes == nil {
			if lanes, err = a.openCapLanes(tctx, types); err != nil {
				return err
			}
		}
		if reg == nil {
			if reg, err = registry.Open(tctx, a.js, a.cfg.Streams); err != nil {
				return err
			}
		}
		a.gate, err = permit.Open(tctx, a.js, a.cfg.Streams, a.cfg.ID, a.log)
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting
		}
		return err
	}
	defer a.gate.Close()
	a.stopping = ctx.Done()
	wake, stopWake, err := a.listenWake(types, lanes)
	if err != nil {
		return err
	}
	defer stopWake()
	a.started = time.Now().UTC()
	loop, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	a.mu.Lock()
	a.stopLoop = stopLoop
	a.mu.Unlock()
	svc, err := a.startService()
	if err != nil {
		return err
	}
	// Stopped last: while draining, the planner can still ask what runs.
	defer func() { _ = svc.Stop() }()

	a.results = c.ResultsStream()
	if a.confirms, err = streams.OpenConfirms(a.nc); err != nil {
		return fmt.Errorf("agent: results: %w", err)
	}
	defer a.confirms.Close()
	a.workers = newPool()
	defer a.workers.stop() // once every task is settled (drain, abandon)

	// Handlers run under work, not ctx: a shutdown lets them finish.
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	var tasks sync.WaitGroup
	var side sync.WaitGroup // heartbeat and progress loops
	sideCtx, stopSide := context.WithCancel(context.WithoutCancel(ctx))
	side.Go(func() { a.heartbeats(sideCtx, reg) })
	side.Go(func() { a.progress(sideCtx) })
	side.Go(func() { a.gate.Watch(sideCtx) })
	side.Go(func() { a.starts.run(sideCtx) })
	a.log.Info("agent started", "types", types, "concurrency", a.cfg.Concurrency)

	a.fetchLoop(loop, work, lanes, wake, &tasks)
	if a.dead.Load() {
		a.abandon(ctx, &tasks, stopWork, stopSide, &side, stopWake, func() { _ = svc.Stop() })
		return nil
	}

	a.drain(ctx, reg, &tasks, stopWork)
	stopSide()
	side.Wait()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := reg.Delete(dctx, a.cfg.ID); err != nil {
		a.log.Warn("leave registry", "err", err)
	}
	a.log.Info("agent stopped", "done", a.done.Load(), "failures", a.failures.Load())
	return nil
}

// prepare checks the registered types and wraps their handlers in the
// middleware; it returns the types, sorted.
func (a *Agent) prepare() ([]string, error) {
	types := a.Types()
	if len(types) == 0 {
		return nil, ErrNoHandlers
	}
	for _, t := range types {
		if !events.ValidToken(t) {
			return nil, fmt.Errorf("%w: task type %q: use 1-64 letters, digits, '-' or '_'", ErrConfig, t)
		}
		a.handlers[t] = Chain(a.handlers[t], append([]Middleware{Recover}, a.mw...)...)
	}
	return types, nil
}

// listenWake subscribes to the wake-up subjects of types: a wake-up marks
// its lane as maybe not empty and nudges the fetch loop. It marks a lane
// with a standby too: the fetch loop leaves that lane to its standby, whose
// task then says whether more wait (standbyMsg), but should the standby end
// without bringing the task (cancelled to free its slot, or giving way to a
// busier lane), the mark makes the loop fetch it instead of leaving it to
// the poll.
func (a *Agent) listenWake(types []string, lanes []*lane) (<-chan struct{}, func(), error) {
	bySubject := map[string]*lane{}
	for _, l := range lanes {
		bySubject[a.subj.WakeOn(l.typ, l.tok)] = l
	}
	wake := make(chan struct{}, 1)
	var subs []*nats.Subscription
	stop := func() {
		for _, sub := range subs {
			_ = sub.Unsubscribe()
		}
	}
	for _, t := range types {
		sub, err := a.nc.Subscribe(a.subj.WakeAll(t), func(m *nats.Msg) {
			if l := bySubject[m.Subject]; l != nil {
				l.maybe.Store(true)
				l.lastActive.Store(time.Now().UnixNano())
			}
			select {
			case wake <- struct{}{}:
			default:
			}
		})
		if err != nil {
			stop()
			return nil, nil, fmt.Errorf("agent: wake subscription: %w", err)
		}
		subs = append(subs, sub)
	}
	return wake, stop, nil
}

// drain waits for the running tasks, for at most DrainTimeout; then it
// cancels them (stopWork) and they are handed back.
func (a *Agent) drain(ctx context.Context, reg *registry.Registry, tasks *sync.WaitGroup, stopWork func()) {
	a.mu.Lock()
	a.draining = true
	n := len(a.running)
	a.mu.Unlock()
	a.log.Info("draining", "running", n)
	a.putInfo(context.WithoutCancel(ctx), reg)
	drained := make(chan struct{})
	go func() { tasks.Wait(); close(drained) }()
	timeout := time.NewTimer(a.cfg.DrainTimeout)
	defer timeout.Stop()
	select {
	case <-drained:
	case <-timeout.C:
		a.log.Warn("drain timeout: cancelling running tasks and handing them back")
		stopWork()
		<-drained
	}
}

// fetchLoop claims tasks, most urgent lane first, never more than free slots.
func (a *Agent) fetchLoop(ctx, work context.Context, lanes []*lane, wake <-chan struct{}, tasks *sync.WaitGroup) {
	p := newPolls(a.cfg.Poll, a.cfg.PollMax, time.Now())
	poll := time.NewTimer(a.cfg.Poll)
	defer poll.Stop()
	sb := newStandbys()
	defer sb.stopAll()
	turn := 0
	for ctx.Err() == nil {
		// Results waiting to be stored hold no slot, but at most
		// Concurrency of them wait (storeResult): a results stream without
		// a leader stalls the agent instead of running tasks whose results
		// go nowhere. Standbys hold theirs.
		reserved := int(a.reserved.Load())
		free := min(a.cfg.Concurrency-a.runningCount(), a.waitRoom(), a.cfg.Concurrency-int(a.unconfirmed.Load())) - reserved
		switch {
		case free <= 0 && reserved == 0:
			// Every slot is taken: only a freed one matters.
			select {
			case <-a.freed:
				freeLanes(lanes)
			case <-ctx.Done():
			}
			continue
		case free <= 0:
			// Standbys hold the free slots: they give them back if work
			// waits elsewhere (now, or once a wake-up or the poll says so).
			if workWaits(lanes) {
				sb.cancelAll()
			}
		default:
			turn++
			if a.fetchTurn(work, lanes, turn, free, tasks) > 0 {
				p.active(time.Now())
				continue
			}
			a.arm(work, lanes, free, tasks, sb)
		}
		poll.Reset(p.next(lanes, time.Now()))
		select {
		case <-wake:
			p.active(time.Now())
		case <-a.freed:
			// Not activity: a standby that expired frees its slot too.
			freeLanes(lanes)
		case <-poll.C:
			p.fire(lanes, time.Now())
		case <-ctx.Done():
		}
	}
}

// fetchTurn fetches up to free tasks, from the most urgent lanes that may
// hold some and have no standby (turn, counting the loop's turns, rotates
// the lanes within a priority); it returns how many came.
func (a *Agent) fetchTurn(work context.Context, lanes []*lane, turn, free int, tasks *sync.WaitGroup) int {
	// Lanes come priority by priority, width at each (openCapLanes).
	width := len(lanes) / len(events.Priorities)
	got := 0
	now := time.Now()
	for p := 0; p < len(lanes) && got == 0; p += width {
		// Within a priority, start with a different lane each turn.
		for k := range width {
			l := lanes[p+(k+turn)%width]
			if !l.fetchable(now) {
				continue
			}
			got += a.fetch(work, l, free-got, tasks)
			if got >= free {
				break
			}
		}
	}
	return got
}

func (a *Agent) fetch(work context.Context, l *lane, n int, tasks *sync.WaitGroup) int {
	// Cleared before the fetch, so a wake-up that comes during it stands.
	l.maybe.Store(false)
	n = a.fetchSize(n)
	began := time.Now()
	batch, err := l.cons.FetchNoWait(n)
	if err != nil {
		l.maybe.Store(true)
		l.fetching.fail(a.log, "fetching tasks", err, "lane", streams.LaneConsumerOn(l.typ, l.tok))
		return 0
	}
	got := 0
	var last jetstream.Msg
	for m := range batch.Messages() {
		got++
		last = m
		a.take(work, l, m, tasks)
	}
	if got > 0 {
		l.lastActive.Store(time.Now().UnixNano())
	}
	if now := time.Now(); got == 0 && batch.Error() == nil && now.Sub(began) >= unansweredAfter {
		// Nothing came, not even "no messages": the lane's consumer
		// leader is out of reach. Asked again at every turn, it would
		// block the loop a second each time.
		l.maybe.Store(true)
		wait := l.silent.grow(now, unansweredFirstHold, unansweredMaxHold)
		l.fetching.fail(a.log, "fetching tasks", fmt.Errorf("%w; asking the lane again in %v", errUnanswered, wait),
			"lane", streams.LaneConsumerOn(l.typ, l.tok))
		return 0
	}
	l.silent.reset() // answered
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, nats.ErrTimeout) {
		l.fetching.fail(a.log, "fetching tasks", err, "lane", streams.LaneConsumerOn(l.typ, l.tok))
	} else {
		l.fetching.ok(a.log, "fetching tasks", "lane", streams.LaneConsumerOn(l.typ, l.tok))
	}
	if got == n && morePending(last) {
		l.maybe.Store(true) // full batch: there may be more
	}
	return got
}

// unansweredAfter is how long a fetch that brought nothing took when no
// answer came: nats.go gives a fetch without wait a second for the
// server's answer ("no messages" comes in a round trip).
const unansweredAfter = 900 * time.Millisecond

// errUnanswered says a lane's fetch had no answer.
var errUnanswered = errors.New("no answer from the lane's consumer (its leader out of reach?)")

// How long the fetch loop leaves a lane alone after an unanswered fetch:
// from unansweredFirstHold, doubling while its fetches go unanswered, up to
// unansweredMaxHold. A consumer whose leader sat on a node cut off the
// network answers again once the cluster has elected another leader.
const (
	unansweredFirstHold = time.Second
	unansweredMaxHold   = 16 * time.Second
)

// morePending says whether the lane of task message m, just delivered,
// held more tasks then, as the server counted them into m's metadata: if
// not, fetching again at once would bring nothing (a task queued since
// comes with its wake-up, or to a standby). Unsure, it says yes.
func morePending(m jetstream.Msg) bool {
	md, err := m.Metadata()
	return err != nil || md.NumPending > 0
}

// take starts task message m, fetched from l or brought by its standby,
// on a worker: if it fits the agent's capacity and its workflow is not
// being paused.
func (a *Agent) take(work context.Context, l *lane, m jetstream.Msg, tasks *sync.WaitGroup) {
	need, ok := a.admit(work, l, m)
	if !ok {
		return
	}
	j := &job{msg: m, lane: l, wf: m.Headers().Get(events.HeaderWorkflow), id: m.Headers().Get(events.HeaderTask), need: need}
	var jctx context.Context
	jctx, j.cancel = context.WithCancel(work)
	a.mu.Lock()
	if a.dead.Load() {
		// Crashed meanwhile: the message is left to its ack wait.
		a.mu.Unlock()
		j.cancel()
		return
	}
	held := time.Now().Before(a.paused[j.wf])
	if !held {
		a.running[j] = struct{}{}
		a.changed.Store(true)
	}
	a.mu.Unlock()
	if held {
		// Its workflow is being paused: the planner withdraws it from
		// the lane and queues it again on resume.
		j.cancel()
		a.capacity.give(need)
		settle(a.log, "nak", m.Nak())
		return
	}
	tasks.Add(1)
	a.workers.run(func() {
		// A result waiting for its acknowledgement holds no slot: the
		// task is done when it is settled (tasks.Done, then or now).
		async := a.process(jctx, l.typ, j, tasks.Done)
		a.release(j)
		if !async {
			tasks.Done()
		}
	})
}

// mayHold marks l worth a fetch (the poll says it may hold tasks), unless
// a standby waits there: that brings the lane's tasks, and says when it
// ends whether more wait (morePending).
func (l *lane) mayHold() {
	if !l.armed.Load() {
		l.maybe.Store(true)
	}
}

// fetchable says whether the fetch loop asks l for tasks: it may hold
// some, has no standby (which brings them) and is not held.
func (l *lane) fetchable(now time.Time) bool {
	return !l.armed.Load() && l.maybe.Load() && !l.hold.held(now) && !l.silent.held(now)
}

// workWaits says whether a lane the fetch loop asks may hold tasks.
func workWaits(lanes []*lane) bool {
	now := time.Now()
	for _, l := range lanes {
		if l.fetchable(now) {
			return true
		}
	}
	return false
}

func (a *Agent) release(j *job) {
	j.cancel()
	a.mu.Lock()
	delete(a.running, j)
	if j.waiting {
		j.waiting = false
		a.waiting--
	}
	a.mu.Unlock()
	a.capacity.give(j.need)
	a.changed.Store(true)
	a.slotFreed()
}

// slotFreed wakes the fetch loop: a slot, capacity or room for a result
// came free.
func (a *Agent) slotFreed() {
	select {
	case a.freed <- struct{}{}:
	default:
	}
}

// runningCount is how many slots are taken: tasks running, not those
// waiting for permits.
func (a *Agent) runningCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.running) - a.waiting
}

// process runs one task and settles its message. A completed plain task's
// result is published without waiting: process returns true, and settled
// is called once the result is stored and the message acknowledged (or
// left to its ack wait).
func (a *Agent) process(ctx context.Context, typ string, j *job, settled func()) (async bool) {
	if a.dead.Load() {
		return false // crashed (a drill) since the fetch
	}
	m := j.msg
	attempt := attemptOf(m)
	t, err := events.DecodeTask(m.Data())
	if err != nil {
		a.undecodable(ctx, j, err)
		return false
	}
	if err := cmp.Or(a.subj.CheckTaskMsg(m.Subject(), typ, t), a.checkRequires(t)); err != nil {
		a.forged(ctx, j, err)
		return false
	}
	// Built only when something is logged: most tasks log nothing.
	log := func() *slog.Logger { return a.log.With("workflow", t.Workflow, "task", t.ID, "attempt", attempt) }
	if attempt > t.MaxAttempts {
		// Earlier holders died or stalled past the ack wait every time.
		a.fail(ctx, t, m, attempt, nil, events.KindLost,
			fmt.Errorf("given up after %d deliveries: the agents holding it stopped answering", attempt-1))
		return false
	}
	var held *permit.Held
	if a.gate.Needs(t) { // no I/O: a plain task goes straight on
		var ok bool
		if held, ok = a.acquire(ctx, log(), j, t, attempt); !ok {
			return false
		}
		// Given back once the task is settled, so that the next holder
		// starts after this one's result is stored.
		defer held.Release(ctx)
	}
	// The task starts here unless a command stopped it first: a pause
	// hands back a task that has not started (control.go), and one that
	// has runs on. Decided under the lock, so the planner's checkpoint and
	// what runs agree.
	started := time.Now()
	a.mu.Lock()
	j.started = !j.cancelled && !j.handback
	a.mu.Unlock()
	if !j.started {
		a.settleInterrupted(ctx, log, j, t, attempt, started)
		return false
	}
	a.starts.add(t.Workflow, t.ID, a.cfg.ID, started.UTC())
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = events.DefaultTimeout // a task from another producer may leave it out
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	stopLost := a.cancelOnLost(held, cancel)
	task := &Task{Task: *t, Attempt: attempt, Agent: a.cfg.ID}
	var value any
	var herr error
	cpu, measured := measure(func() { value, herr = a.handlers[typ].Handle(hctx, task) })
	timedOut := errors.Is(hctx.Err(), context.DeadlineExceeded)
	cancel()
	lost := stopLost()
	if a.dead.Load() {
		return false // crashed (a drill): a dead agent settles nothing
	}
	if a.settleInterrupted(ctx, log, j, t, attempt, started) {
		return false
	}
	if herr == nil {
		var data json.RawMessage
		if data, herr = encodeValue(value); herr == nil && len(data) > a.maxData() {
			herr = fmt.Errorf("%w: its data is %d bytes, more than the %d a result may hold here: return a reference to large data, not the data",
				errResultTooLarge, len(data), a.maxData())
		}
		if herr == nil {
			r := a.result(t, attempt, started, events.StateCompleted)
			r.Data = data
			r.Usage = task.usage(cpu, measured)
			acked := func(stored bool, err error) {
				switch {
				case !stored:
					log().Warn("publish result; the task will be redelivered", "err", err)
				case a.dead.Load():
					// crashed (a drill): a dead agent settles nothing
				default:
					a.done.Add(1)
					if err := m.Ack(); err != nil {
						log().Warn("ack", "err", err)
					}
				}
			}
			if held != nil {
				// The permit is given back after the result is stored.
				err := a.publishResultClaimed(ctx, m, r)
				acked(err == nil, err)
				return false
			}
			msg, err := a.subj.ResultMsg(r, events.ResultByAgent(r))
			if err != nil {
				log().Warn("encode result; the task will be redelivered", "err", err)
				return false
			}
			a.storeResult(m, msg, func(stored bool, err error) {
				acked(stored, err)
				settled()
			})
			return true
		}
		herr = Permanent(herr)
	}
	if (ctx.Err() != nil || lost) && !timedOut {
		// Shutdown gave up waiting, or the task's permit was lost (another
		// holder may run now): hand the task back, at no cost.
		a.handBack(ctx, log(), m, attempt)
		return false
	}
	if timedOut {
		herr = fmt.Errorf("timed out after %v: %w", timeout, herr)
	}
	a.failed(ctx, log(), t, j, attempt, task.usage(cpu, measured), herr, timedOut)
	return false
}

// failed settles a task whose handler returned herr: as the handler asked
// (RetryAfter), or as retry.After decides from its attempts, permanence
// and fallback.
func (a *Agent) failed(ctx context.Context, log *slog.Logger, t *events.Task, j *job, attempt int, usage *events.TaskUsage, herr error, timedOut bool) {
	m := j.msg
	var snooze *RetryAfterError
	var perm *PermanentError
	kind := events.KindError
	switch {
	case errors.As(herr, &perm):
		kind = events.KindPermanent
		if errors.Is(herr, errResultTooLarge) {
			kind = events.KindTooLarge
		}
	case errors.As(herr, &snooze):
		log.Info("retry requested", "after", snooze.Delay, "err", herr)
		a.retry(log, j, snooze.Delay)
		return
	case timedOut:
		kind = events.KindTimeout
	case errors.Is(herr, ErrPanic):
		kind = events.KindPanic
	}
	d := retry.After(t, attempt, perm != nil)
	if d.Action == retry.Again {
		log.Info("task failed; will retry", "in", d.Delay, "err", herr)
		a.event(events.Event{Workflow: t.Workflow, Kind: events.EventRetry, Task: t.ID, Agent: a.cfg.ID,
			Message: fmt.Sprintf("attempt %d of %d failed (%s); retrying in %v", attempt, t.MaxAttempts, events.Clip(herr.Error(), MaxErrorText), d.Delay.Round(time.Millisecond))})
		a.retry(log, j, d.Delay)
		return
	}
	a.fail(ctx, t, m, attempt, usage, kind, herr)
}

// retry hands task j back to its lane to come back after delay, and has
// the fetch loop look at the lane then (no wake-up announces a retry).
func (a *Agent) retry(log *slog.Logger, j *job, delay time.Duration) {
	if err := j.msg.NakWithDelay(delay); err != nil {
		settle(log, "nak", err)
		return
	}
	if j.lane != nil {
		j.lane.retries.add(time.Now().Add(delay))
	}
}

// cancelled ends a task stopped by a cancel command. It stores a cancelled
// result first, under the same message id as the planner's own record of
// the cancellation (so the two are stored once): whoever sent the command,
// the workflow learns the task's end and never waits for it. Should the
// result not be stored, the task is handed back instead.
func (a *Agent) cancelled(ctx context.Context, log *slog.Logger, t *events.Task, m jetstream.Msg, attempt int, started time.Time, why, kind string) {
	r := a.result(t, attempt, started, events.StateCancelled)
	r.ErrorKind, r.Error = kind, why
	msg, err := a.subj.ResultMsg(r, "cancel")
	if err == nil {
		err = a.store(ctx, msg)
	}
	if err != nil {
		log.Warn("cancelled, but its result was not stored; handing it back", "err", err)
		settle(log, "nak", m.Nak())
		return
	}
	log.Info("task cancelled")
	settle(log, "term", m.Term())
}

// attemptOf is the attempt a delivery of m is: the attempts earlier copies
// used (HeaderAttempts) plus this copy's delivery count.
func attemptOf(m jetstream.Msg) int {
	delivered := int(deliveriesOf(m.Reply()))
	before, err := strconv.Atoi(m.Headers().Get(events.HeaderAttempts))
	if err != nil || before < 0 || before > events.MaxAttemptsHeader {
		before = 0
	}
	return before + delivered
}

// deliveriesOf is how many times the server has delivered the message
// whose acknowledgement subject is reply, the count Metadata gives
// (NumDelivered), read without building the rest of the metadata: it is
// read once per task. Not an acknowledgement subject, or a count that is
// not a positive number: 1.
//
//	$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>
//	$JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>[.<token>]
func deliveriesOf(reply string) uint64 {
	rest, ok := strings.CutPrefix(reply, "$JS.ACK.")
	if !ok {
		return 1
	}
	skip := 2 // stream, consumer
	switch tokens := strings.Count(rest, ".") + 3; {
	case tokens == 9:
	case tokens >= 11: // as the jetstream package: a later token may go
		skip = 4 // domain and account first
	default:
		return 1
	}
	for range skip {
		_, rest, _ = strings.Cut(rest, ".")
	}
	tok, _, _ := strings.Cut(rest, ".")
	n, err := strconv.ParseUint(tok, 10, 64)
	if err != nil || n == 0 || n > math.MaxInt32 {
		return 1
	}
	return n
}

// handBack returns a task this agent started and will not finish (it is
// shutting down) without using up one of its attempts: a copy goes back on
// its lane, saying how many attempts earlier deliveries used, and this
// delivery ends. Should the copy not be stored, the message is handed back
// as it is (and the delivery counts).
func (a *Agent) handBack(ctx context.Context, log *slog.Logger, m jetstream.Msg, attempt int) {
	cp := nats.NewMsg(m.Subject())
	cp.Data = m.Data()
	for k, v := range m.Headers() {
		cp.Header[k] = v
	}
	seq := uint64(0)
	if meta, err := m.Metadata(); err == nil {
		seq = meta.Sequence.Stream
	}
	cp.Header.Set(events.HeaderAttempts, strconv.Itoa(attempt-1))
	cp.Header.Set(events.HeaderMsgID, events.MsgID(m.Headers().Get(events.HeaderMsgID), "h", seq))
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := a.js.PublishMsg(pctx, cp); err != nil {
		log.Warn("hand back: the copy was not stored; handing the delivery back", "err", err)
		settle(log, "nak", m.Nak())
		return
	}
	log.Info("handed back: queued again at no cost of an attempt", "attempts_used", attempt-1)
	settle(log, "term", m.Term())
}

// settle logs a failed acknowledgement (ack, nak, term, in progress): the
// message then comes back after the ack wait, which is safe but slow, and
// an operator should see why.
func settle(log *slog.Logger, what string, err error) {
	if err != nil {
		log.Warn(what, "err", err)
	}
}

// MaxErrorText is how much of a handler's error a failed task's result
// keeps.
const MaxErrorText = 4096

// resultRoom is what a result's fields other than its data, and its
// message's subject and headers, may take of the server's max payload.
const resultRoom = 8 << 10

// errResultTooLarge fails a task whose data cannot be stored as a result:
// retrying would make the same.
var errResultTooLarge = errors.New("result too large")

// maxData is how many bytes a result's data may take.
func (a *Agent) maxData() int { return int(a.nc.MaxPayload()) - resultRoom }

func encodeValue(v any) (json.RawMessage, error) {
	if raw, ok := v.(json.RawMessage); ok {
		if !json.Valid(raw) {
			return nil, errors.New("handler returned invalid JSON")
		}
		return raw, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode handler result: %w", err)
	}
	return b, nil
}

func (a *Agent) result(t *events.Task, attempt int, started time.Time, status string) *events.Result {
	return &events.Result{
		Workflow: t.Workflow, Task: t.ID, Step: t.Step, Index: t.Index, Type: t.Type, Round: t.Round,
		Status: status, Final: true, Attempts: attempt, Agent: a.cfg.ID,
		Started: started.UnixNano(), Finished: time.Now().UnixNano(), Gen: t.Gen, Priority: t.Priority, Lease: t.Lease,
		CapKey: events.CapKey(t.Requires),
	}
}

// fail ends a task for good: dead letter first, then the failed result, then
// Term. A failure with a fallback to go is not final: the planner sends the
// task to its fallback type.
func (a *Agent) fail(ctx context.Context, t *events.Task, m jetstream.Msg, attempt int, usage *events.TaskUsage, kind string, cause error) {
	a.failures.Add(1)
	log := a.log.With("workflow", t.Workflow, "task", t.ID)
	// A handler's error may be of any length: the result holds its start.
	why := events.Clip(cause.Error(), MaxErrorText)
	log.Warn("task failed", "kind", kind, "attempts", attempt, "err", why)
	if err := a.deadLetter(ctx, t.Workflow, t.ID, m, kind, errors.New(why)); err != nil {
		log.Warn("dead letter; the task will be redelivered", "err", err)
		return
	}
	r := a.result(t, attempt, time.Now(), events.StateFailed)
	r.Error, r.ErrorKind, r.Usage = why, kind, usage
	r.Final = !retry.HasFallback(t)
	if err := a.publishResultClaimed(ctx, m, r); err != nil {
		log.Warn("publish result; the task will be redelivered", "err", err)
		return
	}
	a.event(events.Event{Workflow: t.Workflow, Kind: events.EventFailed, Task: t.ID, Agent: a.cfg.ID, Message: why})
	settle(log, "term", m.Term())
}

// undecodable ends, unrun, a task message that cannot be read: it is kept
// as a dead letter under the workflow and task its headers name, if they
// are valid names. No result is published: without a readable body there
// is no lease token, and a result without one would be refused as forged
// (as it should: anyone can publish such a message with any headers).
func (a *Agent) undecodable(ctx context.Context, j *job, cause error) {
	a.failures.Add(1)
	a.refused.Log(a.log, "undecodable task, not run", j.msg.Subject(), cause)
	wf, id := j.wf, j.id
	if !events.ValidToken(wf) || !events.ValidToken(id) {
		wf, id = "_", "_"
	}
	if err := a.deadLetter(ctx, wf, id, j.msg, events.KindUnknown, cause); err != nil {
		a.log.Warn("dead letter", "err", err)
		return
	}
	settle(a.log, "term", j.msg.Term())
}

// forged ends, unrun, a task whose subject or lane does not match its body
// (anyone can publish on a lane): it is kept as a dead letter and no result
// is published, since the body's workflow and task cannot be trusted.
func (a *Agent) forged(ctx context.Context, j *job, cause error) {
	a.failures.Add(1)
	a.refused.Log(a.log, "task refused, not run", j.msg.Subject(), cause)
	if err := a.deadLetter(ctx, "_", "_", j.msg, events.KindForged, cause); err != nil {
		a.log.Warn("dead letter", "err", err)
		return
	}
	settle(a.log, "term", j.msg.Term())
}

// headerSize is how many bytes h takes on the wire.
func headerSize(h nats.Header) int {
	n := len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(": \r\n") + len(v)
		}
	}
	return n
}

func (a *Agent) deadLetter(ctx context.Context, wf, id string, m jetstream.Msg, kind string, cause error) error {
	dl := nats.NewMsg(a.subj.Dead(wf, id))
	dl.Data = m.Data()
	for k, v := range m.Headers() {
		dl.Header[k] = v
	}
	seq := uint64(0)
	if meta, err := m.Metadata(); err == nil {
		seq = meta.Sequence.Stream
	}
	dl.Header.Set(events.HeaderMsgID, events.MsgID("dead", m.Subject(), seq))
	dl.Header.Set(events.HeaderErrorKind, kind)
	dl.Header.Set(events.HeaderAgent, a.cfg.ID)
	dl.Header.Set(events.HeaderSubject, m.Subject())
	// The task fitted in a message; its copy must too, with the error in
	// what room is left (a task near the max payload keeps less of it).
	room := int(a.nc.MaxPayload()) - len(dl.Data) - headerSize(dl.Header) - len(events.HeaderError) - 64
	dl.Header.Set(events.HeaderError, events.Clip(cause.Error(), max(room, 64)))
	_, err := a.js.PublishMsg(ctx, dl)
	return err
}

// store publishes msg and waits up to ConfirmWait for its
// acknowledgement, even once ctx has ended: a stopping agent still
// settles what it ran.
func (a *Agent) store(ctx context.Context, msg *nats.Msg) error {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), streams.ConfirmWait)
	defer cancel()
	_, err := a.js.PublishMsg(pctx, msg)
	return err
}

func (a *Agent) event(e events.Event) {
	if err := a.subj.PublishEvent(a.nc, e); err != nil {
		a.log.Warn("publish event", "kind", e.Kind, "err", err)
	}
}

// progress tells JetStream, for every running task, that the agent is alive
// and working, so long tasks keep their claim.
func (a *Agent) progress(ctx context.Context) {
	t := time.NewTicker(a.cfg.Streams.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.mu.Lock()
		msgs := make([]jetstream.Msg, 0, len(a.running))
		for j := range a.running {
			msgs = append(msgs, j.msg)
		}
		a.mu.Unlock()
		for _, m := range msgs {
			// A task settled since the snapshot needs no sign of life.
			if err := m.InProgress(); !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
				settle(a.log, "in progress", err)
			}
		}
	}
}

// heartbeats writes the registry entry every Heartbeat, and sooner (at most
// every statusEvery) when the agent's status or running tasks changed, so
// that monitoring sees busy slots as they are.
func (a *Agent) heartbeats(ctx context.Context, reg *registry.Registry) {
	const statusEvery = 500 * time.Millisecond
	t := time.NewTicker(min(statusEvery, a.cfg.Heartbeat))
	defer t.Stop()
	last := time.Time{}
	for {
		if a.changed.Swap(false) || time.Since(last) >= a.cfg.Heartbeat {
			a.putInfo(ctx, reg)
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Info returns the agent's registry entry as of now.
func (a *Agent) Info() events.AgentInfo {
	a.mu.Lock()
	running := make([]string, 0, len(a.running))
	for j := range a.running {
		if !j.waiting { // a task waiting for permits holds no slot
			running = append(running, j.wf+"/"+j.id)
		}
	}
	draining := a.draining
	a.mu.Unlock()
	slices.Sort(running)
	status := events.AgentIdle
	switch {
	case draining:
		status = events.AgentDraining
	case len(running) > 0:
		status = events.AgentBusy
	}
	host, _ := os.Hostname()
	cpuUsed, memUsed := a.capacity.used()
	return events.AgentInfo{
		Routing: a.cfg.Capabilities, CPUMilli: a.capacity.cpu, Memory: a.capacity.mem,
		CPUMilliUsed: cpuUsed, MemoryUsed: memUsed, Process: a.proc.sample(),
		ID: a.cfg.ID, Types: a.Types(), Capabilities: append(a.Types(), a.cfg.Capabilities...),
		Concurrency: a.cfg.Concurrency, Running: len(running), Tasks: running, Status: status,
		Done: a.done.Load(), Failures: a.failures.Load(), Host: host, PID: os.Getpid(), Version: a.cfg.Version,
		Started: a.started, Heartbeat: time.Now().UTC(),
	}
}

func (a *Agent) putInfo(ctx context.Context, reg *registry.Registry) {
	err := reg.Put(ctx, a.Info())
	switch {
	case err == nil:
		a.beating.ok(a.log, "heartbeat")
	case ctx.Err() == nil:
		a.beating.fail(a.log, "heartbeat", err)
	}
}
