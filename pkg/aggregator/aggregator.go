package aggregator

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/lead"
	"github.com/baton-dev/baton/pkg/lease"
	"github.com/baton-dev/baton/pkg/retry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrConfig is wrapped by every Config.Validate error.
var ErrConfig = errors.New("aggregator: invalid config")

// Config configures an Aggregator. The zero value is usable.
type Config struct {
	Streams streams.Config
	// PartialEvery throttles partial outputs per workflow; default 250ms.
	PartialEvery time.Duration
	// PartialMax caps the task results in one partial output; more go out in
	// several messages. Default 500.
	PartialMax int
	// ExprTime bounds the time the expressions of a job's aggregate may
	// take to build one final output; the values not computed by then are
	// null and the output's errors say so. Default 2s.
	ExprTime time.Duration
	Logger   *slog.Logger
}

func (c *Config) setDefaults() {
	c.Streams = c.Streams.WithDefaults()
	if c.PartialEvery <= 0 {
		c.PartialEvery = 250 * time.Millisecond
	}
	if c.PartialMax <= 0 {
		c.PartialMax = 500
	}
	if c.ExprTime <= 0 {
		c.ExprTime = defaultExprTime
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a config that cannot work.
func (c Config) Validate() error {
	if err := c.Streams.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

const defaultExprTime = 2 * time.Second

// stopWait bounds how long a stopping aggregator takes the results stored
// before it stopped.
const stopWait = 5 * time.Second

// Aggregator is the aggregation service.
type Aggregator struct {
	cfg  Config
	nc   *nats.Conn
	js   jetstream.JetStream
	kv   jetstream.KeyValue
	key  *lease.Key // checks results' lease tokens
	outs jetstream.Stream
	// confirms stores the partial outputs without waiting for each (set by Run).
	confirms *streams.Confirms
	subj     events.Subjects
	log      *slog.Logger
	// listed, when set (by tests), runs once the workflows open at start
	// are listed.
	listed func()

	refused   events.Refusals // results refused (undecodable or forged)
	wfs       map[string]*state
	finalized map[string]int // workflows known to have a final output → their record's Gen
	replaying bool
	polled    time.Time // when pollWaiting last read records
}

// state is one workflow's streaming aggregation.
type state struct {
	rec      events.Workflow
	collect  map[string]int // step → position in the output
	critical map[string]bool
	final    *finals // first final result per task; Data kept only where collected
	reducer  *Reducer
	// fields fold the reduce fields of an output of named fields, for
	// partial outputs; keep says the final output needs the data of every
	// collected result (Aggregate.NeedsItems).
	fields   map[string]*Reducer
	keep     bool
	agents   map[string]bool
	busy     time.Duration
	usage    events.ResourceTotals // of the counted results, each task once
	attempts int
	last     int64 // latest Finished of any result
	fresh    []events.TaskOutput
	// freshSeq holds the RESULTS sequence of each fresh entry; covered is
	// the sequence through which partial outputs are stored: a restarted
	// aggregator publishes, in partials, exactly the results after it.
	freshSeq []uint64
	covered  uint64
	finishing
}

// New returns an aggregator that will use nc. It does no I/O.
func New(nc *nats.Conn, cfg Config) (*Aggregator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("aggregator: %w", err)
	}
	return &Aggregator{cfg: cfg, nc: nc, js: js, subj: cfg.Streams.Subjects(),
		log: cfg.Logger.With("service", "aggregator"), wfs: map[string]*state{}, finalized: map[string]int{}}, nil
}

// Run aggregates until ctx is cancelled (then it returns nil) or JetStream
// fails in a way it cannot ride out. It may be called once.
func (a *Aggregator) Run(ctx context.Context) (err error) {
	defer func() {
		if ctx.Err() != nil {
			err = nil // stopped: what failed meanwhile was cut short by it
		}
	}()
	c := a.cfg.Streams // the planner creates them; the aggregator waits
	if err := streams.Wait(ctx, a.js, c, a.log, c.ResultsStream(), c.OutputsStream(),
		streams.BucketStream(c.WorkflowsBucket()), streams.BucketStream(c.KeysBucket())); err != nil {
		return err // nil if stopped while waiting (above)
	}
	kv, err := a.js.KeyValue(ctx, a.cfg.Streams.WorkflowsBucket())
	if err != nil {
		return fmt.Errorf("aggregator: workflows bucket: %w", err)
	}
	a.kv = kv
	// The planner writes the key; the aggregator's role may only read it.
	if a.key, err = lease.Await(ctx, a.js, a.cfg.Streams.KeysBucket()); err != nil {
		return err // nil if stopped while waiting for the planner (above)
	}
	if a.outs, err = a.js.Stream(ctx, a.cfg.Streams.OutputsStream()); err != nil {
		return fmt.Errorf("aggregator: outputs stream: %w", err)
	}
	if a.confirms, err = streams.OpenConfirms(a.nc); err != nil {
		return fmt.Errorf("aggregator: %w", err)
	}
	defer a.confirms.Close()
	from, err := a.replayFrom(ctx)
	if err != nil {
		return err
	}
	results, err := streams.Follow(ctx, a.js, streams.FollowConfig{
		Stream: a.cfg.Streams.ResultsStream(), Filter: a.subj.Results(), FromSeq: from,
	})
	if err != nil {
		return fmt.Errorf("aggregator: %w", err)
	}
	defer results.Stop()
	a.replaying = results.Backlog > 0
	a.log.Info("starting", "workflows", len(a.wfs), "replay_from", from, "replay", results.Backlog)

	work, cancel := streams.WorkContext(ctx, stopWait)
	defer cancel()
	tick := time.NewTicker(a.cfg.PartialEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			a.stop(ctx, results, nil)
			return nil
		case m := <-results.C:
			if ctx.Err() != nil { // stopping: the select chose the message
				a.stop(ctx, results, m)
				return nil
			}
			a.onResult(work, m)
		case <-tick.C:
			if !a.replaying {
				a.partials(work)
				a.pollWaiting(work)
			}
		}
	}
}

// stop takes what was stored before the stop (the last results of draining
// agents, first m if not nil), so that the next start need not replay it,
// and publishes the last partial outputs. An aggregator whose lead was lost
// does none of that: another replica may lead already (package lead), and
// it replays what this one had not published.
func (a *Aggregator) stop(ctx context.Context, results *streams.Follower, m jetstream.Msg) {
	if lead.Lost(ctx) {
		a.log.Warn("lead lost: stopping without aggregating or publishing more; the next aggregator replays it")
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopWait)
	defer cancel()
	if m != nil {
		a.onResult(ctx, m)
	}
	if a.replaying {
		return
	}
	if err := results.Drain(ctx, stopWait, func(m jetstream.Msg) { a.onResult(ctx, m) }); err != nil {
		a.log.Warn("stopping before every stored result was aggregated; the next start replays them", "err", err)
	}
	a.partials(ctx)
}

// replayFrom loads the workflows without a final output and returns the
// RESULTS sequence to follow from: the first of theirs, or the first
// result not stored yet.
//
// The stream's last sequence is read before the workflows are listed. A
// workflow the listing misses was created after it began (a planner writes
// the record before queueing any task), so its results come after that
// sequence. Read the other way round, a workflow created between the two
// reads, with its results stored before the second, was skipped: its final
// output never came.
func (a *Aggregator) replayFrom(ctx context.Context) (uint64, error) {
	info, err := a.js.Stream(ctx, a.cfg.Streams.ResultsStream())
	if err != nil {
		return 0, fmt.Errorf("aggregator: results stream: %w", err)
	}
	st := info.CachedInfo().State
	from := st.LastSeq + 1
	lister, err := a.kv.ListKeysFiltered(ctx, "*")
	if err != nil {
		return 0, fmt.Errorf("aggregator: list workflows: %w", err)
	}
	var ids []string
	for k := range lister.Keys() {
		ids = append(ids, k)
	}
	if a.listed != nil {
		a.listed()
	}
	for _, id := range ids {
		s, err := a.open(ctx, id, false)
		if err != nil {
			return 0, err
		}
		if s != nil {
			from = min(from, s.rec.ResultsFrom)
		}
	}
	return max(from, st.FirstSeq, 1), nil
}

// open returns the state of a workflow that has no final output yet (or
// was reopened since its last one), loading it if needed; nil if it is
// finished or unknown. A reopened workflow's state is read back from its
// stored results when backfill is set (not during the replay at start,
// which reads them anyway).
func (a *Aggregator) open(ctx context.Context, id string, backfill bool) (*state, error) {
	if s := a.wfs[id]; s != nil {
		return s, nil
	}
	if _, ok := a.finalized[id]; ok {
		return nil, nil
	}
	l := a.lookup(ctx, id)
	last, err := l.final, l.finalErr
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("aggregator: look for final output of %s: %w", id, err)
	}
	rec, rerr := l.rec, l.recErr
	if rerr != nil {
		return nil, rerr
	}
	reopened := false
	if err == nil {
		n, _ := strconv.Atoi(last.Header.Get(events.HeaderReopened))
		if rec == nil || rec.Reopened <= n { // (the planner may have closed it again already)
			gen := 0
			if rec != nil {
				gen = rec.Gen // the record's, not a result's: a forged one cannot raise it
			}
			a.markFinal(id, gen)
			return nil, nil
		}
		reopened = true // its failed tasks run again: a new final output is due
	}
	if rec == nil {
		return nil, nil
	}
	s := newState(*rec)
	// Partials already stored cover the results through their header's
	// sequence; one stored before the header existed covers all.
	last, err = l.partial, l.partialErr
	switch {
	case err == nil:
		s.covered = math.MaxUint64
		if n, perr := strconv.ParseUint(last.Header.Get(events.HeaderResultsThrough), 10, 64); perr == nil {
			s.covered = n
		}
	case !errors.Is(err, jetstream.ErrMsgNotFound):
		return nil, fmt.Errorf("aggregator: look for partial outputs of %s: %w", id, err)
	}
	if err := openFinish(s, l.readyErr); err != nil {
		return nil, err
	}
	a.wfs[id] = s
	if s.reopened = reopened; reopened && backfill {
		if err := a.backfill(ctx, s); err != nil {
			delete(a.wfs, id)
			return nil, err
		}
	}
	return s, nil
}

// lookup is what open reads of a workflow: its record and the last of its
// final, partial and ready outputs.
type lookup struct {
	rec                                    *events.Workflow
	final, partial                         *jetstream.RawStreamMsg
	recErr, finalErr, partialErr, readyErr error
}

// lookup reads a workflow's record and outputs at once: one after the
// other, the four round trips took as long as the rest of a one-task job
// after its result was stored.
func (a *Aggregator) lookup(ctx context.Context, id string) *lookup {
	l := &lookup{}
	var reads sync.WaitGroup
	reads.Go(func() { l.final, l.finalErr = a.outs.GetLastMsgForSubject(ctx, a.subj.Output(id, events.OutputFinal)) })
	reads.Go(func() {
		l.partial, l.partialErr = a.outs.GetLastMsgForSubject(ctx, a.subj.Output(id, events.OutputPartial))
	})
	reads.Go(func() { _, l.readyErr = a.outs.GetLastMsgForSubject(ctx, a.subj.Output(id, events.OutputReady)) })
	l.rec, l.recErr = streams.GetWorkflow(ctx, a.kv, id)
	reads.Wait()
	return l
}

// newState is the empty aggregation state of a workflow.
func newState(rec events.Workflow) *state {
	s := &state{rec: rec, collect: map[string]int{}, critical: map[string]bool{},
		final: newFinals(&rec), agents: map[string]bool{}, keep: rec.Aggregate.NeedsItems()}
	for i, step := range rec.Collect {
		s.collect[step] = i
	}
	for _, t := range rec.Critical {
		s.critical[t] = true
	}
	switch {
	case rec.Aggregate.Fields != nil:
		for name, f := range rec.Aggregate.Fields {
			if f.Op != "" && f.Expr == "" {
				if s.fields == nil {
					s.fields = map[string]*Reducer{}
				}
				s.fields[name] = &Reducer{Op: f.Op, Field: f.Field}
			}
		}
	case rec.Aggregate.Strategy == events.StrategyReduce:
		s.reducer = &Reducer{Op: rec.Aggregate.Op, Field: rec.Aggregate.Field}
	}
	return s
}

// fold adds the data of a completed, collected result to the running
// reductions and returns what of it to keep for the final output.
func (s *state) fold(data json.RawMessage) json.RawMessage {
	for _, r := range s.fields {
		r.Add(data)
	}
	if s.reducer == nil {
		return data
	}
	s.reducer.Add(data)
	if s.keep {
		return data
	}
	return nil // the reducer holds all the final output needs
}

// partialData is the data of a partial output: the reduction so far, or the
// reduce fields so far of an output of named fields; nil otherwise.
func (s *state) partialData() json.RawMessage {
	switch {
	case s.reducer != nil:
		return s.reducer.Value()
	case s.fields != nil:
		out := make(map[string]any, len(s.fields))
		for name, r := range s.fields {
			out[name] = r.result()
		}
		b, _ := json.Marshal(out)
		return b
	}
	return nil
}

// markFinal caches that id has its final output; gen is its record's
// generation (a result of a later one makes open look again: the workflow
// may have been reopened).
func (a *Aggregator) markFinal(id string, gen int) {
	if len(a.finalized) > 100_000 { // a cache: a miss costs one lookup
		clear(a.finalized)
	}
	a.finalized[id] = max(a.finalized[id], gen)
}

func (a *Aggregator) onResult(ctx context.Context, m jetstream.Msg) {
	if a.replaying && streams.CaughtUp(m) {
		a.replaying = false
		defer a.log.Info("replay done", "open", len(a.wfs))
	}
	r, err := a.subj.DecodeResultMsg(m.Subject(), m.Headers().Get(events.HeaderContentType), m.Data())
	if err != nil {
		a.refused.Log(a.log, "result refused", m.Subject(), err)
		return
	}
	if !r.Final {
		return
	}
	var seq uint64
	if meta, err := m.Metadata(); err == nil {
		seq = meta.Sequence.Stream
	}
	if g, final := a.finalized[r.Workflow]; final && r.Gen > g {
		delete(a.finalized, r.Workflow) // a later generation: reopened?
	}
	s := a.wfs[r.Workflow] // open's first look, without a closure per result
	if s == nil {
		if err := retry.Do(ctx, a.log, "load workflow "+r.Workflow, 0, func() (err error) {
			s, err = a.open(ctx, r.Workflow, true)
			return err
		}); err != nil {
			return // stopping: the replay after a restart picks the result up
		}
		if s == nil {
			return // a finished workflow
		}
	}
	step, index, inPlan := s.rec.PlanTask(r.Task)
	if !inPlan {
		err := fmt.Errorf("%w: task %s/%s is not in the plan", events.ErrForged, r.Workflow, events.Short(r.Task))
		a.refused.Log(a.log, "result refused", m.Subject(), err)
		return
	}
	if err := a.key.CheckFor(&s.rec, r); err != nil {
		a.refused.Log(a.log, "result refused", m.Subject(), err)
		return
	}
	if index >= 0 { // the plan, not the body, says where its data goes
		r.Step, r.Index = step, index
	}
	if prev := s.final.get(r.Task, r.Step, r.Index); prev != nil {
		// A task that ran twice counts once, unless its failure was
		// superseded by a run of a later generation (restart --retry-failed).
		if prev.Status == events.StateCompleted || r.Gen <= prev.Gen {
			return
		}
		s.attempts -= prev.Attempts
		s.usage.Remove(prev.Usage)
	}
	_, collected := s.collect[r.Step]
	if r.Agent != "" {
		s.agents[r.Agent] = true
	}
	s.attempts += r.Attempts
	if r.Started > 0 && r.Finished > r.Started {
		s.busy += time.Duration(r.Finished - r.Started)
	}
	s.usage.Add(r.Usage)
	s.last = max(s.last, r.Finished)
	// Kept until the final output: only what it reads (a job of 100k
	// tasks keeps 100k of these).
	kept := events.Result{Workflow: s.rec.ID, Task: r.Task, Step: r.Step, Index: r.Index, Round: r.Round,
		Status: r.Status, Final: true, Attempts: r.Attempts, Gen: r.Gen}
	if r.Status != events.StateCompleted {
		// A failure may yet be superseded (Usage) and is listed (the rest).
		kept.Type, kept.Error, kept.ErrorKind, kept.Usage = r.Type, r.Error, r.ErrorKind, r.Usage
	}
	out := events.TaskOutput{Task: r.Task, Status: r.Status}
	if collected && r.Status == events.StateCompleted {
		kept.Data = s.fold(r.Data)
		// The task's data where the final output takes it (a reduce's
		// partial outputs carry the reduction so far instead); a null is
		// no data.
		if kept.Data != nil && string(kept.Data) != "null" {
			out.Data = kept.Data
		}
	} else {
		kept.Data = nil
	}
	if r.Status == events.StateCompleted {
		s.completed++
		if s.critical[r.Task] {
			s.critDone++
		}
	}
	if seq > s.covered && s.rec.CollectMode() != events.CollectBatch { // not yet in a stored partial output
		s.fresh = append(s.fresh, out)
		s.freshSeq = append(s.freshSeq, seq)
	}
	s.final.put(&kept)
	if s.final.len() >= s.rec.Counts.Total {
		a.conclude(ctx, s)
		return
	}
	a.maybeReady(ctx, s)
}

func (s *state) counts() events.Counts {
	c := events.Counts{Total: s.rec.Counts.Total, Completed: s.final.completed, Failed: s.final.failed, Cancelled: s.final.cancelled}
	c.Pending = c.Total - s.final.len()
	return c
}

func (s *state) progress() events.Progress {
	p := events.Progress{Done: s.final.len(), Total: s.rec.Counts.Total}
	if p.Total > 0 {
		p.Percent = float64(int(1000*float64(p.Done)/float64(p.Total))) / 10
	}
	return p
}

// partials publishes, for every workflow with fresh results, what arrived
// since the last partial output.
func (a *Aggregator) partials(ctx context.Context) { a.sendPartials(ctx)() }

// sendPartials sends the partial outputs without waiting for their
// acknowledgements, and returns what waits for them and keeps, of each
// workflow, what was not stored for the next time. finish sends its final
// output in between: the two are stored in one round trip.
func (a *Aggregator) sendPartials(ctx context.Context) (wait func()) {
	type sent struct {
		s       *state
		id      string
		n       int
		through uint64
		stored  chan error // nil once stored
	}
	var all []sent
	for id, s := range a.wfs {
		for off, most := 0, a.cfg.PartialMax; off < len(s.fresh); {
			out := events.Output{Workflow: id, Kind: events.OutputPartial, Status: events.OutcomeRunning,
				Progress: s.progress(), Data: s.partialData(), Errors: []events.TaskError{}}
			n, b, err := fitPartial(s.fresh[off:], most, func(n int) ([]byte, error) {
				out.Results = s.fresh[off : off+n]
				return encodeOutput(out, a.maxOutput())
			})
			if err != nil {
				a.log.Warn("publish partial output; trying again at the next one", "workflow", id, "err", err)
				break // kept: the next tick publishes it
			}
			most = n // the next ones are likely as large
			through := s.freshSeq[off+n-1]
			msg := a.newOutputMsg(out, b, events.MsgID(id, "partial", through), through, 0)
			p := sent{s: s, id: id, n: n, through: through, stored: make(chan error, 1)}
			a.confirms.Publish(msg, a.cfg.Streams.OutputsStream(), func(stored bool, err error) {
				if stored {
					err = nil
				}
				p.stored <- err
			})
			all = append(all, p)
			off += n
		}
	}
	return func() {
		failed := map[*state]bool{}
		stored := map[*state]int{}
		for _, p := range all {
			var err error
			select {
			case err = <-p.stored: // within ConfirmWait
			case <-ctx.Done():
				err = ctx.Err()
			}
			if failed[p.s] || err != nil {
				if !failed[p.s] {
					a.log.Warn("publish partial output; trying again at the next one", "workflow", p.id, "err", err)
				}
				failed[p.s] = true // kept from here: the next tick publishes it
				continue
			}
			p.s.covered = p.through
			stored[p.s] += p.n
		}
		for s, n := range stored {
			s.dropFresh(n)
		}
	}
}

// dropFresh forgets the first n fresh results (stored in a partial
// output), keeping the slices' room for the next ones unless a burst made
// it large.
func (s *state) dropFresh(n int) {
	k := copy(s.fresh, s.fresh[n:])
	copy(s.freshSeq, s.freshSeq[n:])
	clear(s.fresh[k:]) // their data is not held
	s.fresh, s.freshSeq = s.fresh[:k], s.freshSeq[:k]
	if k == 0 && cap(s.fresh) > freshRoom {
		s.fresh, s.freshSeq = nil, nil
	}
}

// freshRoom is the room for fresh results a workflow keeps between
// partial outputs.
const freshRoom = 4096

// finish builds and publishes the final output of a workflow.
func (a *Aggregator) finish(ctx context.Context, s *state) {
	id := s.rec.ID
	waitPartials := a.sendPartials(ctx)
	out, err := a.final(s, false)
	if err != nil {
		a.log.Error("build final output", "workflow", id, "err", err)
		out = &events.Output{Workflow: id, Kind: events.OutputFinal, Status: events.OutcomeFailed,
			Errors: []events.TaskError{{Message: err.Error(), Kind: events.KindPermanent}}}
	}
	err = retry.Do(ctx, a.log, "publish final output of "+id, 0, func() error {
		return a.publish(ctx, *out, finalID(s), 0, s.rec.Reopened)
	})
	waitPartials()
	if err != nil {
		return // stopping: left open, the replay after a restart finishes it
	}
	delete(a.wfs, id)
	a.markFinal(id, s.rec.Gen)
	a.log.Info("final output", "workflow", id, "status", out.Status, "completed", out.Metadata.Tasks.Completed,
		"failed", out.Metadata.Tasks.Failed, "cancelled", out.Metadata.Tasks.Cancelled)
}

// final builds a workflow's final output from its state; a preview (the
// ready output) leaves the reducer as it is.
func (a *Aggregator) final(s *state, preview bool) (*events.Output, error) {
	c := s.counts()
	criticalFailed := false
	var errs []events.TaskError
	var missing []string
	var ordered []*events.Result
	recovered := 0
	// Completed results are made up from their slots only where their
	// data is read: by a synthesis or a combine, not by a reducer, which
	// holds all it needs (a million of them would be made for nothing).
	byReducer := s.reducer != nil && !s.keep
	s.final.each(func(r *events.Result) {
		if _, ok := s.collect[r.Step]; ok && (!byReducer || r.Status != events.StateCompleted) {
			ordered = append(ordered, r)
		}
		if r.Status == events.StateCompleted {
			if r.Attempts > 1 || r.Round > 0 {
				recovered++
			}
			return
		}
		crit := s.critical[r.Task]
		criticalFailed = criticalFailed || crit
		remedy, retry := Remedy(r.ErrorKind, r.Status)
		msg := r.Error
		if msg == "" {
			msg = r.Status
		}
		errs = append(errs, events.TaskError{Task: r.Task, Step: r.Step, Type: r.Type, Status: r.Status, Kind: r.ErrorKind,
			Message: msg, Attempts: r.Attempts, Critical: crit, Remediation: remedy, RetryRecommended: retry})
	})
	slices.SortFunc(errs, func(x, y events.TaskError) int { return cmp.Compare(x.Task, y.Task) })
	slices.SortFunc(ordered, func(x, y *events.Result) int {
		if c := cmp.Compare(s.collect[x.Step], s.collect[y.Step]); c != 0 {
			return c
		}
		return cmp.Compare(x.Index, y.Index)
	})
	var datas []json.RawMessage
	for _, r := range ordered {
		switch {
		case r.Status == events.StateCompleted:
			datas = append(datas, r.Data)
		default:
			missing = append(missing, r.Task)
			if len(s.rec.Aggregate.Fallback) > 0 && !s.keep {
				datas = append(datas, s.rec.Aggregate.Fallback)
				if s.reducer != nil && !preview {
					s.reducer.Add(s.rec.Aggregate.Fallback)
				}
			}
		}
	}
	var data json.RawMessage
	var err error
	var syn synthesis
	switch {
	case s.keep:
		if syn, err = synthesize(s.rec.Aggregate, ordered, cmp.Or(a.cfg.ExprTime, defaultExprTime)); err != nil {
			return nil, err
		}
		data = syn.data
		errs = append(errs, syn.errs...)
	case s.reducer != nil:
		data = s.reducer.Value()
	default:
		if data, err = Combine(s.rec.Aggregate, datas); err != nil {
			return nil, err
		}
	}
	status, rate := s.rec.Verdict(c, criticalFailed)
	if s.verdict != "" {
		status = s.verdict // the planner's decision (a resolution)
	}
	agents := make([]string, 0, len(s.agents))
	for ag := range s.agents {
		agents = append(agents, ag)
	}
	slices.Sort(agents)
	finished := time.Now().UTC()
	if s.last > 0 {
		finished = time.Unix(0, s.last).UTC()
	}
	if errs == nil {
		errs = []events.TaskError{}
	}
	return &events.Output{
		Workflow: s.rec.ID, Kind: events.OutputFinal, Status: status, Progress: s.progress(), Data: data,
		Errors: errs, Missing: missing,
		Metadata: &events.Metadata{
			Started: s.rec.Submitted, Finished: finished,
			ElapsedMS: float64(finished.Sub(s.rec.Submitted).Microseconds()) / 1000,
			Agents:    agents, AgentsUsed: len(agents), SuccessRate: rate, Threshold: s.rec.SuccessThreshold,
			Tasks: c, BusyMS: float64(s.busy.Microseconds()) / 1000, Attempts: s.attempts,
			Recovered: recovered, Recovery: recovery(c, recovered), Resources: s.usage.Round(),
			Interpolation: s.rec.Aggregate.Interpolation(), Interpolated: syn.interpolated,
		},
	}, nil
}

func recovery(c events.Counts, recovered int) string {
	switch {
	case c.Completed < c.Total:
		return events.RecoveryIncomplete
	case recovered > 0:
		return events.RecoveryRecovered
	}
	return events.RecoveryNone
}

// publish stores an output; through (partials) and reopened (finals) go
// into their headers when not 0.
func (a *Aggregator) publish(ctx context.Context, out events.Output, msgID string, through uint64, reopened int) error {
	msg, err := a.outputMsg(out, msgID, through, reopened)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, streams.ConfirmWait)
	defer cancel()
	_, err = a.js.PublishMsg(ctx, msg)
	return err
}

// outputMsg is the message that stores out.
func (a *Aggregator) outputMsg(out events.Output, msgID string, through uint64, reopened int) (*nats.Msg, error) {
	b, err := encodeOutput(out, a.maxOutput())
	if err != nil {
		return nil, err
	}
	return a.newOutputMsg(out, b, msgID, through, reopened), nil
}

// newOutputMsg is the message that stores out, encoded as b.
func (a *Aggregator) newOutputMsg(out events.Output, b []byte, msgID string, through uint64, reopened int) *nats.Msg {
	msg := nats.NewMsg(a.subj.Output(out.Workflow, out.Kind))
	msg.Data = b
	msg.Header.Set(events.HeaderWorkflow, out.Workflow)
	msg.Header.Set(events.HeaderContentType, events.ContentJSON)
	if through > 0 {
		msg.Header.Set(events.HeaderResultsThrough, strconv.FormatUint(through, 10))
	}
	if reopened > 0 {
		msg.Header.Set(events.HeaderReopened, strconv.Itoa(reopened))
	}
	msg.Header.Set(events.HeaderMsgID, msgID)
	return msg
}
