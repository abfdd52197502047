package monitor

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/registry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config configures a Monitor. The zero value is usable.
type Config struct {
	Streams streams.Config
	// Window is how far back results count for timings and the error
	// rate; default 5m.
	Window time.Duration
	// RateWindow is how far back results count for rates (throughput, ETA,
	// bottleneck); default 15s.
	RateWindow time.Duration
	Logger     *slog.Logger
}

func (c *Config) setDefaults() {
	c.Streams = c.Streams.WithDefaults()
	if c.Window <= 0 {
		c.Window = 5 * time.Minute
	}
	if c.RateWindow <= 0 {
		c.RateWindow = 15 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// obs is one final result seen.
type obs struct {
	at     time.Time
	wf     string
	lane   string
	status string
	dur    time.Duration
}

// Monitor follows results, workflow records and the agents' registry. Create it with New and run
// it with Run; read it with Snapshot (safe from any goroutine). One Monitor
// serves a whole process: the status service, the dashboard and /metrics
// share it.
type Monitor struct {
	cfg  Config
	nc   *nats.Conn
	js   jetstream.JetStream
	subj events.Subjects
	log  *slog.Logger
	reg  *registry.Registry

	mu      sync.Mutex
	recent  []obs                           // final results in the window, oldest first
	seen    map[string]bool                 // "<wf>/<task>" with a final result in the window
	running map[string]map[string]string    // wf → task → agent, started and not finished
	byAgent map[string]map[string]time.Time // agent → "<wf>/<task>" it runs → since (its clock)
	onObs   []func(*events.Result)
	// wfs holds the records of the open workflows and of those finished
	// within the window, without what status does not show (decodeRecord);
	// old maps each workflow that finished before to its status (a
	// finished record no longer changes), and oldCount counts them by
	// status.
	wfs      map[string]*events.Workflow
	old      map[string]string
	oldCount map[string]int

	wanted    chan struct{} // closed by the first reader: Run starts following
	want      func()
	ready     chan struct{} // closed once the window has been read back
	readyOnce sync.Once
}

// New returns a monitor using nc. It does no I/O.
func New(nc *nats.Conn, cfg Config) (*Monitor, error) {
	cfg.setDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	m := &Monitor{cfg: cfg, nc: nc, js: js, subj: cfg.Streams.Subjects(), log: cfg.Logger.With("service", "monitor"),
		seen: map[string]bool{}, running: map[string]map[string]string{}, byAgent: map[string]map[string]time.Time{},
		wfs: map[string]*events.Workflow{}, old: map[string]string{}, oldCount: map[string]int{},
		wanted: make(chan struct{}), ready: make(chan struct{})}
	m.want = sync.OnceFunc(func() { close(m.wanted) })
	return m, nil
}

// OnResult registers fn to see every final result the monitor reads (for
// counters and histograms). Call it before Run.
func (m *Monitor) OnResult(fn func(*events.Result)) { m.onObs = append(m.onObs, fn) }

// Run waits for the first reader (Snapshot, Ready or Start), then follows
// the workflow records, the agents' registry, live started events, and
// RESULTS from Window ago, until ctx ends, and returns nil. Until then it costs nothing: a
// process whose figures nobody asks for reads no stream. It may be called
// once.
func (m *Monitor) Run(ctx context.Context) error {
	select {
	case <-m.wanted:
	case <-ctx.Done():
		return nil
	}
	// A reader: it creates nothing, and waits for the planner to.
	c := m.cfg.Streams
	if err := streams.Wait(ctx, m.js, c, m.log, c.ResultsStream(), c.EventsStream(), c.TasksStream(),
		streams.BucketStream(c.AgentsBucket()), streams.BucketStream(c.WorkflowsBucket())); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	reg, err := registry.Open(ctx, m.js, m.cfg.Streams)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.reg = reg
	m.mu.Unlock()
	kv, err := m.js.KeyValue(ctx, m.cfg.Streams.WorkflowsBucket())
	if err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	// "*" is every record and no "<id>.spec": the jobs themselves stay
	// unread.
	recs, err := kv.Watch(ctx, "*")
	if err != nil {
		return fmt.Errorf("monitor: watch workflows: %w", err)
	}
	defer streams.StopWatch(recs)
	from := time.Now().Add(-m.cfg.Window)
	res, err := streams.Follow(ctx, m.js, streams.FollowConfig{Stream: m.cfg.Streams.ResultsStream(), Filter: m.subj.Results(), FromTime: from})
	if err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	defer res.Stop()
	// What runs where: the agents' registry entries (stored, so a
	// restarted monitor rebuilds it), and sooner the live started events.
	agents, err := reg.Watch(ctx)
	if err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	defer streams.StopWatch(agents)
	started := make(chan *nats.Msg, 1024)
	sub, err := m.nc.ChanSubscribe(m.subj.Live("*", events.EventStarted), started)
	if err != nil {
		return fmt.Errorf("monitor: live started events: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	// Ready once the records, the registry and RESULTS have delivered what
	// they held at the start (a watch marks it with a nil entry).
	resDone, agentsDone, recsDone := res.Backlog == 0, false, false
	prune := time.NewTicker(5 * time.Second)
	defer prune.Stop()
	for {
		if resDone && agentsDone && recsDone {
			m.readyOnce.Do(func() { close(m.ready) })
		}
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-recs.Updates():
			switch {
			case !ok && ctx.Err() != nil:
				return nil
			case !ok:
				return errors.New("monitor: the watch of the workflow records ended")
			case e == nil:
				recsDone = true
			default:
				m.onRecord(e, time.Now())
			}
		case msg := <-res.C:
			m.onResultMsg(msg)
			resDone = resDone || streams.CaughtUp(msg)
		case e, ok := <-agents.Updates():
			switch {
			case !ok && ctx.Err() != nil:
				return nil
			case !ok:
				return errors.New("monitor: the watch of the agents registry ended")
			case e == nil:
				agentsDone = true
			default:
				m.onAgent(e)
			}
		case msg := <-started:
			m.onStartedMsg(msg)
		case <-prune.C:
			m.prune(time.Now())
		}
	}
}

// onRecord keeps a workflow's record up to date, or forgets it once
// deleted.
func (m *Monitor) onRecord(e jetstream.KeyValueEntry, now time.Time) {
	id := e.Key()
	var rec *events.Workflow
	if e.Operation() == jetstream.KeyValuePut {
		rec = decodeRecord(id, e.Value())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.wfs, id)
	m.forgetOld(id)
	switch {
	case rec == nil:
	case !events.WorkflowOpen(rec.Status) && now.Sub(rec.Finished) >= m.cfg.Window:
		m.old[id] = rec.Status
		m.oldCount[rec.Status]++
	default:
		m.wfs[id] = rec
	}
}

func (m *Monitor) forgetOld(id string) {
	if st, ok := m.old[id]; ok {
		delete(m.old, id)
		m.oldCount[st]--
	}
}

// decodeRecord reads a workflow record, keeping what status shows. It
// returns nil for what is not a record the planner wrote: an id that is
// not a token or not its key, an unknown status. A name longer than a job
// may give is clipped.
func decodeRecord(id string, b []byte) *events.Workflow {
	var rec events.Workflow
	if json.Unmarshal(b, &rec) != nil || rec.ID != id || !events.ValidToken(id) {
		return nil
	}
	switch rec.Status {
	case events.WorkflowRunning, events.WorkflowPaused, events.WorkflowStopped, events.WorkflowNeedsAttention,
		events.WorkflowCompleted, events.WorkflowFailed:
	default:
		return nil
	}
	switch rec.Outcome {
	case "", events.OutcomeSuccess, events.OutcomePartial, events.OutcomeFailed:
	default:
		rec.Outcome = ""
	}
	shown := events.Workflow{ID: rec.ID, Name: events.Clip(rec.Name, events.MaxNameBytes), Status: rec.Status,
		Outcome: rec.Outcome, Submitted: rec.Submitted, Finished: rec.Finished, Counts: rec.Counts, Lanes: rec.Lanes,
		CriticalPathTotal: rec.CriticalPathTotal, CriticalPath: rec.CriticalPath, Ready: rec.Ready}
	if events.WorkflowOpen(rec.Status) {
		shown.Steps = rec.Steps // the plan: a started task outside it does not count as running
		shown.Needs = events.ValidNeeds(rec.Needs)
	}
	return &shown
}

// Start asks Run to begin following now rather than at the first Snapshot.
func (m *Monitor) Start() { m.want() }

// Ready starts the monitor if it has not started and returns a channel
// closed once it has read the window back.
func (m *Monitor) Ready() <-chan struct{} {
	m.want()
	return m.ready
}

func (m *Monitor) onResultMsg(msg jetstream.Msg) {
	r, err := m.subj.DecodeResultMsg(msg.Subject(), msg.Headers().Get(events.HeaderContentType), msg.Data())
	if err != nil || !r.Final {
		return
	}
	key := r.Workflow + "/" + r.Task
	at := time.Now()
	if r.Finished > 0 {
		at = time.Unix(0, r.Finished)
	} else if meta, err := msg.Metadata(); err == nil {
		at = meta.Timestamp
	}
	var dur time.Duration
	if r.Started > 0 && r.Finished > r.Started {
		dur = time.Duration(r.Finished - r.Started)
	}
	m.mu.Lock()
	if wf := m.running[r.Workflow]; wf != nil {
		delete(wf, r.Task)
		if len(wf) == 0 {
			delete(m.running, r.Workflow)
		}
	}
	dup := m.seen[key]
	if !dup {
		m.seen[key] = true
		o := obs{at: at, wf: r.Workflow, status: r.Status, dur: dur}
		if r.Priority > 0 {
			o.lane = fmt.Sprintf("%s.%d", r.Type, r.Priority)
			if p, key, ok := events.ParseLaneToken(fmt.Sprintf("%d-%s", r.Priority, r.CapKey)); ok && p == r.Priority && key != "" {
				o.lane += "-" + key // a capability lane's
			}
		}
		// Results arrive about in time order; keep the slice sorted.
		i := len(m.recent)
		for i > 0 && m.recent[i-1].at.After(at) {
			i--
		}
		m.recent = slices.Insert(m.recent, i, o)
	}
	m.mu.Unlock()
	if !dup && r.Status != events.StateCancelled {
		for _, fn := range m.onObs {
			fn(r)
		}
	}
}

// onStartedMsg notes the tasks a started event names (an agent gathers a
// workflow's starts over a short window), until their agent's next
// registry entry says what it runs. An event whose subject is not its
// workflow's, that names more than events.MaxStartedTasks tasks, or whose
// ids are not all tokens, is not an agent's: it is left out whole.
func (m *Monitor) onStartedMsg(msg *nats.Msg) {
	var ev events.Event
	if json.Unmarshal(msg.Data, &ev) != nil || !events.ValidToken(ev.Agent) ||
		!events.ValidToken(ev.Workflow) || msg.Subject != m.subj.Live(ev.Workflow, events.EventStarted) {
		return
	}
	tasks := ev.StartedTasks() // none if over the bound
	if len(tasks) == 0 || slices.ContainsFunc(tasks, func(t string) bool { return !events.ValidToken(t) }) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, task := range tasks {
		if len(m.byAgent[ev.Agent]) >= maxAgentTasks {
			return
		}
		m.addRunning(ev.Agent, ev.Workflow+"/"+task, ev.Time)
	}
}

// maxAgentTasks bounds the running tasks taken from one agent's entry: a
// forged entry listing millions makes no more work than this.
const maxAgentTasks = 4096

// onAgent makes what an agent runs what its registry entry lists, but for
// the tasks it started after writing the entry (nothing once it left or
// failed). Entries are stored with an acknowledgement, replicated like the
// streams, so the running view survives a restart of this process and a
// NATS node's failover.
func (m *Monitor) onAgent(e jetstream.KeyValueEntry) {
	var info events.AgentInfo
	live := false
	if e.Operation() == jetstream.KeyValuePut {
		info, live = registry.Decode(e.Key(), e.Value())
		live = live && info.Status != events.AgentFailed
	}
	agent := e.Key()
	listed := map[string]bool{}
	for _, key := range info.Tasks[:min(len(info.Tasks), maxAgentTasks)] {
		listed[key] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, at := range m.byAgent[agent] {
		if live && (listed[key] || at.After(info.Heartbeat)) {
			continue // listed, or started after the entry was written
		}
		delete(m.byAgent[agent], key)
		wf, task, _ := strings.Cut(key, "/")
		if run := m.running[wf]; run[task] == agent {
			delete(run, task)
			if len(run) == 0 {
				delete(m.running, wf)
			}
		}
	}
	if !live {
		delete(m.byAgent, agent)
		return
	}
	for key := range listed {
		if _, ok := m.byAgent[agent][key]; !ok {
			m.addRunning(agent, key, info.Heartbeat)
		}
	}
}

// addRunning notes that agent runs the task key ("<workflow>/<task>"),
// known since at (by the agent's clock), unless it has a final result
// already. Call with m.mu held.
func (m *Monitor) addRunning(agent, key string, at time.Time) {
	wf, task, ok := strings.Cut(key, "/")
	if !ok || !events.ValidToken(wf) || !events.ValidToken(task) || m.seen[key] {
		return
	}
	run := m.running[wf]
	if run == nil {
		run = map[string]string{}
		m.running[wf] = run
	}
	run[task] = agent
	mine := m.byAgent[agent]
	if mine == nil {
		mine = map[string]time.Time{}
		m.byAgent[agent] = mine
	}
	mine[key] = at
}

func (m *Monitor) prune(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cut := 0
	for cut < len(m.recent) && now.Sub(m.recent[cut].at) > m.cfg.Window {
		cut++
	}
	m.recent = slices.Delete(m.recent, 0, cut)
	for id, rec := range m.wfs {
		if !events.WorkflowOpen(rec.Status) && now.Sub(rec.Finished) >= m.cfg.Window {
			delete(m.wfs, id)
			m.old[id] = rec.Status
			m.oldCount[rec.Status]++
		}
	}
	// Tasks of a workflow that is no longer open run no more; byAgent
	// follows (it also forgets the tasks finished since the agents' last
	// entries).
	for wf := range m.running {
		if rec := m.wfs[wf]; rec == nil || !events.WorkflowOpen(rec.Status) {
			delete(m.running, wf)
		}
	}
	for agent, mine := range m.byAgent {
		for key := range mine {
			wf, task, _ := strings.Cut(key, "/")
			if m.running[wf][task] != agent {
				delete(mine, key)
			}
		}
		if len(mine) == 0 {
			delete(m.byAgent, agent)
		}
	}
	if len(m.seen) > 4*len(m.recent)+1024 {
		// Forget the finished tasks older than the window.
		keep := map[string]bool{}
		for k := range m.seen {
			wf, _, _ := strings.Cut(k, "/")
			if m.running[wf] != nil {
				keep[k] = true
			}
		}
		m.seen = keep
	}
}

// Snapshot computes the figures now: for one workflow (q.Workflow), or for
// every unfinished one, listing the part of them and of those finished
// within the window that q asks for. The sums and Totals cover every
// workflow whatever is listed; the lists stop at their bounds (see
// events.Snapshot), so the snapshot as JSON fits the connection's max
// payload.
//
// It starts the monitor if needed and waits until the window has been read
// back, or returns ErrNotReady when ctx ends first. A query it cannot
// answer is ErrBadQuery; a workflow with no record, ErrUnknownWorkflow.
func (m *Monitor) Snapshot(ctx context.Context, q Query) (*events.Snapshot, error) {
	limit, err := q.check()
	if err != nil {
		return nil, err
	}
	select {
	case <-m.Ready():
	case <-ctx.Done():
		return nil, ErrNotReady
	}
	now := time.Now()
	var one *events.Workflow
	if q.Workflow != "" {
		if one, err = m.record(ctx, q.Workflow); err != nil {
			return nil, err
		}
	}
	// The lanes and the registry are read at once; this call waits for
	// both before it returns.
	type lanesRead struct {
		lanes []events.LaneState
		err   error
	}
	read := make(chan lanesRead, 1)
	go func() {
		lanes, err := streams.LaneStates(ctx, m.js, m.cfg.Streams)
		read <- lanesRead{lanes, err}
	}()
	m.mu.Lock()
	reg := m.reg
	m.mu.Unlock()
	agents, err := reg.List(ctx)
	lr := <-read
	if err = cmp.Or(err, lr.err); err != nil {
		return nil, err
	}
	lanes := lr.lanes
	snap := &events.Snapshot{Time: now.UTC(), Agents: agentStats(agents)}

	m.mu.Lock()
	defer m.mu.Unlock()
	snap.Tasks = m.taskStats(now)
	recent := m.byWorkflow(now)
	bottlenecks := bottlenecks(lanes, m.laneRates(now), agents)
	if len(bottlenecks) > 0 {
		snap.Bottleneck = &bottlenecks[0]
	}
	snap.Totals = m.totals()
	list, offset := []*events.Workflow{one}, 0
	if one == nil {
		offset = q.Offset
		list = m.listed(q.Status)
		for _, rec := range m.wfs {
			if events.WorkflowOpen(rec.Status) {
				m.sum(snap, rec, recent[rec.ID])
				snap.Open++
			}
		}
	} else {
		limit = 1
		m.sum(snap, one, recent[one.ID])
		if events.WorkflowOpen(one.Status) {
			snap.Open = 1
		}
	}
	if t := snap.Tasks; t.Total > 0 {
		snap.Progress = round1(100 * float64(t.Completed+t.Failed+t.Cancelled) / float64(t.Total))
	}
	offers := events.NewOffers(agents)
	view := func(rec *events.Workflow) events.WorkflowView {
		v := m.view(rec, now, bottlenecks, snap.Tasks.P50Seconds, recent[rec.ID])
		if events.WorkflowOpen(rec.Status) {
			v.Warnings = offers.Unmet(rec.Needs)
		}
		return v
	}
	fit(snap, list, view, lanes, agents, offset, limit, m.budget())
	if one != nil && len(snap.Workflows) == 1 {
		v := snap.Workflows[0]
		snap.Progress, snap.Active, snap.Completed = v.Progress, v.Active, v.Completed
		snap.Bottleneck = v.Bottleneck
	}
	return snap, nil
}

// ErrUnknownWorkflow is returned by Snapshot for a workflow with no record.
var ErrUnknownWorkflow = errors.New("unknown workflow")

// ErrNotReady is returned by Snapshot when its context ends before the
// monitor has read its window back.
var ErrNotReady = errors.New("monitor: not ready: it reads the last minutes of results back when it starts; try again")

// record reads one workflow's record as it is now, whether it finished
// long ago or not.
func (m *Monitor) record(ctx context.Context, id string) (*events.Workflow, error) {
	kv, err := m.js.KeyValue(ctx, m.cfg.Streams.WorkflowsBucket())
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	e, err := kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w %s", ErrUnknownWorkflow, id)
	}
	if err != nil {
		return nil, fmt.Errorf("monitor: read workflow %s: %w", id, err)
	}
	rec := decodeRecord(id, e.Value())
	if rec == nil {
		return nil, fmt.Errorf("%w %s: its record is not one the planner wrote", ErrUnknownWorkflow, id)
	}
	return rec, nil
}

// totals counts every workflow by status.
func (m *Monitor) totals() events.WorkflowTotals {
	t := events.WorkflowTotals{Completed: m.oldCount[events.WorkflowCompleted], Failed: m.oldCount[events.WorkflowFailed]}
	for _, rec := range m.wfs {
		switch rec.Status {
		case events.WorkflowRunning:
			t.Running++
		case events.WorkflowPaused:
			t.Paused++
		case events.WorkflowStopped:
			t.Stopped++
		case events.WorkflowNeedsAttention:
			t.NeedsAttention++
		case events.WorkflowCompleted:
			t.Completed++
			t.FinishedRecently++
		case events.WorkflowFailed:
			t.Failed++
			t.FinishedRecently++
		}
	}
	t.Total = t.Running + t.Paused + t.Stopped + t.NeedsAttention + t.Completed + t.Failed
	return t
}

// listed returns the workflows a status of all lists, in its order: the
// open ones, latest submission first (the one just submitted is on the
// first page), then those finished within the window, latest first; only
// those of status, if given.
func (m *Monitor) listed(status string) []*events.Workflow {
	var open, finished []*events.Workflow
	for _, rec := range m.wfs {
		switch {
		case !matches(status, rec.Status):
		case events.WorkflowOpen(rec.Status):
			open = append(open, rec)
		default:
			finished = append(finished, rec)
		}
	}
	slices.SortFunc(open, func(a, b *events.Workflow) int {
		return cmp.Or(b.Submitted.Compare(a.Submitted), strings.Compare(a.ID, b.ID))
	})
	slices.SortFunc(finished, func(a, b *events.Workflow) int {
		return cmp.Or(b.Finished.Compare(a.Finished), strings.Compare(a.ID, b.ID))
	})
	return append(open, finished...)
}

// recentOf is what the window's results say of one workflow.
type recentOf struct {
	seen   events.Counts // final results by status
	lately []time.Time   // when those of the rate window finished
	first  time.Time     // when the first of those started
}

// byWorkflow sums the window's results up per workflow, in one pass.
func (m *Monitor) byWorkflow(now time.Time) map[string]*recentOf {
	out := map[string]*recentOf{}
	for _, o := range m.recent {
		r := out[o.wf]
		if r == nil {
			r = &recentOf{}
			out[o.wf] = r
		}
		switch o.status {
		case events.StateCompleted:
			r.seen.Completed++
		case events.StateFailed:
			r.seen.Failed++
		default:
			r.seen.Cancelled++
		}
		if now.Sub(o.at) <= m.cfg.RateWindow {
			r.lately = append(r.lately, o.at)
			if start := o.at.Add(-o.dur); r.first.IsZero() || start.Before(r.first) {
				r.first = start
			}
		}
	}
	return out
}

// counts are a workflow's task counts, from its record or, when they are
// ahead of it, from the results read since; and the tasks of its plan
// running now (none once it has finished).
func (m *Monitor) counts(rec *events.Workflow, r *recentOf) (c events.Counts, running []string) {
	c = rec.Counts
	// The record is written once a second; the results read since may be
	// ahead of it.
	if r != nil && r.seen.Completed+r.seen.Failed+r.seen.Cancelled > c.Completed+c.Failed+c.Cancelled {
		c.Completed, c.Failed, c.Cancelled = r.seen.Completed, r.seen.Failed, r.seen.Cancelled
		c.Pending = max(0, c.Total-c.Completed-c.Failed-c.Cancelled)
	}
	if events.WorkflowOpen(rec.Status) {
		for task := range m.running[rec.ID] {
			if _, _, ok := rec.PlanTask(task); ok {
				running = append(running, task)
			}
		}
	}
	c.Running = len(running)
	return c, running
}

// sum adds a workflow to the snapshot's sums.
func (m *Monitor) sum(snap *events.Snapshot, rec *events.Workflow, r *recentOf) {
	c, _ := m.counts(rec, r)
	snap.Tasks.Total += c.Total
	snap.Tasks.Pending += c.Pending - c.Running
	snap.Tasks.Running += c.Running
	snap.Tasks.Completed += c.Completed
	snap.Tasks.Failed += c.Failed
	snap.Tasks.Cancelled += c.Cancelled
	snap.Active += c.Running
	snap.Completed += c.Completed
}

func (m *Monitor) taskStats(now time.Time) events.TaskStats {
	st := events.TaskStats{WindowSeconds: m.cfg.Window.Seconds(), ThroughputSeconds: m.cfg.RateWindow.Seconds()}
	var durs []float64
	failed, counted, lately := 0, 0, 0
	var first time.Time
	for _, o := range m.recent {
		if now.Sub(o.at) > m.cfg.Window {
			continue
		}
		st.Finished++
		if o.dur > 0 {
			durs = append(durs, o.dur.Seconds())
		}
		if o.status == events.StateCancelled {
			continue // cancelled by request: neither a success nor an error
		}
		counted++
		if o.status == events.StateFailed {
			failed++
		}
		if now.Sub(o.at) <= m.cfg.RateWindow {
			if lately == 0 {
				first = o.at
			}
			lately++
		}
	}
	if counted > 0 {
		st.ErrorRate = round4(float64(failed) / float64(counted))
	}
	if len(durs) > 0 {
		slices.Sort(durs)
		sum := 0.0
		for _, d := range durs {
			sum += d
		}
		st.AvgSeconds = round4(sum / float64(len(durs)))
		st.P50Seconds = round4(quantile(durs, 0.5))
		st.P95Seconds = round4(quantile(durs, 0.95))
	}
	if lately > 0 {
		span := max(now.Sub(first), time.Second)
		st.Throughput = round2(float64(lately) / min(span, m.cfg.RateWindow).Seconds())
	}
	return st
}

func quantile(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// laneRates is tasks finished per second per lane over the rate window.
func (m *Monitor) laneRates(now time.Time) map[string]float64 {
	count := map[string]int{}
	first := map[string]time.Time{}
	for _, o := range m.recent {
		if o.lane == "" || now.Sub(o.at) > m.cfg.RateWindow {
			continue
		}
		if count[o.lane] == 0 {
			first[o.lane] = o.at
		}
		count[o.lane]++
	}
	out := map[string]float64{}
	for lane, n := range count {
		span := min(max(now.Sub(first[lane]), time.Second), m.cfg.RateWindow)
		out[lane] = float64(n) / span.Seconds()
	}
	return out
}

func bottlenecks(lanes []events.LaneState, rate map[string]float64, agents []events.AgentInfo) []events.Bottleneck {
	served := registry.ServedTypes(agents)
	offers := events.NewOffers(agents)
	var out []events.Bottleneck
	for _, l := range lanes {
		work := l.Backlog + uint64(l.InFlight)
		if work == 0 {
			continue
		}
		b := events.Bottleneck{Lane: l.Lane, Backlog: work, Rate: round2(rate[l.Lane])}
		switch {
		case l.Paused:
			b.Why = "the lane is paused"
			if l.PausedUntil != nil && time.Until(*l.PausedUntil) < 50*365*24*time.Hour {
				b.Why += " until " + l.PausedUntil.Format(time.RFC3339)
			}
		case !served[l.Type]:
			b.Why = fmt.Sprintf("no live agent serves type %q", l.Type)
		case len(l.Requires) > 0 && !offers.Meets(events.Need{Type: l.Type, Requires: l.Requires}):
			b.Why = fmt.Sprintf("no live agent of type %q has the capabilities %s", l.Type, strings.Join(l.Requires, ", "))
		case b.Rate == 0:
			b.Why = fmt.Sprintf("%d tasks and none finished in the last moments: the tasks are long, or the agents are stuck", work)
		default:
			s := round2(float64(work) / b.Rate)
			b.Seconds = &s
			b.Why = fmt.Sprintf("%d tasks at %.1f/s: %.1fs to drain", work, b.Rate, s)
		}
		out = append(out, b)
	}
	// Lanes that do not drain at all first, then the longest to drain.
	slices.SortStableFunc(out, func(x, y events.Bottleneck) int {
		switch {
		case x.Seconds == nil && y.Seconds == nil:
			return cmp.Compare(y.Backlog, x.Backlog)
		case x.Seconds == nil:
			return -1
		case y.Seconds == nil:
			return 1
		}
		return cmp.Compare(*y.Seconds, *x.Seconds)
	})
	return out
}

func (m *Monitor) view(rec *events.Workflow, now time.Time, lanes []events.Bottleneck, p50 float64, r *recentOf) events.WorkflowView {
	c, running := m.counts(rec, r)
	finished := c.Completed + c.Failed + c.Cancelled
	v := events.WorkflowView{ID: rec.ID, Name: rec.Name, Status: rec.Status, Outcome: rec.Outcome, Counts: c,
		Completed: c.Completed, Submitted: rec.Submitted, Active: c.Running, Ready: !rec.Ready.IsZero()}
	slices.Sort(running)
	if len(running) > events.MaxListedTasks {
		running = running[:events.MaxListedTasks]
	}
	v.Running = running
	if c.Total > 0 {
		v.Progress = round1(100 * float64(finished) / float64(c.Total))
	}
	// The workflow's drain rate: its results over the rate window, or since
	// the first of them started, if later: the time its tasks waited before
	// any ran (a paused or busy lane, agents starting) says nothing of how
	// fast the rest will go. The start is the agent's clock: one behind
	// the monitor's cannot take the span back before the submission, one
	// ahead of it (a start after now) is not used.
	since := now.Add(-m.cfg.RateWindow)
	if rec.Submitted.After(since) {
		since = rec.Submitted
	}
	if r != nil && r.first.After(since) && r.first.Before(now) {
		since = r.first
	}
	n := 0
	if r != nil {
		for _, at := range r.lately {
			if !at.Before(since) {
				n++
			}
		}
	}
	if span := now.Sub(since); n > 0 && span > 0 {
		v.Rate = round2(float64(n) / max(span, 100*time.Millisecond).Seconds())
	}
	remaining := c.Total - finished
	switch {
	case remaining == 0:
		zero := 0.0
		v.ETASeconds, v.ETA = &zero, "done"
	case rec.Status == events.WorkflowPaused || rec.Status == events.WorkflowStopped:
		v.ETA = "unknown: the workflow is " + rec.Status
	case v.Rate == 0:
		v.ETA = "unknown: no task of it has finished lately, so there is no rate yet"
	default:
		eta := round2(float64(remaining) / v.Rate)
		v.ETASeconds = &eta
		v.ETA = fmt.Sprintf("%.1fs (%d tasks left at %.2f/s)", eta, remaining, v.Rate)
	}
	for _, b := range lanes {
		if slices.Contains(rec.Lanes, b.Lane) {
			b := b
			v.Bottleneck = &b
			break
		}
	}
	v.CriticalPath = criticalPath(rec, remaining, p50, v.ETASeconds)
	return v
}

// criticalPath says how much of the longest dependency chain is left, and
// whether, at the median task time p50, it fits within the ETA.
func criticalPath(rec *events.Workflow, remaining int, p50 float64, eta *float64) events.CriticalPathStatus {
	cp := events.CriticalPathStatus{Total: rec.CriticalPathTotal, Remaining: rec.CriticalPath, OnSchedule: true}
	if remaining == 0 {
		cp.Remaining = 0
	}
	switch {
	case cp.Remaining == 0:
		cp.Why = "the critical path is done"
	case p50 == 0:
		cp.Why = fmt.Sprintf("%d of %d steps left; no task timings yet", cp.Remaining, cp.Total)
	default:
		s := round2(float64(cp.Remaining) * p50)
		cp.Seconds = &s
		switch {
		case eta == nil:
			cp.Why = fmt.Sprintf("%d of %d steps left, at least %.1fs", cp.Remaining, cp.Total, s)
		case s > *eta*1.1:
			cp.OnSchedule = false
			cp.Why = fmt.Sprintf("behind: its %d remaining steps need %.1fs, more than the %.1fs the drain rate promises; more agents will not help, shorter tasks on it will", cp.Remaining, s, *eta)
		default:
			cp.Why = fmt.Sprintf("on schedule: its %d remaining steps need %.1fs, within the %.1fs ETA", cp.Remaining, s, *eta)
		}
	}
	return cp
}

func agentStats(list []events.AgentInfo) events.AgentStats {
	st := events.AgentStats{List: list}
	var done, failures int64
	for _, a := range list {
		switch a.Status {
		case events.AgentFailed:
			st.Failed++
			continue
		case events.AgentBusy:
			st.Busy++
		case events.AgentDraining:
			st.Draining++
		default:
			st.Idle++
		}
		st.Active++
		st.Slots += a.Concurrency
		st.BusySlots += a.Running
		done += a.Done
		failures += a.Failures
	}
	if st.Slots > 0 {
		st.Utilization = round4(float64(st.BusySlots) / float64(st.Slots))
	}
	if done+failures > 0 {
		st.FailureRate = round4(float64(failures) / float64(done+failures))
	}
	if st.List == nil {
		st.List = []events.AgentInfo{}
	}
	return st
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }
func round2(x float64) float64 { return math.Round(x*100) / 100 }
func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }
