package cli

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/baton-dev/baton/internal/benchkit"
	"github.com/baton-dev/baton/internal/procstat"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// suiteOptions are the flags of bench --suite.
type suiteOptions struct {
	bin           string        // --bin: where external mode finds its programs
	w2Tasks       int           // --w2-tasks
	w2Sleep       time.Duration // --w2-sleep
	w2Concurrency int           // --w2-concurrency
	latencyRuns   int           // --latency-runs: warm one-task jobs
	idleRuns      int           // --idle-runs: one-task jobs after idle
	idle          time.Duration // --idle
	large         int           // --large: one job of this many tasks
	profiles      string        // --profiles: where the external services write CPU profiles
}

// validate checks the suite's flags against agents, the agents W2 uses.
func (o suiteOptions) validate(agents int) error {
	switch {
	case o.w2Tasks < 1 || o.w2Tasks > events.DefaultMaxTasks:
		return usagef("--w2-tasks must be 1..%d", events.DefaultMaxTasks)
	case o.w2Sleep <= 0:
		return usagef("--w2-sleep must be above 0")
	case o.w2Concurrency < 1 || o.w2Concurrency%agents != 0:
		return usagef("--w2-concurrency must be a positive multiple of --agents (%d): W2 gives each agent an equal share", agents)
	case o.latencyRuns < 1 || o.idleRuns < 1:
		return usagef("--latency-runs and --idle-runs must be at least 1")
	case o.idle < 0:
		return usagef("--idle must not be negative")
	case o.large < 0 || o.large > events.MaxTasksCeiling:
		return usagef("--large must be 0..%d", events.MaxTasksCeiling)
	case o.profiles != "" && o.bin == "":
		return usagef("--profiles profiles the external mode's services: it needs --bin")
	}
	return nil
}

// suiteTarget is a deployment the suite measures: this process's
// connection and client, and the processes whose CPU and memory count.
type suiteTarget struct {
	mode    string // "embedded" or "external"
	nc      *nats.Conn
	client  *client.Client
	streams streams.Config
	workers []*nats.Conn // the bare pipeline's workers' connections
	procs   []suiteProc
}

// suiteProc is one measured process; pid 0 is this one.
type suiteProc struct {
	name string
	pid  int
}

// cpu returns the CPU time each of t's processes has used, by name.
func (t *suiteTarget) cpu() (map[string]time.Duration, error) {
	m := make(map[string]time.Duration, len(t.procs))
	for _, p := range t.procs {
		d, err := procstat.CPU(p.pid)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		m[p.name] = d
	}
	return m, nil
}

// resetPeaks starts a new peak RSS for each of t's processes.
func (t *suiteTarget) resetPeaks() error {
	for _, p := range t.procs {
		if err := procstat.ResetPeak(p.pid); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	return nil
}

// peaks returns each process's peak RSS since resetPeaks, in MiB.
func (t *suiteTarget) peaks() (map[string]float64, error) {
	m := make(map[string]float64, len(t.procs))
	for _, p := range t.procs {
		b, err := procstat.PeakRSS(p.pid)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		m[p.name] = float64(b) / (1 << 20)
	}
	return m, nil
}

// storedStreams are the streams whose bytes per task the suite reports,
// besides the sum over every stream.
func storedStreams(c streams.Config) []string {
	return []string{c.JobsStream(), c.TasksStream(), c.ResultsStream(), c.EventsStream(), c.OutputsStream()}
}

// allStreams names the row of the sum over every stream (key-value
// buckets included).
const allStreams = "all streams"

// stored returns the bytes each stream on the server holds, and their
// sum under allStreams.
func (t *suiteTarget) stored(ctx context.Context) (map[string]uint64, error) {
	js, err := jetstream.New(t.nc)
	if err != nil {
		return nil, err
	}
	m := map[string]uint64{}
	l := js.ListStreams(ctx)
	for info := range l.Info() {
		m[info.Config.Name] = info.State.Bytes
		m[allStreams] += info.State.Bytes
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	return m, nil
}

// suite is one run of bench --suite: its settings and the table it fills.
type suite struct {
	f      *upFlags
	o      benchOptions
	table  suiteTable
	stdout io.Writer
}

// benchSuite runs every workload of the suite and prints the table.
func benchSuite(ctx context.Context, f *upFlags, o benchOptions, stdout, stderr io.Writer) error {
	if _, err := procstat.CPU(0); err != nil {
		return fmt.Errorf("bench --suite reads CPU time and memory from /proc: %w", err)
	}
	s := &suite{f: f, o: o, stdout: stdout}
	so := o.suite
	if so.bin != "" {
		if err := checkPrograms(so.bin); err != nil {
			return err
		}
	}
	if so.profiles != "" {
		if err := os.MkdirAll(so.profiles, 0o755); err != nil {
			return fmt.Errorf("--profiles: %w", err)
		}
	}
	fmt.Fprintf(stdout, "baton bench --suite: W1 %d no-op tasks, %d agents × %d slots; W2 %d × %v at concurrency %d; latency %d warm runs, %d after %v idle; %d round(s), medians\n",
		o.tasks, f.agents, f.concurrency, so.w2Tasks, so.w2Sleep, so.w2Concurrency, so.latencyRuns, so.idleRuns, so.idle, o.rounds)

	emb, err := startEmbeddedRun(ctx, s.embeddedFlags(f.agents, f.concurrency), stderr)
	if err != nil {
		return err
	}
	t := &suiteTarget{mode: "embedded", nc: emb.emb.Conn, client: emb.client, streams: f.Streams,
		procs: []suiteProc{{name: "this process"}}}
	err = s.w1(ctx, t)
	if stopErr := emb.stop(); err == nil {
		err = stopErr
	}
	if err != nil {
		return fmt.Errorf("embedded: %w", err)
	}

	if err := s.w2(ctx, stderr); err != nil {
		return fmt.Errorf("W2: %w", err)
	}

	externalNote := ""
	if so.bin == "" {
		externalNote = "external mode: not run; it needs --bin DIR with the programs " + strings.Join(externalPrograms, ", ") +
			" (" + externalBuild + ")"
	} else {
		ext, err := startExternal(ctx, f, so.bin, s.profile("w1"))
		if err != nil {
			return fmt.Errorf("external: %w", err)
		}
		err = s.w1(ctx, ext.target(f.Streams))
		if err != nil {
			err = fmt.Errorf("external: %w%s", err, ext.logs())
		}
		ext.stop()
		if err != nil {
			return err
		}
	}

	fmt.Fprintln(stdout)
	s.table.print(stdout)
	if externalNote != "" {
		fmt.Fprintln(stdout, externalNote)
	}
	if so.large > 0 {
		if err := s.largeRuns(ctx, stderr); err != nil {
			return err
		}
	}
	if so.profiles != "" {
		fmt.Fprintf(stdout, "CPU profiles of the external services, each of its whole run: %s (e.g. go tool pprof -top %s %s)\n",
			filepath.Join(so.profiles, "{w1,large}-<service>.pprof"), filepath.Join(so.bin, "agent"), s.profile("w1")("agent-1"))
	}
	return nil
}

// profile returns, for --profiles, the CPU profile file of each external
// service of run ("w1", "large") by name; without it, none.
func (s *suite) profile(run string) func(name string) string {
	if s.o.suite.profiles == "" {
		return nil
	}
	return func(name string) string { return filepath.Join(s.o.suite.profiles, run+"-"+name+".pprof") }
}

// embeddedFlags returns a copy of the command's flags for a fresh
// embedded run with agents × concurrency slots.
func (s *suite) embeddedFlags(agents, concurrency int) *upFlags {
	f := *s.f
	f.data = "" // a temporary directory each
	f.agents, f.concurrency = agents, concurrency
	return &f
}

// w1 runs the rounds of W1 on t: per round the bare pipeline (N tasks,
// then the latency runs), then baton (one job of N no-op tasks, then the
// latency runs), measuring throughput, CPU, peak RSS and stored bytes.
func (s *suite) w1(ctx context.Context, t *suiteTarget) error {
	n := s.o.tasks
	for round := 1; round <= s.o.rounds; round++ {
		p, err := newBare(ctx, t.nc, bareConfig{name: fmt.Sprintf("SUITE_%s_%d", strings.ToUpper(t.mode), round), workers: t.workers})
		if err != nil {
			return fmt.Errorf("bare pipeline: %w", err)
		}
		bare, err := s.measure(ctx, t, func() (time.Duration, error) { return p.run(ctx, n) })
		if err == nil {
			bare.tasks, bare.results, err = p.stored(ctx)
		}
		var bareLat latencies
		if err == nil {
			bareLat, err = s.latency(ctx, func() (time.Duration, error) { return p.run(ctx, 1) })
		}
		p.close(ctx)
		if err != nil {
			return fmt.Errorf("bare pipeline: %w", err)
		}
		shaped, err := s.shaped(ctx, t, round)
		if err != nil {
			return fmt.Errorf("bare pipeline in baton's shapes: %w", err)
		}

		before, err := t.stored(ctx)
		if err != nil {
			return err
		}
		bat, err := s.measure(ctx, t, func() (time.Duration, error) { return runJob(ctx, t.client, "noop", n, 0) })
		if err != nil {
			return fmt.Errorf("baton: %w", err)
		}
		after, err := t.stored(ctx)
		if err != nil {
			return err
		}
		batLat, err := s.latency(ctx, func() (time.Duration, error) { return runJob(ctx, t.client, "noop", 1, 0) })
		if err != nil {
			return fmt.Errorf("baton latency: %w", err)
		}
		fmt.Fprintf(s.stdout, "%s round %d: bare %.0f tasks/s, bare in baton's shapes %.0f tasks/s, baton %.0f tasks/s\n",
			t.mode, round, bare.rate(n), shaped.rate(n), bat.rate(n))
		s.record(t, n, bare, shaped, bat, bareLat, batLat, before, after)
	}
	return nil
}

// shapedRow names the rows whose baton column is the bare pipeline
// sending baton's message shapes.
const shapedRow = "bare in baton's shapes (in the baton column)"

// shaped measures the bare pipeline sending baton's message shapes
// (bareConfig.shaped) on t: what baton's wire format alone costs.
func (s *suite) shaped(ctx context.Context, t *suiteTarget, round int) (measured, error) {
	p, err := newBare(ctx, t.nc, bareConfig{name: fmt.Sprintf("SUITE_%s_SHAPED_%d", strings.ToUpper(t.mode), round), workers: t.workers, shaped: true})
	if err != nil {
		return measured{}, err
	}
	defer p.close(ctx)
	return s.measure(ctx, t, func() (time.Duration, error) { return p.run(ctx, s.o.tasks) })
}

// measured is one timed part of a round.
type measured struct {
	elapsed        time.Duration
	cpu            time.Duration            // all processes together
	cpus           map[string]time.Duration // by process
	peaks          map[string]float64       // MiB by process
	tasks, results uint64                   // the bare pipeline's stored bytes
}

func (m measured) rate(n int) float64 { return float64(n) / m.elapsed.Seconds() }

// measure runs part and measures its time, the CPU all of t's processes
// use meanwhile, and their peak RSS.
func (s *suite) measure(ctx context.Context, t *suiteTarget, part func() (time.Duration, error)) (measured, error) {
	var m measured
	// What earlier parts left on the heap is not this part's peak.
	debug.FreeOSMemory()
	if err := t.resetPeaks(); err != nil {
		return m, err
	}
	c0, err := t.cpu()
	if err != nil {
		return m, err
	}
	if m.elapsed, err = part(); err != nil {
		return m, err
	}
	c1, err := t.cpu()
	if err != nil {
		return m, err
	}
	m.cpus = make(map[string]time.Duration, len(c1))
	for name, d := range c1 {
		m.cpus[name] = d - c0[name]
		m.cpu += d - c0[name]
	}
	m.peaks, err = t.peaks()
	return m, err
}

// latencies are one round's one-task round trips.
type latencies struct {
	warm, idle []time.Duration
}

// latency times once latencyRuns times back to back, then idleRuns times
// each after the idle pause.
func (s *suite) latency(ctx context.Context, once func() (time.Duration, error)) (latencies, error) {
	var l latencies
	for range s.o.suite.latencyRuns {
		d, err := once()
		if err != nil {
			return l, err
		}
		l.warm = append(l.warm, d)
	}
	for range s.o.suite.idleRuns {
		select {
		case <-ctx.Done():
			return l, ctx.Err()
		case <-time.After(s.o.suite.idle):
		}
		d, err := once()
		if err != nil {
			return l, err
		}
		l.idle = append(l.idle, d)
	}
	return l, nil
}

// record adds one round of W1 on t to the table; shaped is the bare
// pipeline in baton's shapes.
func (s *suite) record(t *suiteTarget, n int, bare, shaped, bat measured, bareLat, batLat latencies, before, after map[string]uint64) {
	row := func(what string) string { return fmt.Sprintf("%s %s", t.mode, what) }
	tb := &s.table
	tb.add(row("W1 throughput, tasks/s"), bare.rate(n), bat.rate(n))
	tb.add(row("W1 CPU per task, µs (all processes)"), perTask(bare.cpu, n), perTask(bat.cpu, n))
	if len(t.procs) > 1 {
		// Where the CPU goes, by process.
		tb.byProcess(row, t.procs, "W1 CPU per task, µs, ", perTaskEach(bare.cpus, n), perTaskEach(bat.cpus, n),
			"agents together", func(a, b float64) float64 { return a + b })
		for _, name := range []string{"nats-server", "bench process"} {
			tb.add(row("W1 CPU per task, µs, "+name+": "+shapedRow), perTask(bare.cpus[name], n), perTask(shaped.cpus[name], n))
		}
	}
	tb.add(row("W1 throughput, tasks/s: "+shapedRow), bare.rate(n), shaped.rate(n))
	tb.add(row("W1 CPU per task, µs: "+shapedRow), perTask(bare.cpu, n), perTask(shaped.cpu, n))
	tb.add(row("W1 throughput: baton ÷ bare in baton's shapes"), shaped.rate(n), bat.rate(n))
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	tb.add(row("latency warm p50, ms"), ms(percentile(bareLat.warm, 50)), ms(percentile(batLat.warm, 50)))
	tb.add(row("latency warm p99, ms"), ms(percentile(bareLat.warm, 99)), ms(percentile(batLat.warm, 99)))
	tb.add(row(fmt.Sprintf("latency after %v idle p50, ms", s.o.suite.idle)), ms(percentile(bareLat.idle, 50)), ms(percentile(batLat.idle, 50)))
	tb.byProcess(row, t.procs, "W1 peak RSS, MiB, ", bare.peaks, bat.peaks,
		"largest agent", func(a, b float64) float64 { return max(a, b) })
	perN := func(b uint64) float64 { return float64(b) / float64(n) }
	delta := func(name string) float64 { return float64(int64(after[name])-int64(before[name])) / float64(n) }
	for _, name := range storedStreams(t.streams) {
		bareBytes := none
		switch name {
		case t.streams.TasksStream():
			bareBytes = perN(bare.tasks)
		case t.streams.ResultsStream():
			bareBytes = perN(bare.results)
		}
		tb.add(row("W1 stored bytes per task, "+name), bareBytes, delta(name))
	}
	tb.add(row("W1 stored bytes per task, "+allStreams), perN(bare.tasks+bare.results), delta(allStreams))
}

// w2 runs W2 on a fresh embedded server with its own agents: per round,
// w2Tasks tasks that each sleep w2Sleep at w2Concurrency in all, through
// the bare pipeline (one worker with that many slots) and through baton
// (the sleep type, --agents agents sharing the slots); wall ÷ ideal.
func (s *suite) w2(ctx context.Context, stderr io.Writer) error {
	so := s.o.suite
	emb, err := startEmbeddedRun(ctx, s.embeddedFlags(s.f.agents, so.w2Concurrency/s.f.agents), stderr)
	if err != nil {
		return err
	}
	defer func() { _ = emb.stop() }()
	ideal := time.Duration(so.w2Tasks) * so.w2Sleep / time.Duration(so.w2Concurrency)
	// No schedule beats whole waves: some slot runs ⌈tasks ÷ slots⌉ sleeps.
	waves := (so.w2Tasks + so.w2Concurrency - 1) / so.w2Concurrency
	floor := time.Duration(waves) * so.w2Sleep
	ms := float64(so.w2Sleep) / float64(time.Millisecond)
	for round := 1; round <= s.o.rounds; round++ {
		p, err := newBare(ctx, emb.emb.Conn, bareConfig{name: fmt.Sprintf("SUITE_W2_%d", round), work: so.w2Sleep, concurrency: so.w2Concurrency})
		if err != nil {
			return fmt.Errorf("bare pipeline: %w", err)
		}
		bare, err := p.run(ctx, so.w2Tasks)
		p.close(ctx)
		if err != nil {
			return fmt.Errorf("bare pipeline: %w", err)
		}
		bat, err := runJob(ctx, emb.client, "sleep", so.w2Tasks, ms)
		if err != nil {
			return fmt.Errorf("baton: %w", err)
		}
		fmt.Fprintf(s.stdout, "W2 round %d: bare %v, baton %v, ideal %v, floor %v (%d waves; %.3f × ideal)\n", round, bare.Round(time.Millisecond), bat.Round(time.Millisecond), ideal,
			floor, waves, floor.Seconds()/ideal.Seconds())
		s.table.add(fmt.Sprintf("embedded W2 wall ÷ ideal (%d × %v, concurrency %d)", so.w2Tasks, so.w2Sleep, so.w2Concurrency),
			bare.Seconds()/ideal.Seconds(), bat.Seconds()/ideal.Seconds())
	}
	return emb.stop()
}

// largeRuns runs one job of --large tasks on a fresh embedded server and,
// with --bin, on a fresh external deployment, the planner's task limit
// raised for it in each (the planner program's --max-tasks); each prints
// its elapsed time and peak RSS per process.
func (s *suite) largeRuns(ctx context.Context, stderr io.Writer) error {
	n := s.o.suite.large
	fmt.Fprintf(s.stdout, "\nlarge: one job of %d no-op tasks\n", n)
	f := s.embeddedFlags(s.f.agents, s.f.concurrency)
	// The job is a range (a few bytes); above the default task limit the
	// embedded planner's is raised for this run.
	f.limits = events.Limits{MaxTasks: max(n, events.DefaultMaxTasks)}
	emb, err := startEmbeddedRun(ctx, f, stderr)
	if err != nil {
		return err
	}
	t := &suiteTarget{mode: "embedded", nc: emb.emb.Conn, client: emb.client, streams: f.Streams, procs: []suiteProc{{name: "this process"}}}
	err = s.large(ctx, t, n)
	if stopErr := emb.stop(); err == nil {
		err = stopErr
	}
	if err != nil {
		return fmt.Errorf("large, embedded: %w", err)
	}
	switch {
	case s.o.suite.bin == "":
		fmt.Fprintln(s.stdout, "large, external: not run; it needs --bin")
		return nil
	}
	ext, err := startExternal(ctx, f, s.o.suite.bin, s.profile("large"))
	if err != nil {
		return fmt.Errorf("large, external: %w", err)
	}
	defer ext.stop()
	if err := s.large(ctx, ext.target(s.f.Streams), n); err != nil {
		return fmt.Errorf("large, external: %w%s", err, ext.logs())
	}
	return nil
}

// large runs one job of n no-op tasks on t and prints what it took.
func (s *suite) large(ctx context.Context, t *suiteTarget, n int) error {
	m, err := s.measure(ctx, t, func() (time.Duration, error) { return benchkit.RunRange(ctx, t.client, "noop", n) })
	if err != nil {
		return err
	}
	var rss []string
	for _, p := range t.procs {
		rss = append(rss, fmt.Sprintf("%s %.0f", p.name, m.peaks[p.name]))
	}
	fmt.Fprintf(s.stdout, "large, %s: %v, %.0f tasks/s, CPU %.0f µs per task; peak RSS MiB: %s\n",
		t.mode, m.elapsed.Round(time.Millisecond), m.rate(n), perTask(m.cpu, n), strings.Join(rss, ", "))
	return nil
}

func perTask(d time.Duration, n int) float64 {
	return float64(d) / float64(time.Microsecond) / float64(n)
}

// perTaskEach is perTask of each process's figure.
func perTaskEach(ds map[string]time.Duration, n int) map[string]float64 {
	m := make(map[string]float64, len(ds))
	for name, d := range ds {
		m[name] = perTask(d, n)
	}
	return m
}

// percentile returns the p-th percentile of ds (nearest rank).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// none marks a row's missing bare figure.
var none = math.NaN()

// suiteTable collects the suite's figures, one value per round for each
// row, in the order rows were first added.
type suiteTable struct {
	rows []*suiteRow
}

type suiteRow struct {
	name        string
	bare, baton []float64
}

// byProcess adds a row what+<process> for each of procs: a process the
// bare pipeline also uses (the server, the bench process) beside its bare
// figure, the planner and the aggregator alone, and the agents as one row,
// what+agents where the first of them stands, their figures folded by
// fold from 0.
func (t *suiteTable) byProcess(row func(string) string, procs []suiteProc, what string, bare, baton map[string]float64,
	agents string, fold func(acc, v float64) float64) {
	folded, agentRow := 0.0, false
	for _, p := range procs {
		if strings.HasPrefix(p.name, "agent-") {
			folded = fold(folded, baton[p.name])
		}
	}
	for _, p := range procs {
		switch name := p.name; {
		case strings.HasPrefix(name, "agent-"):
			if !agentRow {
				t.add(row(what+agents), none, folded)
				agentRow = true
			}
		case name == "planner" || name == "aggregator":
			t.add(row(what+name), none, baton[name])
		default:
			t.add(row(what+name), bare[name], baton[name])
		}
	}
}

// add records one round's figures of a row; bare is none where the bare
// pipeline has no counterpart.
func (t *suiteTable) add(name string, bare, baton float64) {
	i := slices.IndexFunc(t.rows, func(r *suiteRow) bool { return r.name == name })
	if i < 0 {
		t.rows = append(t.rows, &suiteRow{name: name})
		i = len(t.rows) - 1
	}
	r := t.rows[i]
	r.bare, r.baton = append(r.bare, bare), append(r.baton, baton)
}

// print writes the table: each row's median bare figure, median baton
// figure and the median of the rounds' ratios (baton ÷ bare), "-" where
// there is no bare figure or it is zero.
func (t *suiteTable) print(w io.Writer) {
	width := len("figure")
	for _, r := range t.rows {
		width = max(width, len([]rune(r.name)))
	}
	pad := func(s string) string { return s + strings.Repeat(" ", width-len([]rune(s))) }
	fmt.Fprintf(w, "%s %12s %12s %8s\n", pad("figure"), "bare", "baton", "ratio")
	for _, r := range t.rows {
		var ratios []float64
		for i, b := range r.bare {
			if b > 0 { // false for none too
				ratios = append(ratios, r.baton[i]/b)
			}
		}
		bare, ratio := "-", "-"
		if len(ratios) > 0 {
			bare, ratio = figure(median(r.bare)), fmt.Sprintf("%.3f", median(ratios))
		} else if m := median(r.bare); !math.IsNaN(m) {
			bare = figure(m)
		}
		fmt.Fprintf(w, "%s %12s %12s %8s\n", pad(r.name), bare, figure(median(r.baton)), ratio)
	}
}

// figure formats a value with the digits that matter at its size.
func figure(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// runJob submits one job of n tasks of type typ, each with the input item,
// whose final output counts them, and returns the time from submission to
// the final output; a final output other than success with n tasks
// completed is an error.
func runJob(ctx context.Context, cl *client.Client, typ string, n int, item any) (time.Duration, error) {
	input := make([]any, n)
	for i := range input {
		input[i] = item
	}
	job, err := jsonJob(typ, input)
	if err != nil {
		return 0, err
	}
	return benchkit.Run(ctx, cl, job, n)
}
