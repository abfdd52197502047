package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go"
)

// TestRetry_ThenFallback: a type that always fails is tried 1+retries
// times per task, then its fallback type takes over; one that fails twice
// and then works never reaches its fallback.
func TestRetry_ThenFallback(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	var broken, flaky, steady counter
	e.agent("worker", 4, map[string]agent.Handler{
		"broken": broken.wrap(agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) {
			return nil, errors.New("upstream is down")
		})),
		"flaky": flaky.wrap(agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) {
			if t.Attempt < 3 {
				return nil, fmt.Errorf("attempt %d failed", t.Attempt)
			}
			return map[string]any{"by": "flaky", "attempt": t.Attempt}, nil
		})),
		"steady": steady.wrap(agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) {
			return map[string]any{"by": "steady", "attempt": t.Attempt}, nil
		})),
	})
	wf := e.submit(map[string]any{"steps": []map[string]any{
		{"id": "a", "type": "broken", "split": 1, "input": []int{1, 2}, "retries": 2, "backoff": "10ms", "fallback": "steady"},
		{"id": "b", "type": "flaky", "input": 3, "retries": 2, "backoff": "10ms", "fallback": "steady"},
	}})
	out := e.final(wf, time.Minute)
	if out.Status != events.OutcomeSuccess || out.Metadata.Tasks.Completed != 3 {
		t.Fatalf("status %s tasks %+v errors %+v", out.Status, out.Metadata.Tasks, out.Errors)
	}
	var items []struct {
		By      string
		Attempt int
	}
	if err := json.Unmarshal(out.Data, &items); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(items) != "[{steady 1} {steady 1} {flaky 3}]" {
		t.Errorf("data %s", out.Data)
	}
	for task, n := range broken.counts() {
		if n != 3 {
			t.Errorf("broken task %s tried %d times, want 3", task, n)
		}
	}
	if b, s, f := len(broken.counts()), steady.counts(), flaky.counts(); b != 2 || len(s) != 2 || len(f) != 1 {
		t.Errorf("broken ran for %d tasks, steady %v, flaky %v", b, s, f)
	}
	if n := len(e.events(wf, events.EventFallback)); n != 2 {
		t.Errorf("%d fallback events, want 2", n)
	}
	if n := len(e.events(wf, events.EventRetry)); n != 6 {
		t.Errorf("%d retry events, want 6 (2 per task)", n)
	}
}

// TestThreshold_PartialOrFailed: 2 of 10 tasks fail for good. With a
// success threshold of 0.8 the output is partial with 8 results and 2
// errors naming the failed tasks; with 0.9 it is failed.
func TestThreshold_PartialOrFailed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	e.agent("judge", 10, map[string]agent.Handler{
		"judge": agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) {
			var in []int
			if err := t.Bind(&in); err != nil {
				return nil, err
			}
			if in[0] == 3 || in[0] == 7 {
				return nil, agent.Permanent(fmt.Errorf("item %d is bad", in[0]))
			}
			return in[0] * 10, nil
		}),
	})
	for _, tc := range []struct {
		threshold float64
		status    string
	}{
		{0.8, events.OutcomePartial},
		{0.9, events.OutcomeFailed},
	} {
		wf := e.submit(map[string]any{"success_threshold": tc.threshold, "steps": []map[string]any{
			{"id": "check", "type": "judge", "split": 1, "input": []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		}})
		out := e.final(wf, time.Minute)
		if out.Status != tc.status {
			t.Errorf("threshold %v: status %s, want %s", tc.threshold, out.Status, tc.status)
		}
		if string(out.Data) != "[0,10,20,40,50,60,80,90]" {
			t.Errorf("threshold %v: data %s, want the 8 results", tc.threshold, out.Data)
		}
		_, all := e.results(wf)
		var wantFailed []string
		for _, r := range all {
			if r.Index == 3 || r.Index == 7 {
				wantFailed = append(wantFailed, r.Task)
			}
		}
		slices.Sort(wantFailed)
		var gotFailed []string
		for _, er := range out.Errors {
			gotFailed = append(gotFailed, er.Task)
			if er.Status != events.StateFailed || er.Kind != events.KindPermanent || er.Remediation == "" || er.RetryRecommended {
				t.Errorf("error %+v: want a failed, permanent error with a remediation and no retry advised", er)
			}
			if !strings.Contains(er.Message, "is bad") {
				t.Errorf("error message %q does not carry the handler's error", er.Message)
			}
		}
		if len(wantFailed) != 2 || fmt.Sprint(gotFailed) != fmt.Sprint(wantFailed) {
			t.Errorf("errors name %v, want %v", gotFailed, wantFailed)
		}
		if fmt.Sprint(out.Missing) != fmt.Sprint(wantFailed) {
			t.Errorf("missing %v, want %v", out.Missing, wantFailed)
		}
		if c := out.Metadata.Tasks; c.Completed != 8 || c.Failed != 2 || out.Metadata.SuccessRate != 0.8 {
			t.Errorf("tasks %+v success rate %v", c, out.Metadata.SuccessRate)
		}
		// The record, the completed event and status say what the output says.
		wantStatus := map[string]string{events.OutcomePartial: events.WorkflowCompleted, events.OutcomeFailed: events.WorkflowFailed}[tc.status]
		var rec *events.Workflow
		waitFor(t, 10*time.Second, "the record to close", func() bool {
			rec = must(e.cl.Workflow(e.ctl(), wf))(t)
			return !events.WorkflowOpen(rec.Status)
		})
		if rec.Outcome != out.Status || rec.Status != wantStatus {
			t.Errorf("threshold %v: record %s/%s, want %s/%s", tc.threshold, rec.Status, rec.Outcome, wantStatus, out.Status)
		}
		// The event is stored after the record is written.
		waitFor(t, 10*time.Second, "the completed event", func() bool { return len(e.events(wf, events.EventCompleted)) >= 1 })
		if evs := e.events(wf, events.EventCompleted); len(evs) != 1 || evs[0].Message != out.Status {
			t.Errorf("threshold %v: completed events %+v, want one saying %s", tc.threshold, evs, out.Status)
		}
		if v := must(e.cl.Status(e.ctl(), wf))(t).Workflows; len(v) != 1 || v[0].Status != wantStatus || v[0].Outcome != out.Status {
			t.Errorf("threshold %v: status %+v, want %s/%s", tc.threshold, v, wantStatus, out.Status)
		}
	}
}

// TestSubmit_Rejections: every kind of bad job gets a precise error, both as
// the reply to the submitter and as an event on
// baton.events.<workflow>.rejected, and the next valid job still runs.
func TestSubmit_Rejections(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	e.agent("worker", 2, map[string]agent.Handler{"noop": agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) {
		return t.Input, nil
	})})
	big := `"` + strings.Repeat("x", events.DefaultMaxJobBytes) + `"`
	for _, tc := range []struct {
		name, job, field, reason string
	}{
		{"malformed JSON", `{"steps": [`, "", "JSON"},
		{"not an object", `[1, 2]`, "", "JSON"},
		{"unknown field", `{"steps": [{"id": "a", "type": "noop"}], "colour": "red"}`, "colour", "unknown"},
		{"unknown step field", `{"steps": [{"id": "a", "type": "noop", "retry": 3}]}`, "steps[0].retry", "unknown"},
		{"no steps", `{"steps": []}`, "steps", ""},
		{"empty step", `{"steps": [{}]}`, "steps[0]", ""},
		{"cycle", `{"steps": [{"id": "a", "type": "noop", "after": ["b"]}, {"id": "b", "type": "noop", "after": ["a"]}]}`, "steps", "cycle"},
		{"dangling dependency", `{"steps": [{"id": "a", "type": "noop", "after": ["ghost"]}]}`, "steps[0].after", "ghost"},
		{"oversized input", `{"steps": [{"id": "a", "type": "noop", "input": ` + big + `}]}`, "", "bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			reply, err := e.cl.Submit(ctx, []byte(tc.job))
			var ve *events.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("submit: %v, want a validation error", err)
			}
			if !strings.HasPrefix(ve.Field, tc.field) || !strings.Contains(strings.ToLower(ve.Error()), strings.ToLower(tc.reason)) {
				t.Errorf("error field %q: %q; want field %q and a reason naming %q", ve.Field, ve.Error(), tc.field, tc.reason)
			}
			if reply == nil || !events.ValidToken(reply.Workflow) {
				t.Fatalf("reply %+v carries no workflow id", reply)
			}
			var evs []events.Event
			waitFor(t, 10*time.Second, "the rejected event", func() bool {
				evs = e.events(reply.Workflow, events.EventRejected)
				return len(evs) == 1
			})
			if evs[0].Message != ve.Error() {
				t.Errorf("event message %q, reply %q", evs[0].Message, ve.Error())
			}
			var detail events.ValidationError
			if err := json.Unmarshal(evs[0].Detail, &detail); err != nil || detail.Field != ve.Field {
				t.Errorf("event detail %s: want the field %q", evs[0].Detail, ve.Field)
			}
		})
	}
	out := e.final(e.submit(map[string]any{"steps": []map[string]any{{"id": "ok", "type": "noop", "input": 42}}}), time.Minute)
	if out.Status != events.OutcomeSuccess || string(out.Data) != "[42]" {
		t.Errorf("valid job after the rejections: status %s data %s", out.Status, out.Data)
	}
}

// TestAgent_MostUrgentLaneFirst queues five tasks at priority 5 and five at
// priority 1 before any agent runs; an agent with one slot then runs every
// priority-1 task before any priority-5 one, each lane in FIFO order.
func TestAgent_MostUrgentLaneFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	wf := e.submit(map[string]any{"steps": []map[string]any{
		{"id": "low", "type": "noop", "priority": 5, "split": 1, "input": []int{1, 2, 3, 4, 5}},
		{"id": "high", "type": "noop", "priority": 1, "split": 1, "input": []int{1, 2, 3, 4, 5}},
	}})
	waitFor(t, 10*time.Second, "the workflow to be queued", func() bool {
		return len(e.events(wf, events.EventCreated)) == 1
	})
	var mu sync.Mutex
	var order []string
	e.agent("single", 1, map[string]agent.Handler{"noop": agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) {
		mu.Lock()
		order = append(order, fmt.Sprintf("%s%d", t.Step, t.Index))
		mu.Unlock()
		return t.Input, nil
	})})
	if out := e.final(wf, time.Minute); out.Status != events.OutcomeSuccess {
		t.Fatalf("status %s", out.Status)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := fmt.Sprint(order); got != "[high0 high1 high2 high3 high4 low0 low1 low2 low3 low4]" {
		t.Errorf("run order %s", got)
	}
}

// TestSubmit_ReplyOnlyToInboxes: a job whose Baton-Reply-To names a subject
// that is not an inbox (here another service's) is planned, but the
// planner does not publish there: it says so with a security event.
func TestSubmit_ReplyOnlyToInboxes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	victim, err := e.nc.SubscribeSync("victim.>")
	if err != nil {
		t.Fatal(err)
	}
	security, err := e.nc.SubscribeSync(e.cfg.Subjects().Event("deputy", events.EventSecurity))
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(e.cfg.Subjects().Submit())
	msg.Data = []byte(`{"id": "deputy", "steps": [{"id": "a", "type": "noop"}]}`)
	msg.Header.Set(events.HeaderReplyTo, "victim.control")
	if _, err := e.js.PublishMsg(e.ctl(), msg); err != nil {
		t.Fatal(err)
	}
	m, err := security.NextMsg(30 * time.Second)
	if err != nil {
		t.Fatalf("no security event: %v", err)
	}
	if !strings.Contains(string(m.Data), "victim.control") {
		t.Errorf("security event %s does not name the subject", m.Data)
	}
	// The reply would have gone out before the event: nothing came.
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := victim.Pending(); n != 0 {
		t.Fatalf("%d messages published on the victim subject", n)
	}
	if rec := must(e.cl.Workflow(e.ctl(), "deputy"))(t); rec.Status != events.WorkflowRunning {
		t.Errorf("the job itself was not planned: %+v", rec)
	}
}

// TestDeadline_CancelsWhatIsLeft: a workflow whose tasks outlive its
// deadline has them cancelled once it passes — the running one stopped on
// its agent, the queued ones withdrawn — and its output says why.
func TestDeadline_CancelsWhatIsLeft(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	var blk blocker
	e.agent("slow", 1, map[string]agent.Handler{"block": blk.handler()})
	submitted := time.Now()
	wf := e.submit(map[string]any{"id": "late", "deadline": "1s", "success_threshold": 0,
		"steps": []map[string]any{{"id": "b", "type": "block", "split": 1, "input": []int{1, 2, 3}}}})
	out := e.final(wf, 30*time.Second)
	if time.Since(submitted) < time.Second {
		t.Errorf("finished before its deadline")
	}
	if c := out.Metadata.Tasks; c.Cancelled != 3 || c.Completed != 0 {
		t.Fatalf("tasks %+v, want 3 cancelled", c)
	}
	for _, er := range out.Errors {
		if er.Kind != events.KindDeadline || !strings.Contains(er.Message, "deadline passed") || !er.RetryRecommended {
			t.Errorf("error %+v: want kind deadline, saying so, retry recommended", er)
		}
	}
	if _, ok := blk.stoppedAt(wf + "/b-0"); !ok {
		t.Errorf("the running task was not stopped: %v", blk.runningOn())
	}
	// Nothing of it runs on: a task fetched while the others were being
	// withdrawn is stopped too.
	waitFor(t, 5*time.Second, "no task of it left running", func() bool { return len(blk.runningOn()) == 0 })
	var rec *events.Workflow
	waitFor(t, 10*time.Second, "the record to close", func() bool {
		rec = must(e.cl.Workflow(e.ctl(), wf))(t)
		return !events.WorkflowOpen(rec.Status)
	})
	if rec.Deadline.IsZero() || !strings.Contains(rec.Error, "deadline") {
		t.Errorf("record %+v: want its deadline and why it ended", rec)
	}
}

// TestSubmit_NoRegistryReadPerJob: the planner checks a job's types
// against its view of the registry, not with a read of the agents bucket
// per job (a consumer created, read and deleted: a millisecond on every
// submit). The reaper's and other readers' key listings (headers only)
// are not counted.
func TestSubmit_NoRegistryReadPerJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	e.agent("one", 1, map[string]agent.Handler{"served": agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) { return 1, nil })})
	e.waitReady()
	e.waitAgents("one")
	reads := 0
	ta := e.newTally(func(m *nats.Msg) {
		if !bytes.Contains(m.Data, []byte(`"headers_only":true`)) {
			reads++
		}
	}, "$JS.API.CONSUMER.CREATE.KV_"+e.cfg.WithDefaults().AgentsBucket()+".>")
	submit := func() int {
		ta.settle(e.nc)
		before := reads
		r := e.submitReply(`{"steps": [{"id": "a", "type": "served"}]}`)
		if len(r.Warnings) != 0 {
			t.Fatalf("warnings %q for a served type", r.Warnings)
		}
		ta.settle(e.nc)
		return reads - before
	}
	// The view is read once the planner has followed the bucket to its end.
	waitFor(t, 10*time.Second, "a job submitted without a registry read", func() bool { return submit() == 0 })
	for range 3 {
		if n := submit(); n != 0 {
			t.Fatalf("a job of a served type read the registry %d times", n)
		}
	}
}

// TestSubmit_WarnsOfUnservedTypes: `baton submit` says at once which of a
// new workflow's types no live agent serves, and stays quiet about served
// ones.
func TestSubmit_WarnsOfUnservedTypes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.agent("only-a", 1, map[string]agent.Handler{"served": agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) { return 1, nil })})
	e.waitReady()
	waitFor(t, 30*time.Second, "the agent to register", func() bool {
		list, err := e.cl.Agents(e.ctl())
		return err == nil && len(list) == 1
	})
	job := filepath.Join(t.TempDir(), "job.json")
	if err := os.WriteFile(job, []byte(`{"steps": [{"id": "a", "type": "served"}, {"id": "b", "type": "nobody"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "baton"), "submit", job, "--server", e.url())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if out, err := cmd.Output(); err != nil {
		t.Fatalf("baton submit: %v\n%s%s", err, out, stderr.String())
	}
	if got := stderr.String(); !strings.Contains(got, `no live agent serves type "nobody"`) || strings.Contains(got, `"served"`) {
		t.Fatalf("stderr %q: want a warning for nobody only", got)
	}
}

// TestSubmit_SameIDRunsOnce: a job submitted again with the id of an
// earlier workflow runs nothing and changes nothing of it (its job stays
// the first one); a new id costs the planner no read of the workflows
// bucket; a job whose earlier try stored only its spec runs with its own.
func TestSubmit_SameIDRunsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner() // the aggregator after the first check: its start reads every record
	var ran counter
	e.agent("one", 2, map[string]agent.Handler{"echo": ran.wrap(agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) {
		return t.ID, nil
	}))})
	bucket := e.cfg.WithDefaults().WorkflowsBucket()
	kv, err := e.js.KeyValue(context.Background(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	// Reads of a record: direct gets, or message gets naming its key.
	reads := map[string]int{}
	runnerReads := 0 // of any record, by the runner's connection below
	ta := e.newTally(func(m *nats.Msg) {
		if strings.HasPrefix(m.Reply, "_INBOX_runner.") {
			runnerReads++
		}
		for _, key := range []string{"once", "unserved"} {
			if strings.HasSuffix(m.Subject, "$KV."+bucket+"."+key) || bytes.Contains(m.Data, []byte("$KV."+bucket+"."+key+`"`)) {
				reads[key]++
			}
		}
	}, "$JS.API.DIRECT.GET.KV_"+bucket+".>", "$JS.API.STREAM.MSG.GET.KV_"+bucket)

	// A new id, of a type no agent serves (so no result, and no reader of
	// the record but the planner): no read.
	if r := e.submitReply(`{"id": "unserved", "steps": [{"id": "a", "type": "nobody"}]}`); r.Workflow != "unserved" || r.Tasks != 1 || !r.Created {
		t.Fatalf("reply %+v", r)
	}
	ta.settle(e.nc)
	if n := reads["unserved"]; n != 0 {
		t.Errorf("the planner read the record of a new workflow %d times", n)
	}

	e.aggregator()
	first := `{"id": "once", "steps": [{"id": "a", "type": "echo"}]}`
	if wf := e.submit([]byte(first)); wf != "once" {
		t.Fatalf("workflow %s, want once", wf)
	}
	if out := e.final("once", 30*time.Second); out.Status != events.OutcomeSuccess {
		t.Fatalf("final %s", out.Status)
	}
	r := e.submitReply(`{"id": "once", "steps": [{"id": "b", "type": "echo", "split": 1, "input": [1, 2, 3]}]}`)
	if r.Workflow != "once" || r.Tasks != 1 || r.Error != nil || r.Created {
		t.Fatalf("second submit of id once: reply %+v, want the first workflow's (1 task), not created", r)
	}
	spec, err := kv.Get(context.Background(), "once.spec")
	if err != nil || string(spec.Value()) != first {
		t.Fatalf("job of workflow once: %v %s, want the first one", err, spec.Value())
	}
	rec := must(e.cl.Workflow(context.Background(), "once"))(t)
	if rec.Counts.Total != 1 || rec.Status != events.WorkflowCompleted {
		t.Fatalf("record %+v changed by the second submit", rec.Counts)
	}

	// An earlier try stored this job's spec, not its record: the job runs,
	// with its spec.
	half := `{"id": "half", "steps": [{"id": "c", "type": "echo"}]}`
	if _, err := kv.Put(context.Background(), "half.spec", []byte(`{"stale": true}`)); err != nil {
		t.Fatal(err)
	}
	e.submit([]byte(half))
	if out := e.final("half", 30*time.Second); out.Status != events.OutcomeSuccess {
		t.Fatalf("final of half %s", out.Status)
	}
	if spec, err := kv.Get(context.Background(), "half.spec"); err != nil || string(spec.Value()) != half {
		t.Fatalf("job of workflow half: %v %s, want the submitted one", err, spec.Value())
	}
	if got := ran.counts(); len(got) != 2 || got["a"] != 1 || got["c"] != 1 {
		t.Fatalf("tasks run %v, want a and c once each", got)
	}

	// Run of a job that creates its workflow waits for the final output
	// without reading the record; of an existing id, it reads it (a
	// reopened workflow's final is a later one).
	rc := must(nats.Connect(e.url(), nats.CustomInboxPrefix("_INBOX_runner")))(t)
	defer rc.Close()
	runner := must(client.New(rc, e.cfg))(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := runner.Run(ctx, []byte(`{"id": "ran", "steps": [{"id": "d", "type": "echo"}]}`), nil)
	if err != nil || out.Status != events.OutcomeSuccess || out.Workflow != "ran" {
		t.Fatalf("run of a new workflow: %v %+v", err, out)
	}
	ta.settle(rc)
	if runnerReads != 0 {
		t.Errorf("Run of a workflow its job created read a record %d times", runnerReads)
	}
	out, err = runner.Run(ctx, []byte(first), nil)
	if err != nil || out.Status != events.OutcomeSuccess || out.Workflow != "once" {
		t.Fatalf("run of an existing id: %v %+v", err, out)
	}
	ta.settle(rc)
	if runnerReads == 0 {
		t.Errorf("Run of an existing id read no record")
	}
}
