package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
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

// suite is a deployment under test seen as its users see it, through the
// NATS cluster: the part the container suite and the loopback suite share.
// Each breaks its deployment its own way (docker kill, SIGKILL of a
// process) while suite runs workflows and checks them.
type suite struct {
	t   *testing.T
	nc  *nats.Conn
	js  jetstream.JetStream
	cl  *client.Client
	cfg streams.Config

	// For the recap a failed run ends with (recapOnFailure): the scenario
	// running, what was waited for, the results it had stored, and the
	// lines of the scenarios that passed.
	scene, waiting string
	stored         int
	passed         []string
}

// recapOnFailure makes a failed run's output end with where it failed.
// The services' logs printed on a failure are long, and a CI summary shows
// the end of the output. Call it before any other Cleanup: it runs last.
func (s *suite) recapOnFailure() {
	s.t.Cleanup(func() {
		if !s.t.Failed() {
			return
		}
		s.t.Logf("RECAP: failed in scenario %q, waiting for %q, with %d of its %d results stored; passed before:\n%s",
			s.scene, s.waiting, s.stored, tasks, strings.Join(s.passed, "\n"))
	})
}

// connect connects to the cluster at urls as the admin role, whose seed is
// in the auth directory dir.
func (s *suite) connect(urls, dir string) {
	s.t.Helper()
	admin, err := nats.NkeyOptionFromSeed(filepath.Join(dir, auth.SeedFile(auth.Admin)))
	if err != nil {
		s.t.Fatal(err)
	}
	s.nc, err = nats.Connect(urls, admin,
		nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond),
		nats.PingInterval(5*time.Second), nats.MaxPingsOutstanding(3))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(s.nc.Close)
	if s.js, err = jetstream.New(s.nc); err != nil {
		s.t.Fatal(err)
	}
	if s.cl, err = client.New(s.nc, s.cfg); err != nil {
		s.t.Fatal(err)
	}
}

// leader returns the replica id that holds key's lead ("planner",
// "aggregator"), or "" when none does or it cannot be read right now.
func (s *suite) leader(key string) string {
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
	return string(e.Value())
}

// streamCluster reads the named stream's cluster info, for clusterLeader.
func (s *suite) streamCluster(name string) func(ctx context.Context) (*jetstream.ClusterInfo, error) {
	return func(ctx context.Context) (*jetstream.ClusterInfo, error) {
		st, err := s.js.Stream(ctx, name)
		if err != nil {
			return nil, err
		}
		return st.CachedInfo().Cluster, nil
	}
}

// clusterLeader waits until info (a stream's or a consumer's cluster
// info, read afresh) names a leader, and returns its server name: right
// after a node comes back, the group may still be electing one.
func (s *suite) clusterLeader(what string, info func(ctx context.Context) (*jetstream.ClusterInfo, error)) string {
	s.t.Helper()
	var leader string
	s.waitFor(time.Minute, what+" to have a leader", func() bool {
		ctx, cancel := context.WithTimeout(s.t.Context(), 5*time.Second)
		defer cancel()
		if ci, err := info(ctx); err == nil && ci != nil {
			leader = ci.Leader
		}
		return leader != ""
	})
	return leader
}

func (s *suite) waitFor(within time.Duration, what string, cond func() bool) time.Duration {
	s.t.Helper()
	s.waiting = what
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
func (s *suite) results(wf string) (perTask map[string]int, total int) {
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
func (s *suite) count(stream, filter string) map[string]uint64 {
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

const tasks = 500

// workflow submits tasks sleeps of 80-119 ms whose output is the sum of
// the milliseconds slept, a figure the test knows beforehand.
func (s *suite) workflow() (wf string, want float64) {
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

// final waits for wf's final output. Each read has a short deadline and is
// tried again: a request sent while a node rejoins can go unanswered, and a
// client must not wait on it.
func (s *suite) final(name, wf string) events.Output {
	s.t.Helper()
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
	return out
}

// takesJobsAtOnce submits one small job with one request, no retry, as a
// script does right after the deployment says it is ready, and checks it
// completes.
func (s *suite) takesJobsAtOnce() {
	s.t.Helper()
	s.scene = "the first job"
	began := time.Now()
	reply, err := s.nc.Request(s.cfg.Subjects().Control("submit"), []byte(`{"steps": [{"id": "n", "type": "noop", "split": 1, "input": [1, 2, 3]}]}`), time.Minute)
	if err != nil {
		s.t.Fatalf("the first submit once ready: %v", err)
	}
	s.t.Logf("the first submit, one request, answered in %v", time.Since(began).Round(10*time.Millisecond))
	var r events.SubmitReply
	if err := json.Unmarshal(reply.Data, &r); err != nil || r.Workflow == "" || r.Error != nil {
		s.t.Fatalf("the first submit once ready: %s", reply.Data)
	}
	if out := s.final("first job", r.Workflow); out.Status != events.OutcomeSuccess {
		s.t.Fatalf("the first job: %s", out.Status)
	}
}

// submitOnce submits one small job as a user does, with the client (its
// publish retried while a stream has no leader), once, and checks it
// completes; it returns how long the job took.
func (s *suite) submitOnce(name string) time.Duration {
	s.t.Helper()
	s.scene, s.waiting = name, "the job stored and answered"
	began := time.Now()
	ctx, cancel := context.WithTimeout(s.t.Context(), time.Minute)
	defer cancel()
	r, err := s.cl.Submit(ctx, []byte(`{"steps": [{"id": "n", "type": "noop", "split": 1, "input": [1, 2, 3]}]}`))
	if err != nil {
		s.t.Fatalf("%s: submit: %v", name, err)
	}
	if out := s.final(name, r.Workflow); out.Status != events.OutcomeSuccess {
		s.t.Fatalf("%s: %s", name, out.Status)
	}
	return time.Since(began)
}

// scenario runs one workflow with a disturbance and checks its outcome.
func (s *suite) scenario(name string, disturb func(wf string, progress func(int) func() bool)) {
	s.t.Helper()
	s.scene, s.stored = name, 0
	began := time.Now()
	wf, want := s.workflow()
	progress := func(n int) func() bool {
		return func() bool {
			f, _ := s.results(wf)
			s.stored = max(s.stored, len(f))
			return len(f) >= n
		}
	}
	disturb(wf, progress)
	out := s.final(name, wf)
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
	// Attempts are deliveries that counted (a redelivery after an agent
	// died, a retry), summed over the final results: the handler runs, or
	// a few more when an agent died between a delivery and its start.
	line := fmt.Sprintf("%-34s %d tasks, %d attempts (re-runs ≤ %d), %d results stored, elapsed %v",
		name, tasks, out.Metadata.Attempts, out.Metadata.Attempts-tasks, total, elapsed.Round(100*time.Millisecond))
	s.t.Log(line)
	s.passed = append(s.passed, line)
}
