package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/baton-dev/baton/internal/benchkit"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/nats-io/nats.go"
)

// externalPrograms are the programs bench --suite's external mode runs
// from --bin: the services' own mains, and nats-server.
var externalPrograms = []string{"nats-server", "planner", "aggregator", "agent"}

// externalBuild is the command that fills a --bin directory.
const externalBuild = "go build -o DIR/ ./cmd/planner ./cmd/aggregator ./cmd/agent github.com/nats-io/nats-server/v2"

// errNoPrograms is returned when --bin lacks one of externalPrograms.
var errNoPrograms = errors.New("--bin lacks a program")

// externalRun is a deployment of separate processes on loopback, as
// production runs baton: a nats-server with JetStream (file storage in a
// temporary directory) and the planner, the aggregator and agents, each
// its own process, plus this process's connections to it.
type externalRun struct {
	dir     string
	url     string
	server  *child
	procs   []*child // the services
	nc      *nats.Conn
	workers []*nats.Conn // for the bare pipeline's workers
	client  *client.Client
}

// child is one program of an externalRun.
type child struct {
	name string
	cmd  *exec.Cmd
	log  *tail
	done chan struct{} // closed when it has exited
}

// startExternal starts nats-server and then the services from bin, and
// waits until the agents have registered and a one-task job has run.
// With profile, each service writes a CPU profile of its run to
// profile(its name). The caller stops it.
func startExternal(ctx context.Context, f *upFlags, bin string, profile func(name string) string) (_ *externalRun, err error) {
	if err := checkPrograms(bin); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "baton-bench-")
	if err != nil {
		return nil, err
	}
	r := &externalRun{dir: dir}
	defer func() {
		if err != nil {
			r.stop()
		}
	}()
	port, err := benchkit.FreePort()
	if err != nil {
		return nil, err
	}
	r.url = "nats://127.0.0.1:" + strconv.Itoa(port)
	conf := filepath.Join(dir, "nats.conf")
	// As deploy/nats.conf, on one node: baton's payload limit, file storage.
	if err := os.WriteFile(conf, benchkit.NATSConfig(dir, port), 0o644); err != nil {
		return nil, err
	}
	if r.server, err = startChild("nats-server", filepath.Join(bin, "nats-server"), "-c", conf); err != nil {
		return nil, err
	}
	if r.nc, err = r.connect(ctx, "baton-bench"); err != nil {
		return nil, err
	}
	for i := range max(f.agents, 1) {
		wc, err := r.connect(ctx, fmt.Sprintf("baton-bench-worker-%d", i+1))
		if err != nil {
			return nil, err
		}
		r.workers = append(r.workers, wc)
	}
	if r.client, err = client.New(r.nc, f.Streams); err != nil {
		return nil, err
	}
	common := []string{"--server", r.url, "--prefix", f.Streams.WithDefaults().Prefix, "--log-level", f.LogLevel}
	own := func(name string, args ...string) []string {
		args = append(args, common...)
		if profile != nil {
			args = append(args, "--cpuprofile", profile(name))
		}
		return args
	}
	for _, name := range []string{"planner", "aggregator"} {
		var args []string
		if name == "planner" && f.limits.MaxTasks > 0 {
			args = []string{"--max-tasks", strconv.Itoa(f.limits.MaxTasks)}
		}
		c, err := startChild(name, filepath.Join(bin, name), own(name, args...)...)
		if err != nil {
			return nil, err
		}
		r.procs = append(r.procs, c)
	}
	for i := 1; i <= f.agents; i++ {
		name := fmt.Sprintf("agent-%d", i)
		c, err := startChild(name, filepath.Join(bin, "agent"),
			own(name, "--id", "bench-"+name, "--concurrency", strconv.Itoa(f.concurrency))...)
		if err != nil {
			return nil, err
		}
		r.procs = append(r.procs, c)
	}
	if err := r.ready(ctx, f.agents); err != nil {
		return nil, err
	}
	return r, nil
}

// checkPrograms checks that bin holds every external program; a usage
// error saying how to build them if not.
func checkPrograms(bin string) error {
	for _, p := range externalPrograms {
		if st, err := os.Stat(filepath.Join(bin, p)); err != nil || st.IsDir() {
			return usageError{fmt.Errorf("%w %s (build them with: %s)", errNoPrograms, p, strings.ReplaceAll(externalBuild, "DIR", bin))}
		}
	}
	return nil
}

// connect dials the server, retrying while it starts.
func (r *externalRun) connect(ctx context.Context, name string) (*nats.Conn, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		nc, err := nats.Connect(r.url, nats.Name(name), nats.MaxReconnects(-1))
		if err == nil {
			return nc, nil
		}
		if err := r.exited(); err != nil {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("nats-server on %s: %w", r.url, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ready waits until agents agents have registered and a one-task job has
// run end to end, or a child exits, or a minute passes.
func (r *externalRun) ready(ctx context.Context, agents int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		if err := r.exited(); err != nil {
			return err
		}
		ask, done := context.WithTimeout(ctx, 2*time.Second)
		list, err := r.client.Agents(ask)
		done()
		if err == nil && len(list) >= agents {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("external services not ready within a minute (agents registered: %d of %d; last error: %v)", len(list), agents, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if _, err := runJob(ctx, r.client, "noop", 1, 0); err != nil {
		return fmt.Errorf("first job on the external services: %w%s", err, r.logs())
	}
	return nil
}

// exited returns an error naming a child that has exited, with its last
// lines of output.
func (r *externalRun) exited() error {
	for _, c := range append([]*child{r.server}, r.procs...) {
		if c == nil {
			continue
		}
		select {
		case <-c.done:
			return fmt.Errorf("%s exited: %v; its last output:\n%s", c.name, c.cmd.ProcessState, c.log)
		default:
		}
	}
	return nil
}

// logs returns every child's last output, for an error message.
func (r *externalRun) logs() string {
	var b strings.Builder
	for _, c := range append([]*child{r.server}, r.procs...) {
		if c != nil && c.log.Len() > 0 {
			fmt.Fprintf(&b, "\n--- %s:\n%s", c.name, c.log)
		}
	}
	return b.String()
}

// stop stops the services (SIGTERM: agents drain), then the server, and
// removes the temporary directory. It may be called twice.
func (r *externalRun) stop() {
	for _, c := range r.procs {
		c.terminate()
	}
	for _, c := range r.procs {
		c.wait()
	}
	r.procs = nil
	for _, wc := range r.workers {
		wc.Close()
	}
	r.workers = nil
	if r.nc != nil {
		r.nc.Close()
		r.nc = nil
	}
	if r.server != nil {
		r.server.terminate()
		r.server.wait()
		r.server = nil
	}
	_ = os.RemoveAll(r.dir)
}

// target is what bench --suite measures of the deployment.
func (r *externalRun) target(cfg streams.Config) *suiteTarget {
	t := &suiteTarget{mode: "external", nc: r.nc, client: r.client, streams: cfg, workers: r.workers}
	t.procs = append(t.procs, suiteProc{name: "nats-server", pid: r.server.cmd.Process.Pid})
	for _, c := range r.procs {
		t.procs = append(t.procs, suiteProc{name: c.name, pid: c.cmd.Process.Pid})
	}
	t.procs = append(t.procs, suiteProc{name: "bench process"})
	return t
}

// startChild starts a program with baton's and NATS's environment
// variables removed (the flags say everything), killed if this process
// dies first (on Linux).
func startChild(name, path string, args ...string) (*child, error) {
	cmd := exec.Command(path, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NATS_") && !strings.HasPrefix(kv, "BATON_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	log := &tail{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }() // ends with the child
	return c, nil
}

func (c *child) terminate() { _ = c.cmd.Process.Signal(syscall.SIGTERM) }

// wait waits for the child to exit, killing it after 30 seconds.
func (c *child) wait() {
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tail) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.b)
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
