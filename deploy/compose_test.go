package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/jetstream/auth"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const project = "batontest"

// stack is the compose project under test, seen from the host.
type stack struct {
	t    *testing.T
	root string
	env  []string
	nc   *nats.Conn
	js   jetstream.JetStream
	cl   *client.Client
	cfg  streams.Config
}

func (s *stack) run(name string, args ...string) string {
	s.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = s.root, append(os.Environ(), s.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		s.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return strings.TrimSpace(out.String())
}

// compose runs docker compose (v2) or docker-compose (v1) on the project.
func (s *stack) compose(args ...string) string {
	s.t.Helper()
	base := []string{"-p", project, "-f", "docker-compose.yml"}
	if exec.Command("docker", "compose", "version").Run() == nil {
		return s.run("docker", append(append([]string{"compose"}, base...), args...)...)
	}
	return s.run("docker-compose", append(base, args...)...)
}

// withEnv returns s with more environment for its commands.
func (s *stack) withEnv(env ...string) *stack {
	c := *s
	c.env = append(append([]string(nil), s.env...), env...)
	return &c
}

// containers returns the ids of the running containers of a service, or
// with all, of its stopped ones too (for docker start). It fails the test
// if there is none.
func (s *stack) containers(service string, all bool) []string {
	s.t.Helper()
	ps := "-q"
	if all {
		ps = "-aq"
	}
	ids := strings.Fields(s.run("docker", "ps", ps, "--filter", "label=com.docker.compose.project="+project,
		"--filter", "label=com.docker.compose.service="+service))
	if len(ids) == 0 {
		s.t.Fatalf("no container of %s", service)
	}
	return ids
}

// leaderContainer returns the container whose replica holds key's lead
// (its replica id starts with the container's host name, its short id).
func (s *stack) leaderContainer(key string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), 5*time.Second)
	defer cancel()
	kv, err := s.js.KeyValue(ctx, s.cfg.LeasesBucket())
	if err != nil {
		return ""
	}
	e, err := kv.Get(ctx, key)
	if err != nil {
		return ""
	}
	host, _, _ := strings.Cut(string(e.Value()), "-")
	return host
}

func (s *stack) waitFor(within time.Duration, what string, cond func() bool) time.Duration {
	s.t.Helper()
	began := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Since(began) > within {
			s.t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		<-tick.C
	}
	return time.Since(began)
}

// results counts the results stored per task of wf, and in all, from the
// stream's per-subject counts (no consumer: one on a node just lost can
// take long to recover).
func (s *stack) results(wf string) (perTask map[string]int, total int) {
	s.t.Helper()
	perSubject := s.count(s.cfg.ResultsStream(), s.cfg.Subjects().Result(wf, "*"))
	perTask = map[string]int{}
	for subject, n := range perSubject {
		perTask[subject[strings.LastIndexByte(subject, '.')+1:]] = int(n)
		total += int(n)
	}
	return perTask, total
}

// count returns how many messages of stream each subject matching filter
// holds (nil if the stream cannot be asked right now).
func (s *stack) count(stream, filter string) map[string]uint64 {
	ctx, cancel := context.WithTimeout(s.t.Context(), 10*time.Second)
	defer cancel()
	st, err := s.js.Stream(ctx, stream)
	if err != nil {
		return nil
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil
	}
	return info.State.Subjects
}

func (s *stack) started(wf string) (n uint64) {
	for _, c := range s.count(s.cfg.EventsStream(), s.cfg.Subjects().Event(wf, events.EventStarted)) {
		n += c
	}
	return n
}

const tasks = 500

// workflow submits tasks sleeps of 80-119 ms whose output is the sum of
// the milliseconds slept, a figure the test knows beforehand.
func (s *stack) workflow() (wf string, want float64) {
	s.t.Helper()
	naps := make([]int, tasks)
	for i := range naps {
		naps[i] = 80 + i%40
		want += float64(naps[i])
	}
	job, _ := json.Marshal(map[string]any{"steps": []map[string]any{{"id": "nap", "type": "sleep", "split": 1, "input": naps}},
		"aggregate": map[string]any{"strategy": "reduce", "field": "slept_ms", "op": "sum"}})
	// A submit right after a disturbance may find no stream leader yet;
	// the client retries that itself for 10 s, and so does this for a
	// minute, as a user would.
	var r *events.SubmitReply
	var err error
	s.waitFor(time.Minute, "the job to be taken", func() bool {
		ctx, cancel := context.WithTimeout(s.t.Context(), 30*time.Second)
		defer cancel()
		if r, err = s.cl.Submit(ctx, job); err != nil {
			s.t.Logf("submit: %v; again", err)
		}
		return err == nil
	})
	return r.Workflow, want
}

// scenario runs one workflow with a disturbance and checks its outcome.
func (s *stack) scenario(name string, disturb func(wf string, progress func(int) func() bool)) {
	s.t.Helper()
	began := time.Now()
	wf, want := s.workflow()
	progress := func(n int) func() bool {
		return func() bool { f, _ := s.results(wf); return len(f) >= n }
	}
	disturb(wf, progress)
	// Each read with a short deadline, tried again: a request sent while a
	// node rejoins can go unanswered, and a client must not wait on it.
	var out events.Output
	s.waitFor(3*time.Minute, name+": the final output", func() bool {
		ctx, cancel := context.WithTimeout(s.t.Context(), 5*time.Second)
		defer cancel()
		st, err := s.js.Stream(ctx, s.cfg.OutputsStream())
		if err != nil {
			return false
		}
		m, err := st.GetLastMsgForSubject(ctx, s.cfg.Subjects().Output(wf, "final"))
		return err == nil && json.Unmarshal(m.Data, &out) == nil
	})
	elapsed := time.Since(began)
	var sum struct {
		Value float64 `json:"value"`
		Count int     `json:"count"`
	}
	if err := json.Unmarshal(out.Data, &sum); err != nil || sum.Value != want || sum.Count != tasks || out.Status != events.OutcomeSuccess {
		s.t.Errorf("%s: output %s %s, want success and %v", name, out.Status, out.Data, want)
	}
	if c := out.Metadata.Tasks; c.Total != tasks || c.Completed != tasks {
		s.t.Errorf("%s: counts %+v, want %d completed", name, c, tasks)
	}
	var perTask map[string]int
	var total int
	s.waitFor(time.Minute, name+": every result read back", func() bool {
		perTask, total = s.results(wf)
		return len(perTask) >= tasks
	})
	for task, n := range perTask {
		if n != 1 {
			s.t.Errorf("%s: task %s has %d final results", name, task, n)
		}
	}
	if len(perTask) != tasks {
		s.t.Errorf("%s: %d tasks have a final result, want %d", name, len(perTask), tasks)
	}
	s.waitFor(time.Minute, name+": the workflow recorded completed", func() bool {
		ctx, cancel := context.WithTimeout(s.t.Context(), 5*time.Second)
		defer cancel()
		rec, err := s.cl.Workflow(ctx, wf)
		return err == nil && rec.Status == events.WorkflowCompleted
	})
	s.t.Logf("%-34s %d tasks, %d results stored, %d started events (re-runs ≥ %d), elapsed %v",
		name, tasks, total, s.started(wf), max(0, int(s.started(wf))-tasks), elapsed.Round(100*time.Millisecond))
}

// TestCompose_SurvivesFaults builds the image, brings docker-compose.yml up
// (3 NATS nodes, R3 streams, 3 planners, 2 aggregators, 4 agents, every
// service on its own role) and runs a 500-task workflow per scenario while
// it breaks something: a NATS node, the TASKS stream's leader node, a node
// cut off the network, the leading planner, the leading aggregator, agents
// scaled 2 → 6 → 1 and killed, every service moved to a second build in
// turn (a rolling upgrade). Each workflow must finish with each task's
// result stored once and the output the test computed beforehand.
func TestCompose_SurvivesFaults(t *testing.T) {
	// Opt-in: the suite loads a 2-core machine for minutes, and tests that
	// measure timing (ETA estimates, takeover bounds) must not run beside
	// it. .ci/run runs it as a step of its own.
	if os.Getenv("BATON_CONTAINERS") != "1" {
		t.Skip("the container suite runs with BATON_CONTAINERS=1 (as .ci/run does, in a step of its own)")
	}
	if err := exec.Command("docker", "info").Run(); err != nil {
		t.Fatalf("BATON_CONTAINERS=1 but docker is not usable: %v", err)
	}
	root, _ := filepath.Abs("..")
	s := &stack{t: t, root: root, env: []string{"BATON_NATS_1=24222", "BATON_NATS_2=24223", "BATON_NATS_3=24224", "BATON_DASHBOARD=28080"},
		cfg: streams.Config{}.WithDefaults()}
	s.run("deploy/build")
	s.compose("down", "-v", "--remove-orphans")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", s.compose("logs", "--tail", "40"))
		}
		s.compose("down", "-v", "--remove-orphans")
	})
	began := time.Now()
	s.compose("up", "-d")

	admin, err := nats.NkeyOptionFromSeed(filepath.Join(root, "deploy", "auth", auth.SeedFile(auth.Admin)))
	if err != nil {
		t.Fatal(err)
	}
	s.nc, err = nats.Connect("nats://127.0.0.1:24222,nats://127.0.0.1:24223,nats://127.0.0.1:24224", admin,
		nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond),
		nats.PingInterval(5*time.Second), nats.MaxPingsOutstanding(3))
	if err != nil {
		t.Fatal(err)
	}
	defer s.nc.Close()
	if s.js, err = jetstream.New(s.nc); err != nil {
		t.Fatal(err)
	}
	if s.cl, err = client.New(s.nc, s.cfg); err != nil {
		t.Fatal(err)
	}
	s.waitFor(2*time.Minute, "a planner and an aggregator to lead", func() bool {
		return s.leaderContainer("planner") != "" && s.leaderContainer("aggregator") != ""
	})
	t.Logf("compose up: ready in %v", time.Since(began).Round(100*time.Millisecond))

	s.scenario("undisturbed", func(string, func(int) func() bool) {})
	s.scenario("NATS node killed, restarted", func(wf string, at func(int) func() bool) {
		s.waitFor(time.Minute, "a quarter done", at(tasks/4))
		s.run("docker", "kill", s.containers("nats-2", false)[0])
		s.waitFor(time.Minute, "half done", at(tasks/2))
		s.run("docker", "start", s.containers("nats-2", true)[0])
	})
	s.scenario("TASKS leader node killed", func(wf string, at func(int) func() bool) {
		s.waitFor(time.Minute, "a quarter done", at(tasks/4))
		info, err := s.js.Stream(t.Context(), s.cfg.TasksStream())
		if err != nil || info.CachedInfo().Cluster == nil {
			t.Fatalf("TASKS cluster info: %v", err)
		}
		node := info.CachedInfo().Cluster.Leader
		s.run("docker", "kill", s.containers(node, false)[0])
		s.waitFor(time.Minute, "half done", at(tasks/2))
		s.run("docker", "start", s.containers(node, true)[0])
	})
	s.scenario("node cut off the network", func(wf string, at func(int) func() bool) {
		s.waitFor(time.Minute, "a quarter done", at(tasks/4))
		node := s.containers("nats-3", false)[0]
		s.run("docker", "network", "disconnect", project+"_default", node)
		// Its clients notice within 3 unanswered pings (15-20 s).
		s.waitFor(2*time.Minute, "half done", at(tasks/2))
		s.run("docker", "network", "connect", "--alias", "nats-3", project+"_default", node)
	})
	s.scenario("leading planner killed", func(wf string, at func(int) func() bool) {
		s.waitFor(time.Minute, "a quarter done", at(tasks/4))
		old := s.leaderContainer("planner")
		s.run("docker", "kill", old)
		took := s.waitFor(30*time.Second, "another planner to lead", func() bool {
			l := s.leaderContainer("planner")
			return l != "" && l != old
		})
		t.Logf("planner takeover %v after SIGKILL", took.Round(10*time.Millisecond))
	})
	s.scenario("leading aggregator killed", func(wf string, at func(int) func() bool) {
		s.waitFor(time.Minute, "a quarter done", at(tasks/4))
		old := s.leaderContainer("aggregator")
		s.run("docker", "kill", old)
		took := s.waitFor(30*time.Second, "another aggregator to lead", func() bool {
			l := s.leaderContainer("aggregator")
			return l != "" && l != old
		})
		t.Logf("aggregator takeover %v after SIGKILL", took.Round(10*time.Millisecond))
	})
	// A second build of this checkout, tagged baton:next, rolled in one
	// service at a time while a workflow runs.
	s.run("deploy/build", "baton:next")
	s.scenario("rolling upgrade, service by service", func(wf string, at func(int) func() bool) {
		for i, svc := range []string{"agent-data", "agent-research", "aggregator", "planner", "dashboard"} {
			s.waitFor(time.Minute, "more progress", at(tasks*(i+1)/7))
			s.withEnv("BATON_TAG=next").compose("up", "-d", "--no-deps", "--force-recreate", svc)
		}
	})
	for _, svc := range []string{"agent-data", "agent-research", "aggregator", "planner", "dashboard"} {
		for _, id := range s.containers(svc, false) {
			if img := s.run("docker", "inspect", "--format", "{{.Config.Image}}", id); img != "baton:next" {
				t.Errorf("%s runs %s after the upgrade, want baton:next", svc, img)
			}
		}
	}
	s.scenario("agents 2 → 6 → 1, one killed", func(wf string, at func(int) func() bool) {
		s.withEnv("BATON_TAG=next").compose("up", "-d", "--no-recreate", "--scale", "agent-data=6")
		s.waitFor(time.Minute, "a third done", at(tasks/3))
		s.withEnv("BATON_TAG=next").compose("up", "-d", "--no-recreate", "--scale", "agent-data=1")
		s.waitFor(time.Minute, "half done", at(tasks/2))
		s.run("docker", "kill", s.containers("agent-data", false)[0])
	})
	s.withEnv("BATON_TAG=next").compose("up", "-d", "--no-recreate", "--scale", "agent-data=2")
	t.Logf("suite: %v in all", time.Since(began).Round(time.Second))
}
