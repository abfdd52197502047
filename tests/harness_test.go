// Package tests runs baton end to end on a real nats-server: services in
// this process, or built from cmd/ and run as separate OS processes so that
// they can be killed with SIGKILL.
package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	"github.com/baton-dev/baton/internal/web"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/aggregator"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/monitor"
	"github.com/baton-dev/baton/pkg/planner"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// bin holds the service binaries built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "baton-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"github.com/baton-dev/baton/cmd/planner", "github.com/baton-dev/baton/cmd/agent",
		"github.com/baton-dev/baton/cmd/aggregator", "github.com/baton-dev/baton/cmd/baton")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build services:", err)
		return 1
	}
	bin = dir
	return m.Run()
}

// env is one baton deployment under test: a real server and whatever
// services the test starts, all stopped when the test ends.
type env struct {
	t   testing.TB
	srv *natstest.Server
	cfg streams.Config
	nc  *nats.Conn
	js  jetstream.JetStream
	cl  *client.Client

	wg  sync.WaitGroup
	ctx context.Context

	liveMu sync.Mutex
	live   []events.Event // live (unstored) events heard since the env started
}

// newEnv starts a server and creates baton's streams on it. cfg's zero
// value is the default configuration.
func newEnv(t testing.TB, cfg streams.Config) *env {
	t.Helper()
	return newEnvOn(t, natstest.Start(t), cfg)
}

func newEnvOn(t testing.TB, srv *natstest.Server, cfg streams.Config) *env {
	t.Helper()
	nc, js := natstest.Ensure(t, srv, cfg)
	cl, err := client.New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{t: t, srv: srv, cfg: cfg, nc: nc, js: js, cl: cl, ctx: ctx}
	t.Cleanup(func() { cancel(); e.wg.Wait() })
	// Started events are not stored: hear them from the start.
	if _, err := nc.Subscribe(cfg.Subjects().Lives(), func(m *nats.Msg) {
		var ev events.Event
		if json.Unmarshal(m.Data, &ev) == nil {
			e.liveMu.Lock()
			// One event per task, as a started event may name several.
			for _, task := range ev.StartedTasks() {
				one := ev
				one.Task, one.Tasks = task, nil
				e.live = append(e.live, one)
			}
			e.liveMu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) url() string { return e.srv.ClientURL() }

func (e *env) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(e.t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// goService runs fn in this process until the test ends (or stop is
// called) and reports its error then.
func (e *env) goService(name string, fn func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	var err error
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(done)
		err = fn(ctx)
	}()
	stop = sync.OnceFunc(func() {
		cancel()
		<-done
		if err != nil {
			e.t.Errorf("%s: %v", name, err)
		}
	})
	e.t.Cleanup(stop)
	return stop
}

// planner runs an in-process planner and, as cmd/planner does, a monitor
// that answers the status and agents verbs.
func (e *env) planner() func() {
	e.t.Helper()
	return e.plannerWith(planner.Config{})
}

// plannerWith is planner with cfg (its streams and logger are the env's).
func (e *env) plannerWith(cfg planner.Config) func() {
	e.t.Helper()
	cfg.Streams, cfg.Logger = e.cfg, e.logger()
	p, err := planner.New(e.nc, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	mon, err := monitor.New(e.nc, monitor.Config{Streams: e.cfg, Logger: e.logger()})
	if err != nil {
		e.t.Fatal(err)
	}
	stopPlanner := e.goService("planner", p.Run)
	stopMonitor := e.goService("monitor", mon.Run)
	stopStatus := e.goService("status service", func(ctx context.Context) error { return mon.Serve(ctx, "0.0.0") })
	return func() { stopStatus(); stopMonitor(); stopPlanner() }
}

func (e *env) aggregator() func() {
	e.t.Helper()
	a, err := aggregator.New(e.nc, aggregator.Config{Streams: e.cfg, Logger: e.logger()})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.goService("aggregator", a.Run)
}

// webServer serves wc (its Streams and Logger filled in: the dashboard and
// its API, /metrics, /healthz, /readyz) with a monitor of its own on nc
// (nil: the env's connection), on a test HTTP server closed when the test
// ends, after what the test opened on it.
func (e *env) webServer(nc *nats.Conn, wc web.Config) (*monitor.Monitor, *httptest.Server) {
	e.t.Helper()
	if nc == nil {
		nc = e.nc
	}
	mon, err := monitor.New(nc, monitor.Config{Streams: e.cfg, Logger: e.logger()})
	if err != nil {
		e.t.Fatal(err)
	}
	wc.Streams, wc.Logger = e.cfg, e.logger()
	srv, err := web.New(nc, mon, wc)
	if err != nil {
		e.t.Fatal(err)
	}
	e.goService("monitor", mon.Run)
	hs := httptest.NewServer(srv.Handler())
	e.t.Cleanup(hs.Close)
	return mon, hs
}

// agent runs an in-process agent with the given handlers.
func (e *env) agent(id string, concurrency int, handlers map[string]agent.Handler) func() {
	e.t.Helper()
	a, err := agent.New(e.nc, agent.Config{ID: id, Concurrency: concurrency, Streams: e.cfg, Logger: e.logger()})
	if err != nil {
		e.t.Fatal(err)
	}
	for typ, h := range handlers {
		a.Handle(typ, h)
	}
	return e.goService("agent "+id, a.Run)
}

// submit sends a job and returns its workflow id.
func (e *env) submit(job any) string {
	e.t.Helper()
	b, ok := job.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(job); err != nil {
			e.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := e.cl.Submit(ctx, b)
	if err != nil {
		e.t.Fatalf("submit: %v", err)
	}
	return r.Workflow
}

// final waits for a workflow's final output.
func (e *env) final(wf string, within time.Duration) *events.Output {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		out, err := e.cl.Follow(ctx, wf, nil)
		// A job published straight to JOBS (no reply) may not be planned
		// yet: its workflow is unknown until the planner records it.
		if errors.Is(err, client.ErrUnknownWorkflow) && ctx.Err() == nil {
			select {
			case <-tick.C:
				continue
			case <-ctx.Done():
			}
		}
		if err != nil {
			e.t.Fatalf("final output of %s: %v", wf, err)
		}
		// Follow may return the final output as it is published, a moment
		// before OUTPUTS stores it; the tests read OUTPUTS next.
		for {
			_, err := e.cl.Final(ctx, wf)
			if !errors.Is(err, client.ErrNoFinal) {
				break
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				e.t.Fatalf("final output of %s not stored within %v", wf, within)
			}
		}
		return out
	}
}

// stored reads every message of stream whose subject matches filter.
func (e *env) stored(stream, filter string) []jetstream.Msg {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := e.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []jetstream.Msg
	for n := info.NumPending; uint64(len(out)) < n; {
		batch, err := cons.Fetch(int(min(n-uint64(len(out)), 500)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			e.t.Fatal(err)
		}
		for m := range batch.Messages() {
			out = append(out, m)
		}
		if err := batch.Error(); err != nil {
			e.t.Fatal(err)
		}
	}
	return out
}

// results counts the results stored per task of a workflow, final ones and
// all.
func (e *env) results(wf string) (finals map[string]int, all []*events.Result) {
	e.t.Helper()
	finals = map[string]int{}
	for _, m := range e.stored(e.cfg.ResultsStream(), e.cfg.Subjects().Result(wf, "*")) {
		r, err := events.DecodeResult(m.Headers().Get(events.HeaderContentType), m.Data())
		if err != nil {
			e.t.Fatalf("stored result: %v", err)
		}
		all = append(all, r)
		if r.Final {
			finals[r.Task]++
		}
	}
	return finals, all
}

// events returns a workflow's stored events of one kind ("*" for all).
func (e *env) events(wf, kind string) []events.Event {
	e.t.Helper()
	var out []events.Event
	if kind == events.EventStarted {
		e.liveMu.Lock()
		defer e.liveMu.Unlock()
		for _, ev := range e.live {
			if ev.Workflow == wf && ev.Kind == kind {
				out = append(out, ev)
			}
		}
		return out
	}
	for _, m := range e.stored(e.cfg.EventsStream(), e.cfg.Subjects().Event(wf, kind)) {
		var ev events.Event
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			e.t.Fatalf("stored event: %v", err)
		}
		out = append(out, ev)
	}
	return out
}

// heardStarts returns the started events of wf heard so far, once enough
// holds of them or 10 s have passed (the caller's checks then say what is
// missing). An agent gathers the starts after a window's first for up to
// 20 ms, so a start can be heard after its task's result, even after the
// workflow's final output.
func (e *env) heardStarts(wf string, enough func([]events.Event) bool) []events.Event {
	e.t.Helper()
	var evs []events.Event
	natstest.Poll(10*time.Second, func() bool {
		evs = e.events(wf, events.EventStarted)
		return enough(evs)
	})
	return evs
}

// atLeast is enough for heardStarts once n starts are heard.
func atLeast(n int) func([]events.Event) bool {
	return func(evs []events.Event) bool { return len(evs) >= n }
}

// proc is a baton service running as a separate OS process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{}
}

// lockedBuffer lets the process write its log while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.String()
}

// start runs a built service (planner, agent, aggregator or baton) against
// the env's server. Its log is shown if the test fails; it is killed when
// the test ends.
func (e *env) start(name, program string, args ...string) *proc {
	e.t.Helper()
	cmd := exec.Command(filepath.Join(bin, program), append(args, "--server", e.url())...)
	log := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	e.t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		<-p.done
		if e.t.Failed() {
			e.t.Logf("---- log of %s ----\n%s", name, log.String())
		}
	})
	return p
}

func (p *proc) signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(sig)
	}
}

// kill ends the process at once, as a crash would.
func (p *proc) kill(t testing.TB) {
	t.Helper()
	p.signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not die", p.name)
	}
}

// stop asks the process to drain and waits for it to exit cleanly.
func (p *proc) stop(t testing.TB) {
	t.Helper()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop within 30s of SIGTERM", p.name)
	}
	if st := p.cmd.ProcessState; st != nil && !st.Success() {
		t.Errorf("%s exited with %v", p.name, st)
	}
}

// waitFor polls cond until it holds, failing the test after within.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	natstest.Eventually(t, within, what, cond)
}

// tally counts requests the server passes on (subjects a test watches,
// such as JetStream API calls) in the order the server sent them, so a
// check can wait for every request a connection made before it.
type tally struct {
	t       testing.TB
	seen    chan *nats.Msg
	markers int
	count   func(*nats.Msg)
}

const tallyMarker = "test.tally.marker"

// newTally watches subjects on e's connection; count is called, on the
// test's goroutine in settle, for each request heard.
func (e *env) newTally(count func(*nats.Msg), subjects ...string) *tally {
	e.t.Helper()
	ta := &tally{t: e.t, seen: make(chan *nats.Msg, 1<<16), count: count}
	for _, subject := range append(subjects, tallyMarker) {
		sub, err := e.nc.ChanSubscribe(subject, ta.seen)
		if err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	if err := e.nc.Flush(); err != nil {
		e.t.Fatal(err)
	}
	return ta
}

// settle counts every request heard up to a marker nc sends now: all
// that nc, and any connection whose messages nc has already received a
// reply to, sent before it.
func (ta *tally) settle(nc *nats.Conn) {
	ta.t.Helper()
	ta.markers++
	want := strconv.Itoa(ta.markers)
	if err := nc.Publish(tallyMarker, []byte(want)); err != nil {
		ta.t.Fatal(err)
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m := <-ta.seen:
			if m.Subject != tallyMarker {
				ta.count(m)
			} else if string(m.Data) == want {
				return
			}
		case <-timeout:
			ta.t.Fatalf("marker %s not heard back", want)
		}
	}
}

// nowAndHeld starts an agent "a" of two types: "now" answers 1 at once,
// "held" answers 2 once the returned channel is closed.
func (e *env) nowAndHeld() (release chan struct{}) {
	e.t.Helper()
	release = make(chan struct{})
	e.agent("a", 2, map[string]agent.Handler{
		"now":  agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) { return 1, nil }),
		"held": heldUntil(release, 2),
	})
	return release
}

// heldUntil is a handler that answers v once release is closed (or ends
// with its task's context).
func heldUntil(release <-chan struct{}, v any) agent.Handler {
	return agent.HandlerFunc(func(ctx context.Context, _ *agent.Task) (any, error) {
		select {
		case <-release:
			return v, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
}
