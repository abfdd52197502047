package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	"github.com/baton-dev/baton/internal/web"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/planner"
	"github.com/baton-dev/baton/pkg/registry"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The crowd of TestStatus_ManyAndLargeWorkflows: many workflows, agents and
// lanes, more than any list of a reply may hold.
const (
	crowdWorkflows = 1000
	crowdAgents    = 300
	crowdLanes     = events.MaxStatusLanes + 10
)

// limitJobs are five jobs at the limits of what a job may be: the longest
// id and name (multi-byte), the largest document (one big input), the
// most steps with the longest ids the workflow record still holds, the
// most tasks (with one queued at a time), and many task types with the
// longest names, whose lanes exist.
func limitJobs(t *testing.T) map[string][]byte {
	t.Helper()
	long := func(prefix string, n int) string { return prefix + strings.Repeat("x", n-len(prefix)) }
	jobs := map[string]any{}
	jobs[long("limit-name-", 64)] = map[string]any{"id": long("limit-name-", 64),
		"name": strings.Repeat("é", events.MaxNameBytes/2), "steps": []map[string]any{{"id": long("s", 64), "type": "idle"}}}
	steps := make([]map[string]any, 4000)
	for i := range steps {
		steps[i] = map[string]any{"id": long(fmt.Sprintf("s%d-", i), 64), "type": "idle"}
	}
	jobs["limit-steps"] = map[string]any{"id": "limit-steps", "steps": steps}
	jobs["limit-tasks"] = map[string]any{"id": "limit-tasks", "max_parallel": 1,
		"steps": []map[string]any{{"id": "t", "type": "idle", "split": 1, "split_by": events.SplitRange, "input": map[string]int{"count": events.DefaultMaxTasks}}}}
	typed := make([]map[string]any, crowdLanes)
	for i := range typed {
		typed[i] = map[string]any{"id": fmt.Sprintf("s%d", i), "type": laneType(i)}
	}
	jobs["limit-types"] = map[string]any{"id": "limit-types", "steps": typed}
	out := map[string][]byte{}
	for id, job := range jobs {
		b, err := json.Marshal(job)
		if err != nil {
			t.Fatal(err)
		}
		out[id] = b
	}
	// The largest document: the input fills it up to the limit, less room
	// for the message's headers.
	head := []byte(`{"id":"limit-input","steps":[{"id":"big","type":"idle","input":"`)
	tail := []byte(`"}]}`)
	fill := bytes.Repeat([]byte("input of limit-input "), events.DefaultMaxJobBytes/21)
	out["limit-input"] = slices.Concat(head, fill[:events.DefaultMaxJobBytes-1024-len(head)-len(tail)], tail)
	return out
}

func laneType(i int) string {
	return fmt.Sprintf("type-%03d-", i) + strings.Repeat("t", 64-len("type-000-"))
}

// request sends a control request and returns the raw reply, checked to
// fit the server's max payload.
func (e *env) request(verb string, req events.ControlRequest) *nats.Msg {
	e.t.Helper()
	body, _ := json.Marshal(req)
	m, err := e.nc.Request(e.cfg.Subjects().Control(verb), body, 30*time.Second)
	if err != nil {
		e.t.Fatalf("%s %s: %v", verb, body, err)
	}
	if code := m.Header.Get("Nats-Service-Error-Code"); code != "" {
		e.t.Fatalf("%s %s: error %s: %s", verb, body, code, m.Data)
	}
	e.fits(fmt.Sprintf("%s %s", verb, body), len(m.Data))
	return m
}

// fits checks that a reply of n bytes fits the server's max payload, and
// logs its size.
func (e *env) fits(what string, n int) {
	e.t.Helper()
	if max := int(e.nc.MaxPayload()); n >= max {
		e.t.Errorf("%s: %d bytes, not under the max payload of %d", what, n, max)
	}
	e.t.Logf("%-60.60s %8d bytes", what, n)
}

func decode[T any](t *testing.T, what string, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// TestStatus_ManyAndLargeWorkflows: with 1,000 workflows, five jobs at the
// limits of what a job may be, 300 agents and 210 lanes, every reply
// fits the server's max payload and says what it left out: status of all
// (by pages, by status), of each workflow, agents, the dashboard's API and
// stream, and /metrics, which names no workflow's name or data.
//
// It does not run in parallel: it keeps two cores busy for a while, which
// would skew the timings other tests measure.
func TestStatus_ManyAndLargeWorkflows(t *testing.T) {
	began := time.Now()
	// A nats-server's default max payload, 1 MiB, not the embedded one's.
	e := newEnvOn(t, natstest.StartWithMaxPayload(t, 1<<20), streams.Config{AgentTTL: time.Minute, Memory: true})
	e.planner()
	_, hs := e.webServer(nil, web.Config{Dashboard: true})
	e.waitReady()

	// 1,000 small workflows with names at the limit (no agent serves their
	// type) and the five jobs at the limits, submitted at once; and, while
	// the planner plans them, the lanes of the many types.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	limits := limitJobs(t)
	for i := range crowdWorkflows {
		name := fmt.Sprintf("name of many-%04d ", i)
		job := fmt.Sprintf(`{"id":"many-%04d","name":%q,"steps":[{"id":"s","type":"idle","input":"input of many-%04d"}]}`,
			i, name+strings.Repeat("n", events.MaxNameBytes-len(name)), i)
		if _, err := e.js.PublishAsync(e.cfg.Subjects().Submit(), []byte(job)); err != nil {
			t.Fatal(err)
		}
	}
	for _, job := range limits {
		if _, err := e.js.PublishAsync(e.cfg.Subjects().Submit(), job); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-e.js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("the jobs were not all stored")
	}
	for i := range crowdLanes {
		if _, err := streams.EnsureLane(ctx, e.js, e.cfg, laneType(i), events.PriorityDefault); err != nil {
			t.Fatal(err)
		}
	}
	all := crowdWorkflows + len(limits)
	kv, err := e.js.KeyValue(ctx, e.cfg.WorkflowsBucket())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "every workflow planned: a record and a job each", func() bool {
		st, err := kv.Status(ctx)
		return err == nil && st.Values() == uint64(2*all)
	})
	t.Logf("%d workflows and %d lanes after %v", all, crowdLanes, time.Since(began).Round(time.Millisecond))
	// The agents, as they would register, once the planner is done (it
	// reads the registry for each job it plans).
	reg, err := registry.Open(ctx, e.js, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range crowdAgents {
		// Each entry a little over every bound of what a reply shows of it.
		a := events.AgentInfo{ID: fmt.Sprintf("agent-%04d", i), Types: []string{"ghost"}, Concurrency: 64, Running: 40,
			Status: events.AgentBusy, Host: strings.Repeat("h", events.MaxAgentText+100), Started: time.Now(), Heartbeat: time.Now()}
		for k := range events.MaxListedTasks + 5 {
			a.Tasks = append(a.Tasks, fmt.Sprintf("many-%04d/s", k))
		}
		for k := range events.MaxAgentNames + 5 {
			a.Capabilities = append(a.Capabilities, fmt.Sprintf("capability-%03d-", k)+strings.Repeat("c", 30))
		}
		if err := reg.Put(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d agents registered after %v", crowdAgents, time.Since(began).Round(time.Millisecond))

	// Status of all: totals and sums cover every workflow; the list, the
	// default page, says what it left out.
	snap := decode[events.Snapshot](t, "status", e.request(events.VerbStatus, events.ControlRequest{}).Data)
	tot := snap.Totals
	open := tot.Running + tot.Paused + tot.Stopped
	if tot.Total != all || snap.Open != open || snap.Page.Total != open+tot.FinishedRecently {
		t.Errorf("totals %+v, open %d, page %+v: want %d workflows", tot, snap.Open, snap.Page, all)
	}
	if len(snap.Workflows) != events.DefaultListLimit || snap.Page.Omitted != snap.Page.Total-events.DefaultListLimit ||
		snap.Page.Next != events.DefaultListLimit || !snap.Truncated || !strings.Contains(snap.Page.Note, "baton status --offset 100") {
		t.Errorf("default page: %d listed, page %+v", len(snap.Workflows), snap.Page)
	}
	if snap.Tasks.Total < events.DefaultMaxTasks+4000+crowdWorkflows {
		t.Errorf("the sums cover %d tasks: not every open workflow's", snap.Tasks.Total)
	}
	if len(snap.Lanes) != events.MaxStatusLanes || snap.LanesOmitted != crowdLanes-events.MaxStatusLanes {
		t.Errorf("%d lanes listed, %d omitted", len(snap.Lanes), snap.LanesOmitted)
	}
	if len(snap.Agents.List)+snap.Agents.Omitted != crowdAgents || snap.Agents.Omitted < crowdAgents-events.MaxStatusAgents {
		t.Errorf("%d agents listed, %d omitted", len(snap.Agents.List), snap.Agents.Omitted)
	}
	for _, a := range snap.Agents.List {
		if len(a.Tasks) > events.MaxListedTasks || len(a.Capabilities) > events.MaxAgentNames || len(a.Host) > events.MaxAgentText {
			t.Fatalf("agent %s shown unclipped: %d tasks, %d capabilities, host of %d bytes", a.ID, len(a.Tasks), len(a.Capabilities), len(a.Host))
		}
	}

	// Every page of the largest limit, of the open workflows and then of
	// the finished ones: each lists only its own, the first stops before
	// the max payload and says so, and the pages list every workflow once.
	seen := map[string]int{}
	for _, status := range []string{"open", "finished"} {
		for offset := 0; ; {
			p := decode[events.Snapshot](t, "page", e.request(events.VerbStatus,
				events.ControlRequest{Status: status, Offset: offset, Limit: 5000}).Data)
			if p.Page.Limit != events.MaxListLimit || len(p.Workflows) >= events.MaxListLimit ||
				p.Page.Next > 0 && !strings.Contains(p.Page.Note, "max payload") {
				t.Fatalf("%s from %d: %d listed, page %+v", status, offset, len(p.Workflows), p.Page)
			}
			for _, v := range p.Workflows {
				seen[v.ID]++
				if events.WorkflowOpen(v.Status) != (status == "open") {
					t.Errorf("status %s lists %s, which is %s", status, v.ID, v.Status)
				}
			}
			if p.Page.Next == 0 {
				break
			}
			offset = p.Page.Next
		}
	}
	if len(seen) != all {
		t.Errorf("the pages listed %d workflows, want %d", len(seen), all)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s listed %d times", id, n)
		}
	}
	// Each workflow at a limit, alone.
	for id := range limits {
		one := decode[events.Snapshot](t, id, e.request(events.VerbStatus, events.ControlRequest{Workflow: id}).Data)
		if len(one.Workflows) != 1 || one.Workflows[0].ID != id || one.Page.Omitted != 0 {
			t.Errorf("status %s: %+v", id, one.Page)
		}
		w := one.Workflows[0]
		if id == "limit-tasks" && w.Counts.Total != events.DefaultMaxTasks {
			t.Errorf("limit-tasks has %d tasks", w.Counts.Total)
		}
		t.Logf("%.20s: %s %s, %d tasks, %d failed, name of %d bytes", id, w.Status, w.Outcome, w.Counts.Total, w.Counts.Failed, len(w.Name))
	}

	// Agents: a page, with what it left out in headers; the largest limit
	// stops before the max payload.
	for _, limit := range []int{0, 5000} {
		m := e.request(events.VerbAgents, events.ControlRequest{Limit: limit})
		list := decode[[]events.AgentInfo](t, "agents", m.Data)
		total, _ := strconv.Atoi(m.Header.Get(events.HeaderTotal))
		omitted, _ := strconv.Atoi(m.Header.Get(events.HeaderOmitted))
		if total != crowdAgents || omitted != total-len(list) || len(list) == 0 || len(list) > events.DefaultListLimit && limit == 0 {
			t.Errorf("agents (limit %d): %d listed, headers total %d omitted %d", limit, len(list), total, omitted)
		}
	}

	// The CLI says what it left out.
	for _, args := range [][]string{{"status"}, {"agents"}} {
		out, err := exec.Command(filepath.Join(bin, "baton"), append(args, "--server", e.url())...).Output()
		if err != nil {
			t.Fatalf("baton %s: %v", args[0], err)
		}
		if !strings.Contains(string(out), "left out") {
			t.Errorf("baton %s does not say what it left out:\n%s", args[0], tail(string(out), 1500))
		}
	}

	// The dashboard's API and stream, and /metrics.
	get := func(path string) []byte {
		t.Helper()
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %v: %.300s", path, resp.StatusCode, err, body)
		}
		e.fits("GET "+path, len(body))
		return body
	}
	post := func(path, body string) []byte {
		t.Helper()
		resp, err := http.Post(hs.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("POST %s: %d %v: %.300s", path, resp.StatusCode, err, b)
		}
		e.fits("POST "+path+" "+body, len(b))
		return b
	}
	if p := decode[events.Snapshot](t, "api", get("/api/status")); p.Page.Omitted == 0 {
		t.Errorf("/api/status says nothing was left out: %+v", p.Page)
	}
	get("/api/status?workflow=limit-input")
	post("/api/control/status", `{"limit":1000}`)
	post("/api/control/agents", `{}`)
	e.fits("GET /api/stream, first snapshot", len(e.openStream(hs.URL).next(t, "snapshot", "")))
	metrics := get("/metrics")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(metrics))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	if n := len(fams["baton_workflow_progress_ratio"].GetMetric()); n != events.DefaultListLimit {
		t.Errorf("%d workflows have their own series, want the %d status lists", n, events.DefaultListLimit)
	}
	for _, m := range fams["baton_workflows"].GetMetric() {
		if m.GetLabel()[0].GetValue() == events.WorkflowRunning && int(m.GetGauge().GetValue()) != tot.Running {
			t.Errorf("baton_workflows{status=running} %v, want %d", m.GetGauge().GetValue(), tot.Running)
		}
	}
	for _, secret := range []string{"name of many-", "input of", "éé"} {
		if bytes.Contains(metrics, []byte(secret)) {
			t.Errorf("/metrics carries a workflow's name or data (%q)", secret)
		}
	}
	t.Logf("took %v", time.Since(began).Round(time.Millisecond))
}

// sse reads the dashboard's event stream.
type sse struct{ r *bufio.Reader }

// openStream opens the dashboard's event stream; it is closed when the
// test ends.
func (e *env) openStream(base string) *sse {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { cancel(); resp.Body.Close() })
	return &sse{r: bufio.NewReaderSize(resp.Body, 64<<10)}
}

// dashboardStream serves the dashboard on the env and opens its event
// stream, past its first snapshot.
func (e *env) dashboardStream() *sse {
	e.t.Helper()
	_, hs := e.webServer(nil, web.Config{Dashboard: true})
	stream := e.openStream(hs.URL)
	stream.next(e.t, "snapshot", "")
	return stream
}

// next returns the data of the next event of this kind whose data holds
// want, within a minute.
func (s *sse) next(t testing.TB, kind, want string) []byte {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for event := ""; time.Now().Before(deadline); {
		line, err := s.r.ReadBytes('\n')
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		switch {
		case bytes.HasPrefix(line, []byte("event: ")):
			event = string(bytes.TrimSpace(line[len("event: "):]))
		case bytes.HasPrefix(line, []byte("data: ")) && event == kind && bytes.Contains(line, []byte(want)):
			return bytes.TrimSpace(line[len("data: "):])
		}
	}
	t.Fatalf("no %s event with %q within a minute", kind, want)
	return nil
}

// TestDashboard_FeedClipsWhatItRelays: anyone on the bus may publish an
// event; the dashboard's feed relays its texts clipped, so a batch stays
// small whatever was sent.
func TestDashboard_FeedClipsWhatItRelays(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{Memory: true})
	stream := e.dashboardStream()
	huge := strings.Repeat("é", 200_000)
	ev, _ := json.Marshal(events.Event{Workflow: "forged", Kind: "note" + huge, Task: huge, Agent: huge, Message: huge, Time: time.Now()})
	if err := e.nc.Publish(e.cfg.Subjects().Event("forged", "note"), ev); err != nil {
		t.Fatal(err)
	}
	batch := stream.next(t, "feed", `"forged"`)
	if len(batch) > 2<<10 {
		t.Errorf("a feed batch of %d bytes for one event: its texts are not clipped", len(batch))
	}
	var feed struct{ Items []web.FeedItem }
	if err := json.Unmarshal(batch, &feed); err != nil || len(feed.Items) != 1 {
		t.Fatalf("feed %s: %v", batch, err)
	}
	if it := feed.Items[0]; len(it.Message) > web.MaxFeedMessage || len(it.Task) > events.MaxEcho || len(it.Kind) > events.MaxEcho {
		t.Errorf("feed item not clipped: message %d bytes, task %d, kind %d", len(it.Message), len(it.Task), len(it.Kind))
	}
}

// TestDashboard_FeedLinesPerGatheredStart: a started event that names
// several tasks (an agent gathers a workflow's starts) is one feed line
// per task; a forged one naming a hundred thousand still makes a batch of
// at most FeedMax lines.
func TestDashboard_FeedLinesPerGatheredStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{Memory: true})
	stream := e.dashboardStream()
	publish := func(wf string, tasks []string) {
		t.Helper()
		ev, _ := json.Marshal(events.Event{Workflow: wf, Kind: events.EventStarted, Task: tasks[0], Tasks: tasks[1:], Agent: "a", Time: time.Now()})
		if err := e.nc.Publish(e.cfg.Subjects().Live(wf, events.EventStarted), ev); err != nil {
			t.Fatal(err)
		}
	}
	publish("gathered", []string{"s-0", "s-1", "s-2"})
	var lines []string
	for len(lines) < 3 {
		var feed struct{ Items []web.FeedItem }
		if err := json.Unmarshal(stream.next(t, "feed", `"gathered"`), &feed); err != nil {
			t.Fatal(err)
		}
		for _, it := range feed.Items {
			if it.Workflow == "gathered" {
				lines = append(lines, it.Kind+" "+it.Task+" "+it.Agent)
			}
		}
	}
	if want := []string{"started s-0 a", "started s-1 a", "started s-2 a"}; !slices.Equal(lines, want) {
		t.Errorf("feed lines %q, want %q", lines, want)
	}
	many := make([]string, 100_000)
	for i := range many {
		many[i] = strconv.Itoa(i)
	}
	publish("forged", many)
	var feed struct {
		Items   []web.FeedItem
		Dropped int
	}
	if err := json.Unmarshal(stream.next(t, "feed", `"forged"`), &feed); err != nil {
		t.Fatal(err)
	}
	if len(feed.Items) > 200 {
		t.Errorf("a feed batch of %d lines, want at most FeedMax (200)", len(feed.Items))
	}
}

// TestLimits_MaxTasksIsTheDeployments: a planner's per-job task limit is
// its configuration's (the planner program's --max-tasks): a job over it
// is refused with the field and the limit, one at it runs; a limit beyond
// events.MaxTasksCeiling is refused at start.
func TestLimits_MaxTasksIsTheDeployments(t *testing.T) {
	t.Parallel()
	for _, n := range []int{-1, events.MaxTasksCeiling + 1} {
		if _, err := planner.New(nil, planner.Config{Limits: events.Limits{MaxTasks: n}}); !errors.Is(err, planner.ErrConfig) {
			t.Errorf("a limit of %d tasks: %v, want a configuration error", n, err)
		}
	}
	e := newEnv(t, streams.Config{})
	e.plannerWith(planner.Config{Limits: events.Limits{MaxTasks: 10}})
	e.aggregator()
	e.agent("a", 4, map[string]agent.Handler{"x": agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) { return 1, nil })})
	e.waitReady()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := e.cl.Submit(ctx, []byte(`{"steps": [{"id": "s", "type": "x", "split": 1, "split_by": "range", "input": {"count": 11}}]}`)); err == nil ||
		!strings.Contains(err.Error(), "steps[0].input") || !strings.Contains(err.Error(), "11 tasks") {
		t.Fatalf("a job of 11 tasks under a limit of 10: %v, want it refused", err)
	}
	r := e.submitReply(`{"steps": [{"id": "s", "type": "x", "split": 1, "split_by": "range", "input": {"count": 10}}]}`)
	if r.Error != nil || r.Tasks != 10 {
		t.Fatalf("a job of 10 tasks under a limit of 10: reply %+v", r)
	}
	if out := e.final(r.Workflow, 30*time.Second); out.Status != events.OutcomeSuccess {
		t.Fatalf("the job of 10 tasks: %s", out.Status)
	}
}

// TestOutputs_LargerThanAMessage: on a server whose messages hold 256 KiB,
// a workflow whose results add up to more still finishes: its partial
// outputs split into messages that fit and hold every task once, and the
// final output comes without the data, its first error of kind too_large.
// Before, the aggregator retried the final output forever.
func TestOutputs_LargerThanAMessage(t *testing.T) {
	t.Parallel()
	const maxPayload = 256 << 10
	e := newEnvOn(t, natstest.StartWithMaxPayload(t, maxPayload), streams.Config{})
	e.planner()
	e.aggregator()
	e.agent("one", 4, map[string]agent.Handler{"big": agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) {
		return strings.Repeat("x", 16<<10), nil
	})})
	wf := e.submit(map[string]any{"steps": []map[string]any{{"id": "big", "type": "big", "split": 1, "input": make([]int, 40)}}})
	out := e.final(wf, time.Minute)
	if out.Status != events.OutcomeSuccess || out.Metadata.Tasks.Completed != 40 {
		t.Fatalf("final %s %+v", out.Status, out.Metadata.Tasks)
	}
	if string(out.Data) != "null" || len(out.Errors) != 1 || out.Errors[0].Kind != events.KindTooLarge {
		t.Fatalf("final data %.40s, errors %+v: want no data and one too_large error", out.Data, out.Errors)
	}
	seen := map[string]int{}
	partials := e.stored(e.cfg.OutputsStream(), e.cfg.Subjects().Output(wf, events.OutputPartial))
	for _, m := range partials {
		if len(m.Data()) > maxPayload {
			t.Errorf("a partial output of %d bytes", len(m.Data()))
		}
		var o events.Output
		if err := json.Unmarshal(m.Data(), &o); err != nil {
			t.Fatal(err)
		}
		for _, r := range o.Results {
			seen[r.Task]++
			if len(r.Data) < 16<<10 || r.DataTooLarge {
				t.Errorf("task %s listed with %d bytes of data, data_too_large %v", r.Task, len(r.Data), r.DataTooLarge)
			}
		}
	}
	if len(seen) != 40 || len(partials) < 3 {
		t.Errorf("%d partial outputs list %d tasks, want 40 in 3 or more", len(partials), len(seen))
	}
	for task, n := range seen {
		if n != 1 {
			t.Errorf("task %s in %d partial outputs", task, n)
		}
	}
	// Each task's data is in its stored result.
	if finals, _ := e.results(wf); len(finals) != 40 {
		t.Errorf("%d tasks with a stored result, want 40", len(finals))
	}
}

// TestResults_LargerThanAMessage: a task whose data is more than a result
// may hold fails at once (kind too_large, not retried), and one whose error
// is of any length fails with its start, its dead letter fitting beside an
// input near the max payload: the workflow finishes. Before,
// the agent published such a result again for ever, the task claimed.
func TestResults_LargerThanAMessage(t *testing.T) {
	t.Parallel()
	const maxPayload = 256 << 10
	e := newEnvOn(t, natstest.StartWithMaxPayload(t, maxPayload), streams.Config{})
	e.planner()
	e.aggregator()
	e.agent("one", 2, map[string]agent.Handler{
		"huge": agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) { return strings.Repeat("h", maxPayload), nil }),
		"loud": agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) {
			return nil, errors.New(strings.Repeat("l", maxPayload))
		}),
	})
	// "bulky" carries an input near the max payload and fails with a long
	// error: its dead letter (the task's copy and the error) must fit too.
	bulky := strings.Repeat("b", maxPayload-2048)
	wf := e.submit(map[string]any{"success_threshold": 0, "steps": []map[string]any{
		{"id": "huge", "type": "huge", "retries": 2, "backoff": "10ms"},
		{"id": "loud", "type": "loud", "retries": 1, "backoff": "10ms"},
		{"id": "bulky", "type": "loud", "retries": 0, "input": bulky},
	}})
	out := e.final(wf, time.Minute)
	if out.Metadata.Tasks.Failed != 3 || len(out.Errors) != 3 {
		t.Fatalf("final %s %+v errors %+v: want all three failed", out.Status, out.Metadata.Tasks, out.Errors)
	}
	for _, te := range out.Errors {
		switch te.Task {
		case "huge":
			if te.Kind != events.KindTooLarge || te.Attempts != 1 || te.RetryRecommended || !strings.Contains(te.Message, "reference") {
				t.Errorf("huge: %+v, want too_large after 1 attempt", te)
			}
		case "bulky":
			if te.Kind != events.KindError || te.Attempts != 1 || !strings.HasPrefix(te.Message, "lll") {
				t.Errorf("bulky: kind %s after %d attempts, want error after 1", te.Kind, te.Attempts)
			}
			dead := e.stored(e.cfg.DeadStream(), e.cfg.Subjects().Dead(wf, "bulky"))
			if len(dead) != 1 || len(dead[0].Headers().Get(events.HeaderError)) < 64 {
				t.Errorf("%d dead letters of bulky, want 1 with the start of its error", len(dead))
			}
		case "loud":
			if te.Kind != events.KindError || te.Attempts != 2 || len(te.Message) > agent.MaxErrorText {
				t.Errorf("loud: kind %s after %d attempts, %d bytes of message; want error after 2, at most %d bytes",
					te.Kind, te.Attempts, len(te.Message), agent.MaxErrorText)
			}
		}
	}
}
