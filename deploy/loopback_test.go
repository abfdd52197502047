package deploy_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/service"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/jetstream/auth"
	"github.com/nats-io/nats.go/jetstream"
)

// previousRelease is the last commit of baton that was released before this
// one: the loopback suite upgrades a running deployment from it, service by
// service. Move it forward at each release.
const previousRelease = "5ff0a16"

// loopback is a deployment of processes on 127.0.0.1: three nats-server
// nodes in one JetStream cluster and baton's services, each started from
// a binary the suite built, with its own role's nkey.
type loopback struct {
	*suite
	dir   string
	urls  string
	mu    sync.Mutex
	procs map[string]*process // by name: n1..n3, planner-1, ...
}

// process is one program of the deployment, which the suite may SIGKILL
// and start again with the same arguments (or another binary).
type process struct {
	name string
	bin  string
	args []string
	env  []string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan struct{}
}

// start runs p, logging into its buffer, and notes when it exits.
func (l *loopback) start(p *process) {
	l.t.Helper()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	l.mu.Lock()
	if p.log == nil {
		p.log = &bytes.Buffer{}
	}
	cmd.Stdout, cmd.Stderr = &lockedWriter{&l.mu, p.log}, &lockedWriter{&l.mu, p.log}
	l.mu.Unlock()
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("start %s: %v", p.name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(p.done)
	l.mu.Lock()
	l.procs[p.name] = p
	l.mu.Unlock()
}

// kill sends SIGKILL to p and waits until it is gone.
func (l *loopback) kill(p *process) {
	l.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// node returns the nats-server process of that server name; a name that
// is none of them fails the test.
func (l *loopback) node(name string) *process {
	l.t.Helper()
	l.mu.Lock()
	p := l.procs[name]
	l.mu.Unlock()
	if p == nil {
		l.t.Fatalf("server %q is none of the deployment's nodes", name)
	}
	return p
}

// byPID returns the process with that pid, or nil.
func (l *loopback) byPID(pid string) *process {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.procs {
		if p.cmd != nil && fmt.Sprint(p.cmd.Process.Pid) == pid {
			return p
		}
	}
	return nil
}

// leaderProcess returns the service process whose replica leads key: a
// replica id is "<host>-<pid>-<suffix>".
func (l *loopback) leaderProcess(key string) *process {
	parts := strings.Split(l.leader(key), "-")
	if len(parts) < 3 {
		return nil
	}
	return l.byPID(parts[len(parts)-2])
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// build compiles baton's services from the tree at src (and nats-server,
// a Go module of it) into dir.
func build(t *testing.T, src, dir string) {
	t.Helper()
	for _, args := range [][]string{
		{"build", "-o", dir + "/", "./cmd/planner", "./cmd/aggregator", "./cmd/agent"},
		{"build", "-o", filepath.Join(dir, "nats-server"), "github.com/nats-io/nats-server/v2"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), src, err, out)
		}
	}
}

// buildPrevious builds previousRelease's services into dir; false if this
// clone does not hold that commit.
func buildPrevious(t *testing.T, root, dir string) bool {
	t.Helper()
	if exec.Command("git", "-C", root, "rev-parse", "--verify", "--quiet", previousRelease+"^{commit}").Run() != nil {
		return false
	}
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	archive := exec.Command("sh", "-c", fmt.Sprintf("git -C %q archive %s | tar -x -C %q", root, previousRelease, src))
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", previousRelease, err, out)
	}
	build(t, src, dir)
	return true
}

// TestLoopback_SurvivesFaults runs the container suite's scenarios
// without Docker: a 3-node JetStream cluster (R3 streams) and two
// replicas of every service, as processes on loopback, each service on its
// own role. The deployment starts on the previous release and is upgraded
// to this build service by service while a workflow runs; then a NATS
// node, the TASKS stream's leader node, the leading planner, the leading
// aggregator and an agent are each SIGKILLed mid-workflow. Each workflow
// must finish with each task's result stored once and the output the test
// computed beforehand. (A node cut off the network needs the container
// suite.)
func TestLoopback_SurvivesFaults(t *testing.T) {
	// Opt-in, like the container suite: it loads the machine for minutes.
	if os.Getenv("BATON_CLUSTER") != "1" {
		t.Skip("the loopback cluster suite runs with BATON_CLUSTER=1 (as .ci/run does, in a step of its own)")
	}
	root, _ := filepath.Abs("..")
	dir := t.TempDir()
	cfg := streams.Config{}.WithDefaults()
	l := &loopback{suite: &suite{t: t, cfg: cfg}, dir: dir, procs: map[string]*process{}}
	l.recapOnFailure()
	began := time.Now()
	current := filepath.Join(dir, "current")
	build(t, root, current)
	previous := filepath.Join(dir, "previous")
	upgrade := buildPrevious(t, root, previous)
	if !upgrade {
		t.Logf("release %s is not in this clone (a shallow one?): the deployment starts on this build, and the upgrade is a restart onto it", previousRelease)
		previous = current
	}
	t.Logf("built in %v", time.Since(began).Round(100*time.Millisecond))

	authDir := filepath.Join(dir, "auth")
	if _, err := auth.Write(authDir, auth.Standard(cfg, map[string][]string{"data": {"data", "sleep", "noop"}})); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.mu.Lock()
		procs := l.procs
		l.mu.Unlock()
		for _, p := range procs {
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.done
			if t.Failed() {
				l.mu.Lock()
				t.Logf("%s:\n%s", p.name, tail(p.log.String(), 3000))
				l.mu.Unlock()
			}
		}
	})

	// Three nodes, each with its own store and a route to every node.
	client, cluster := [3]int{}, [3]int{}
	var routes, urls []string
	for i := range 3 {
		client[i], cluster[i] = freePort(t), freePort(t)
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", cluster[i]))
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", client[i]))
	}
	l.urls = strings.Join(urls, ",")
	nodes := make([]*process, 3)
	for i := range 3 {
		name := fmt.Sprintf("n%d", i+1)
		conf := filepath.Join(dir, name+".conf")
		body := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
max_payload: 8MB
jetstream { store_dir: %q }
cluster {
  name: baton
  listen: 127.0.0.1:%d
  routes: [%s]
}
include "auth/auth.conf"
`, name, client[i], filepath.Join(dir, name), cluster[i], strings.Join(routes, ", "))
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		nodes[i] = &process{name: name, bin: filepath.Join(current, "nats-server"), args: []string{"-c", conf}}
		l.start(nodes[i])
	}

	// The previous release's services gave up when no server listened
	// yet (this build's wait): start them once every node listens. They
	// still find a cluster without JetStream leaders, and wait for it.
	for i := range 3 {
		l.waitFor(time.Minute, "node "+nodes[i].name+" to listen", func() bool {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", client[i]))
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	// Two replicas of each service, each with its role's nkey.
	replica := func(name, bin, role string, args ...string) *process {
		return &process{name: name, bin: bin,
			args: append(args, "--nkey", filepath.Join(authDir, auth.SeedFile(role)), "--inbox-prefix", auth.InboxPrefix(role)),
			env:  []string{"NATS_URL=" + l.urls}}
	}
	// In the order a rolling upgrade takes them (README, Deploy): planners,
	// then aggregators, then agents. Decoders are strict, so a service
	// must be upgraded before anything writes it a new field: a new agent
	// adds fields to results (usage), which an older planner refuses.
	var services []*process
	for i := 1; i <= 2; i++ {
		services = append(services, replica(fmt.Sprintf("planner-%d", i), filepath.Join(previous, "planner"), auth.Planner, "--replicas", "3"))
	}
	for i := 1; i <= 2; i++ {
		services = append(services, replica(fmt.Sprintf("aggregator-%d", i), filepath.Join(previous, "aggregator"), auth.Aggregator, "--replicas", "3"))
	}
	for i := 1; i <= 2; i++ {
		services = append(services, replica(fmt.Sprintf("agent-%d", i), filepath.Join(previous, "agent"), auth.AgentRole+"-data",
			"--types", "data,sleep,noop", "--concurrency", "4", "--id", fmt.Sprintf("agent-%d", i)))
	}
	for _, p := range services {
		l.start(p)
	}
	l.connect(l.urls, authDir)
	// Ready as the planners' /readyz says it (compose's health checks
	// wait on that): a planner takes requests, an aggregator leads.
	plannerReady := service.PlannerReady(l.nc, l.cfg)
	l.waitFor(2*time.Minute, "a planner to take requests and an aggregator to lead", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		return l.leaderProcess("planner") != nil && l.leaderProcess("aggregator") != nil && plannerReady(ctx) == nil
	})
	t.Logf("cluster and services ready in %v", time.Since(began).Round(100*time.Millisecond))
	l.takesJobsAtOnce()

	from := "release " + previousRelease
	if !upgrade {
		from = "this build"
	}
	l.scenario("rolling upgrade from "+from, func(wf string, at func(int) func() bool) {
		for i, p := range services {
			l.waitFor(time.Minute, "more progress", at(tasks*(i+1)/(len(services)+2)))
			l.stop(p)
			p.bin = filepath.Join(current, filepath.Base(p.bin))
			l.start(p)
		}
	})
	l.scenario("undisturbed", func(string, func(int) func() bool) {})
	l.scenario("NATS node SIGKILLed, restarted", func(wf string, at func(int) func() bool) {
		l.waitFor(time.Minute, "a quarter done", at(tasks/4))
		l.kill(nodes[1])
		l.waitFor(time.Minute, "half done", at(tasks/2))
		l.start(nodes[1])
	})
	l.scenario("TASKS leader node SIGKILLed", func(wf string, at func(int) func() bool) {
		l.waitFor(time.Minute, "a quarter done", at(tasks/4))
		node := l.node(l.clusterLeader("TASKS", l.streamCluster(cfg.TasksStream())))
		l.kill(node)
		l.waitFor(time.Minute, "half done", at(tasks/2))
		l.start(node)
	})
	// The node leading the planner's JOBS consumer dies between two jobs:
	// the next job, submitted once with the client, is planned once the
	// consumer has a new leader and the planner has pulled again
	// (streams.Liveness), and finishes.
	{
		node := l.node(l.clusterLeader("the planner's JOBS consumer", func(ctx context.Context) (*jetstream.ClusterInfo, error) {
			c, err := l.js.Consumer(ctx, cfg.JobsStream(), cfg.Planner().Durable)
			if err != nil {
				return nil, err
			}
			return c.CachedInfo().Cluster, nil
		}))
		l.kill(node)
		took := l.submitOnce("a job right after the JOBS consumer's leader node died")
		t.Logf("a job right after the JOBS consumer's leader node died: submitted and finished in %v", took.Round(10*time.Millisecond))
		if took > time.Minute {
			t.Errorf("the job took %v after the JOBS consumer's node died, want under a minute (before the liveness options it took longer)", took)
		}
		l.start(node)
	}
	for _, key := range []string{"planner", "aggregator"} {
		l.scenario("leading "+key+" SIGKILLed", func(wf string, at func(int) func() bool) {
			l.waitFor(time.Minute, "a quarter done", at(tasks/4))
			old := l.leaderProcess(key)
			if old == nil {
				t.Fatalf("no %s leads", key)
			}
			l.kill(old)
			took := l.waitFor(30*time.Second, "another "+key+" to lead", func() bool {
				p := l.leaderProcess(key)
				return p != nil && p != old
			})
			t.Logf("%s takeover %v after SIGKILL", key, took.Round(10*time.Millisecond))
			l.start(old)
		})
	}
	l.scenario("an agent SIGKILLed", func(wf string, at func(int) func() bool) {
		l.waitFor(time.Minute, "a quarter done", at(tasks/4))
		l.kill(l.procs["agent-1"])
		l.waitFor(time.Minute, "half done", at(tasks/2))
		l.start(l.procs["agent-1"])
	})
	t.Logf("suite: %v in all", time.Since(began).Round(time.Second))
}

// stop ends p with SIGTERM, as an orchestrator's rolling restart does, and
// waits for it to drain and exit.
func (l *loopback) stop(p *process) {
	l.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		l.t.Fatalf("%s did not stop within a minute of SIGTERM", p.name)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
