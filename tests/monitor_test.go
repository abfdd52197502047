package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	"github.com/baton-dev/baton/internal/service"
	"github.com/baton-dev/baton/internal/web"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/aggregator"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/control"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/monitor"
	"github.com/baton-dev/baton/pkg/planner"
	"github.com/creack/pty"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// statusJSON runs the built `baton status --json` against the env.
func (e *env) statusJSON(wf string) (*events.Snapshot, map[string]any) {
	e.t.Helper()
	args := []string{"status", "--json", "--server", e.url()}
	if wf != "" {
		args = append(args, wf)
	}
	out, err := exec.Command(filepath.Join(bin, "baton"), args...).Output()
	if err != nil {
		e.t.Fatalf("baton status: %v", err)
	}
	var snap events.Snapshot
	var raw map[string]any
	if err := json.Unmarshal(out, &snap); err != nil {
		e.t.Fatalf("status JSON: %v\n%s", err, out)
	}
	_ = json.Unmarshal(out, &raw)
	return &snap, raw
}

// worker runs "work" tasks of d each (input 7 fails for good, after the
// same d: a task that failed at once would count as a finish that took no
// slot time and lift the drain rate, and with it the ETA, above what the
// remaining tasks will do) and "held" tasks at once.
func worker(e *env, id string, slots int, d time.Duration) {
	e.agent(id, slots, map[string]agent.Handler{
		"work": agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) {
			var in []int
			_ = t.Bind(&in)
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if len(in) == 1 && in[0] == 7 {
				return nil, agent.Permanent(errors.New("seven is not allowed"))
			}
			return in, nil
		}),
		"held": agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) { return 1, nil }),
	})
}

// TestStatus_ScriptedWorkflow checks `baton status --json` against a
// workflow whose figures are known: 20 tasks of 500 ms on 2 slots, one of
// which fails, beside a workflow stuck on a paused lane. (Tasks this long
// keep the test's ETA check about the estimate: what a loaded machine adds
// to each task, some tens of milliseconds under the race detector, would
// weigh 25% against tasks of 200 ms.) Its lane is paused for the first 2 s:
// the ETA must come from how fast its tasks go once they run, not from the
// time since it was submitted (which would put it about twice too late).
func TestStatus_ScriptedWorkflow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	worker(e, "worker", 2, 500*time.Millisecond)
	e.waitReady()
	// The planner's monitor starts at the first status request: here,
	// before the workflow, so that it hears each task start. (One started
	// mid-run knows the running tasks from the agents' registry entries,
	// up to 0.5 s old, until it hears the next starts.)
	e.statusJSON("")
	must(e.cl.PauseLane(e.ctl(), client.Lane{Type: "held", Priority: 3}, 0))(t)
	stuck := e.submit(map[string]any{"id": "stuck", "steps": []map[string]any{{"id": "h", "type": "held", "split": 1, "input": []int{1, 2}}}})
	inputs := make([]int, 20)
	for i := range inputs {
		inputs[i] = i
	}
	must(e.cl.PauseLane(e.ctl(), client.Lane{Type: "work", Priority: 3}, 2*time.Second))(t)
	wf := e.submit(map[string]any{"id": "scripted", "success_threshold": 0.9, "steps": []map[string]any{{"id": "w", "type": "work", "split": 1, "input": inputs}}})
	waitFor(t, 30*time.Second, "6 results", func() bool { f, _ := e.results(wf); return len(f) >= 6 })

	// The ETA is computed while the status command runs (a process of
	// its own): it is timed at the middle of that run.
	before := time.Now()
	mid, raw := e.statusJSON(wf)
	asked := before.Add(time.Since(before) / 2)
	for _, k := range []string{"progress", "active", "completed"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("status JSON lacks the seed's %q: %v", k, raw)
		}
	}
	v := mid.Workflows[0]
	if v.ETASeconds == nil {
		t.Fatalf("no ETA once tasks finish: %s", v.ETA)
	}
	if mid.Active < 1 || mid.Active > 2 || v.Active != mid.Active {
		t.Errorf("active %d (workflow %d), want 1 or 2 (two slots)", mid.Active, v.Active)
	}
	e.final(wf, time.Minute)
	actual := time.Since(asked).Seconds()
	if rel := math.Abs(*v.ETASeconds-actual) / actual; rel > 0.25 {
		t.Errorf("ETA %.2fs, actual remaining %.2fs: off by %.0f%%", *v.ETASeconds, actual, 100*rel)
	}
	t.Logf("ETA %.2fs at %.0f%% done, actual %.2fs", *v.ETASeconds, v.Progress, actual)

	var end *events.Snapshot
	waitFor(t, 10*time.Second, "the final counts in the record", func() bool {
		end, _ = e.statusJSON(wf)
		return end.Workflows[0].Status == events.WorkflowCompleted
	})
	c := end.Workflows[0].Counts
	if c.Total != 20 || c.Completed != 19 || c.Failed != 1 || c.Pending != 0 || end.Workflows[0].Progress != 100 {
		t.Errorf("counts %+v progress %v", c, end.Workflows[0].Progress)
	}
	all, _ := e.statusJSON("")
	if all.Tasks.ErrorRate != 0.05 || all.Tasks.Finished != 20 {
		t.Errorf("error rate %v over %d finished, want 0.05 over 20", all.Tasks.ErrorRate, all.Tasks.Finished)
	}
	if all.Tasks.P50Seconds < 0.49 || all.Tasks.P50Seconds > 0.65 {
		t.Errorf("p50 %vs, want about 0.5s", all.Tasks.P50Seconds)
	}
	if all.Bottleneck == nil || all.Bottleneck.Lane != "held.3" || !strings.Contains(all.Bottleneck.Why, "paused") {
		t.Errorf("bottleneck %+v, want the paused lane held.3", all.Bottleneck)
	}
	if all.Progress != 0 || all.Tasks.Pending != 2 || len(all.Workflows) != 2 {
		t.Errorf("overall: progress %v, pending %d, %d workflows; want the stuck one open", all.Progress, all.Tasks.Pending, len(all.Workflows))
	}
	for _, l := range all.Lanes {
		if l.Lane == "held.3" && (!l.Paused || l.Backlog != 2) {
			t.Errorf("lane held.3: %+v", l)
		}
	}
	if a := all.Agents; a.Active != 1 || a.Slots != 2 {
		t.Errorf("agents %+v", a)
	}
	must(e.cl.ResumeLane(e.ctl(), client.Lane{Type: "held", Priority: 3}))(t)
	if out := e.final(stuck, time.Minute); out.Status != events.OutcomeSuccess {
		t.Errorf("stuck workflow after the lane resumed: %s", out.Status)
	}
}

// TestMetrics_PrometheusFormat scrapes /metrics after a workflow and parses
// it with the Prometheus text parser.
func TestMetrics_PrometheusFormat(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	worker(e, "worker", 4, 200*time.Millisecond)
	mon, hs := e.webServer(nil, web.Config{})
	<-mon.Ready()
	e.final(e.submit(map[string]any{"steps": []map[string]any{{"id": "w", "type": "work", "split": 1, "input": []int{1, 2, 7, 3}}}}), time.Minute)

	var fams map[string]int
	waitFor(t, 10*time.Second, "the four results in the metrics", func() bool {
		resp, err := http.Get(hs.URL + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		parser := expfmt.NewTextParser(model.UTF8Validation)
		mf, err := parser.TextToMetricFamilies(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("/metrics does not parse: %v", err)
		}
		fams = map[string]int{}
		for name, f := range mf {
			fams[name] = len(f.GetMetric())
		}
		h := mf["baton_task_duration_seconds"]
		return h != nil && h.GetMetric()[0].GetHistogram().GetSampleCount() == 4
	})
	for _, name := range []string{
		"baton_tasks", "baton_tasks_finished_total", "baton_task_duration_seconds", "baton_task_duration_window_seconds",
		"baton_throughput_tasks_per_second", "baton_task_error_ratio", "baton_agents", "baton_agent_utilization_ratio",
		"baton_agent_slots", "baton_agent_failure_ratio", "baton_workflow_progress_ratio", "baton_workflow_tasks",
		"baton_workflow_critical_path_remaining_steps", "baton_lane_backlog", "baton_lane_in_flight", "baton_lane_paused",
		"baton_lane_redelivered", "baton_monitor_up", "go_goroutines",
		"baton_agent_running_tasks", "baton_agent_slot_utilization_ratio", "baton_agent_process_cpu_percent",
		"baton_agent_process_cpu_seconds", "baton_agent_process_resident_bytes",
	} {
		if fams[name] == 0 {
			t.Errorf("no series %s", name)
		}
	}
	if fams["baton_tasks_finished_total"] != 2 {
		t.Errorf("baton_tasks_finished_total has %d series, want completed and failed", fams["baton_tasks_finished_total"])
	}
}

// TestWatch_PseudoTerminal runs `baton watch WF` in a pseudo-terminal: it
// draws progress bars, updates them, and exits by itself when the workflow
// ends.
func TestWatch_PseudoTerminal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	worker(e, "worker", 2, 200*time.Millisecond)
	inputs := []int{1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21}
	e.waitReady()
	wf := e.submit(map[string]any{"id": "watched", "steps": []map[string]any{{"id": "w", "type": "work", "split": 1, "input": inputs}}})
	cmd := exec.Command(filepath.Join(bin, "baton"), "watch", wf, "--server", e.url(), "--every", "200ms")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var mu sync.Mutex
	var screen bytes.Buffer
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		buf := make([]byte, 4096)
		answered := false
		for {
			n, err := tty.Read(buf)
			mu.Lock()
			screen.Write(buf[:n])
			// Answer the terminal queries (background colour, cursor
			// position) as a terminal emulator would.
			ask := !answered && strings.Contains(screen.String(), "\x1b[6n")
			mu.Unlock()
			if ask {
				answered = true
				_, _ = tty.Write([]byte("\x1b]11;rgb:0000/0000/0000\x1b\\\x1b[1;1R"))
			}
			if err != nil {
				return
			}
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("baton watch: %v", err)
		}
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("baton watch did not exit when the workflow ended")
	}
	<-copied
	mu.Lock()
	out := screen.String()
	mu.Unlock()
	if !strings.Contains(out, "workflow finished") || !strings.Contains(out, "100.0%") {
		t.Errorf("final screen lacks the finished workflow:\n%s", tail(out, 2000))
	}
	// It redrew with partial progress on the way.
	partial := 0
	for pct := 5; pct < 100; pct += 5 {
		if strings.Contains(out, fmt.Sprintf("] %5.1f%%  %d/20", float64(pct), pct/5)) {
			partial++
		}
	}
	t.Logf("%d partial states seen", partial)
	if partial < 2 || !strings.Contains(out, "█") {
		t.Errorf("no progress bars updating on the way (%d partial states):\n%s", partial, tail(out, 2000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestWeb_RefusesCrossSite: the dashboard's POST endpoints refuse what
// another web site could make a browser send.
func TestWeb_RefusesCrossSite(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	_, hs := e.webServer(nil, web.Config{Dashboard: true})
	e.waitReady()
	post := func(path, contentType, site string) int {
		req, _ := http.NewRequest("POST", hs.URL+path, strings.NewReader(`{"workflow":"x","all":true}`))
		req.Header.Set("Content-Type", contentType)
		if site != "" {
			req.Header.Set("Sec-Fetch-Site", site)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		path, contentType, site string
		want                    int
	}{
		{"/api/control/cancel", "text/plain", "", 415},
		{"/api/submit", "application/x-www-form-urlencoded", "", 415},
		{"/api/control/cancel", "application/json", "cross-site", 403},
		{"/api/control/cancel", "application/json", "same-origin", 404}, // reaches the planner: unknown workflow
		{"/api/control/nope", "application/json", "", 404},
	} {
		if got := post(tc.path, tc.contentType, tc.site); got != tc.want {
			t.Errorf("POST %s as %s from %q: %d, want %d", tc.path, tc.contentType, tc.site, got, tc.want)
		}
	}
}

// TestWeb_RefusesUnknownHosts: the dashboard and its API answer only to IP
// addresses, localhost and the configured names, so a page on a name that
// resolves to this machine (DNS rebinding) cannot use them; /metrics
// answers any Host.
func TestWeb_RefusesUnknownHosts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	_, hs := e.webServer(nil, web.Config{Dashboard: true, Hosts: []string{"Baton.Example.org"}})
	for _, tc := range []struct {
		path, host string
		want       int
	}{
		{"/", "", 200}, // the test server's own 127.0.0.1:port
		{"/", "localhost:8080", 200},
		{"/", "[::1]:8080", 200},
		{"/", "baton.example.org", 200},
		{"/", "baton.example.org.:8080", 200},
		{"/", "rebind.attacker.example:8080", 403},
		{"/api/status", "rebind.attacker.example", 403},
		{"/metrics", "rebind.attacker.example", 200},
	} {
		req, _ := http.NewRequest("GET", hs.URL+tc.path, nil)
		if tc.host != "" {
			req.Host = tc.host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s with Host %q: %d, want %d", tc.path, tc.host, resp.StatusCode, tc.want)
		}
	}
}

// TestWeb_BasicAuth: with --http-auth the page and every API call ask for
// the credentials; /metrics stays open.
func TestWeb_BasicAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	_, hs := e.webServer(nil, web.Config{Dashboard: true, Auth: "ops:s3cret"})
	for _, tc := range []struct {
		method, path, user, pass string
		want                     int
	}{
		{"GET", "/", "", "", 401},
		{"GET", "/", "ops", "guess", 401},
		{"GET", "/", "ops", "s3cret", 200},
		{"GET", "/api/status", "", "", 401},
		{"GET", "/api/status", "ops", "s3cret", 200},
		{"POST", "/api/control/cancel", "", "", 401},
		{"GET", "/metrics", "", "", 200},
	} {
		req, _ := http.NewRequest(tc.method, hs.URL+tc.path, strings.NewReader(`{"workflow":"x","all":true}`))
		req.Header.Set("Content-Type", "application/json")
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s as %q: %d, want %d", tc.method, tc.path, tc.user, resp.StatusCode, tc.want)
		}
		if tc.want == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s: 401 without WWW-Authenticate", tc.method, tc.path)
		}
	}
}

// TestHealth_FollowsTheConnection: /healthz answers 200 while the process
// is connected to NATS and 503 once it is not, and `baton health` exits
// 0 and 6 accordingly (the containers' health check).
func TestHealth_FollowsTheConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	nc, _ := natstest.Connect(t, e.srv)
	_, hs := e.webServer(nc, web.Config{})
	health := func() int {
		cmd := exec.Command(filepath.Join(bin, "baton"), "health", hs.URL+"/healthz")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("baton health: %v", err)
		}
		t.Logf("baton health: %s", bytes.TrimSpace(out))
		return cmd.ProcessState.ExitCode()
	}
	if code := health(); code != 0 {
		t.Fatalf("connected: exit %d, want 0", code)
	}
	nc.Close()
	if code := health(); code != 6 {
		t.Fatalf("disconnected: exit %d, want 6", code)
	}
}

// TestStatus_RunningRebuiltFromTheRegistry starts three tasks that hold
// until released, then starts a second monitor, as after a restart: it
// hears no started event, yet reports the three as running, from the
// agents' registry entries. EVENTS stores no started event at all.
func TestStatus_RunningRebuiltFromTheRegistry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	release := make(chan struct{})
	e.agent("holder", 4, map[string]agent.Handler{"hold": heldUntil(release, 1)})
	wf := e.submit(map[string]any{"steps": []map[string]any{{"id": "h", "type": "hold", "split": 1, "input": []int{1, 2, 3}}}})
	waitFor(t, 30*time.Second, "three tasks to start", func() bool { return len(e.events(wf, events.EventStarted)) == 3 })

	fresh, err := monitor.New(e.nc, monitor.Config{Streams: e.cfg, Logger: e.logger()})
	if err != nil {
		t.Fatal(err)
	}
	e.goService("fresh monitor", fresh.Run)
	var view events.WorkflowView
	waitFor(t, 10*time.Second, "the fresh monitor to see three running", func() bool {
		snap, err := fresh.Snapshot(t.Context(), monitor.Query{Workflow: wf})
		if err != nil || len(snap.Workflows) != 1 {
			return false
		}
		view = snap.Workflows[0]
		return view.Counts.Running == 3
	})
	if fmt.Sprint(view.Running) != "[h-0 h-1 h-2]" {
		t.Errorf("running %v, want [h-0 h-1 h-2]", view.Running)
	}
	if n := len(e.stored(e.cfg.EventsStream(), e.cfg.Subjects().Event(wf, events.EventStarted))); n != 0 {
		t.Errorf("EVENTS stores %d started events, want none", n)
	}
	close(release)
	e.final(wf, time.Minute)
	waitFor(t, 10*time.Second, "nothing running once it finished", func() bool {
		snap, err := fresh.Snapshot(t.Context(), monitor.Query{Workflow: wf})
		return err == nil && len(snap.Workflows) == 1 && snap.Workflows[0].Counts.Running == 0
	})
}

// TestStatus_RunningFromGatheredStarts: an agent gathers the starts of a
// workflow's tasks into few live messages; every task is named once and
// the monitor counts each as running. Forged started events that name
// more tasks than the bound, or a task id that is not a token, are left
// out whole; a well-formed one is read (the live view is advisory: the
// agents' registry entries correct it).
func TestStatus_RunningFromGatheredStarts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	mon, err := monitor.New(e.nc, monitor.Config{Streams: e.cfg, Logger: e.logger()})
	if err != nil {
		t.Fatal(err)
	}
	e.goService("monitor", mon.Run)
	running := func(wf string) int {
		snap, err := mon.Snapshot(t.Context(), monitor.Query{Workflow: wf})
		if err != nil || len(snap.Workflows) != 1 {
			return -1
		}
		return snap.Workflows[0].Counts.Running
	}
	var mu sync.Mutex
	heard := map[string]int{} // task → times named
	messages := 0
	sub, err := e.nc.Subscribe(e.cfg.Subjects().Live("*", events.EventStarted), func(m *nats.Msg) {
		var ev events.Event
		if json.Unmarshal(m.Data, &ev) != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		messages++
		for _, task := range ev.StartedTasks() {
			heard[ev.Workflow+"/"+task]++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	const n = 40
	release := make(chan struct{})
	e.agent("holder", n, map[string]agent.Handler{"hold": heldUntil(release, 1)})
	items := make([]int, n)
	wf := e.submit(map[string]any{"steps": []map[string]any{{"id": "h", "type": "hold", "split": 1, "input": items}}})
	waitFor(t, 30*time.Second, "every task's start heard", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(heard) == n
	})
	waitFor(t, 10*time.Second, "the monitor to count them running", func() bool { return running(wf) == n })
	mu.Lock()
	for task, times := range heard {
		if times != 1 {
			t.Errorf("%s named %d times", task, times)
		}
	}
	t.Logf("%d starts in %d live messages", n, messages)
	mu.Unlock()
	close(release)
	e.final(wf, time.Minute)

	// Forged: tasks of a workflow whose type no agent serves, so none runs.
	idle := e.submit(map[string]any{"steps": []map[string]any{{"id": "p", "type": "nobody", "split": 1, "input": []int{1, 2, 3}}}})
	forge := func(tasks ...string) {
		t.Helper()
		b, err := json.Marshal(events.Event{Workflow: idle, Kind: events.EventStarted, Task: tasks[0], Tasks: tasks[1:],
			Agent: "forger", Time: time.Now().UTC()})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.nc.Publish(e.cfg.Subjects().Live(idle, events.EventStarted), b); err != nil {
			t.Fatal(err)
		}
	}
	var tooMany []string
	for len(tooMany) <= events.MaxStartedTasks {
		tooMany = append(tooMany, "p-0", "p-1", "p-2")
	}
	forge(tooMany...)          // over the bound: none of them
	forge("p-2", "p 1", "p-0") // one id not a token: none of them
	forge("p-0", "p-1")        // well formed: read, after the two above
	waitFor(t, 10*time.Second, "the well-formed forgery read", func() bool { return running(idle) >= 2 })
	if got := running(idle); got != 2 {
		t.Errorf("running %d of the idle workflow, want 2: a refused forgery was read", got)
	}
}

// TestReady_OnceTheServicesWork checks /readyz, which compose's health
// checks (and so `docker compose up --wait`) and readiness probes wait on:
// each service answers 503 with the reason until it can work (a planner
// or an aggregator replica leads, the agent is registered), then 200; and
// 503 again once its connection is gone. `baton health` exits 6, then 0.
//
// The planner is ready only once it takes requests, not as soon as it
// leads: a lease held by a replica still replaying, and a planner service
// of another deployment (another prefix) on the same NATS, leave it 503;
// junk answers to its question crowd nothing out; once it says ready, one
// submit request, not retried, is taken.
func TestReady_OnceTheServicesWork(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	nc, js := natstest.Connect(t, e.srv)
	checks := map[string]func(context.Context) error{
		"planner":    service.PlannerReady(nc, e.cfg),
		"aggregator": service.LeaderReady(nc, e.cfg, service.LeadAggregator),
		"agent":      service.AgentReady(nc, e.cfg, "ready-agent"),
	}
	urls := map[string]string{}
	for name, check := range checks {
		_, hs := e.webServer(nc, web.Config{Ready: check})
		urls[name] = hs.URL + "/readyz"
	}
	ready := func(name string) (int, string) {
		cmd := exec.Command(filepath.Join(bin, "baton"), "health", urls[name])
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("baton health: %v", err)
		}
		return cmd.ProcessState.ExitCode(), string(bytes.TrimSpace(out))
	}
	for name, why := range map[string]string{"planner": "no planner leads", "aggregator": "no aggregator leads", "agent": "not registered"} {
		if code, out := ready(name); code != 6 || !strings.Contains(out, why) {
			t.Errorf("%s before it runs: exit %d, %q; want 6 and %q", name, code, out, why)
		}
	}
	leases, err := js.KeyValue(t.Context(), e.cfg.LeasesBucket())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leases.Put(t.Context(), service.LeadPlanner, []byte("a-replica-replaying")); err != nil {
		t.Fatal(err)
	}
	other, err := control.Start(t.Context(), nc, control.Service{Name: planner.ServiceName, Subjects: events.Subjects{Prefix: "other"},
		Handlers: map[string]control.HandlerFunc{events.VerbSubmit: func(context.Context, []byte) (any, error) { return nil, nil }}})
	if err != nil {
		t.Fatal(err)
	}
	if code, out := ready("planner"); code != 6 || !strings.Contains(out, "does not take requests yet") {
		t.Errorf("planner leading but not serving: exit %d, %q; want 6 and %q", code, out, "does not take requests yet")
	}
	_ = other.Stop()
	// Anything may answer the info request: 200 junk answers and an
	// oversized one crowd out nothing, the answer behind them is read
	// (here one that looks like this deployment's planner).
	hostile, _ := natstest.Connect(t, e.srv)
	flood, err := hostile.Subscribe("$SRV.INFO."+planner.ServiceName, func(m *nats.Msg) {
		for range 200 {
			_ = m.Respond([]byte(`{"endpoints": "junk"}`))
		}
		_ = m.Respond(bytes.Repeat([]byte(" "), 200<<10))
		_ = m.Respond([]byte(`{"endpoints": [{"subject": "` + e.cfg.Subjects().Control(events.VerbSubmit) + `"}]}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := hostile.Flush(); err != nil {
		t.Fatal(err)
	}
	if code, out := ready("planner"); code != 0 {
		t.Errorf("an answer behind 201 junk ones: exit %d, %q; want 0", code, out)
	}
	_ = flood.Unsubscribe()
	if err := leases.Delete(t.Context(), service.LeadPlanner); err != nil {
		t.Fatal(err)
	}
	e.goService("planner", func(ctx context.Context) error {
		return service.RunPlanner(ctx, e.nc, planner.Config{Streams: e.cfg, Logger: e.logger()})
	})
	e.goService("aggregator", func(ctx context.Context) error {
		return service.RunAggregator(ctx, e.nc, aggregator.Config{Streams: e.cfg, Logger: e.logger()})
	})
	e.agent("ready-agent", 1, map[string]agent.Handler{"noop": agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) { return 1, nil })})
	for name := range checks {
		waitFor(t, 30*time.Second, name+" ready", func() bool { code, _ := ready(name); return code == 0 })
	}
	reply, err := nc.Request(e.cfg.Subjects().Control(events.VerbSubmit), []byte(`{"steps": [{"id": "n", "type": "noop"}]}`), 30*time.Second)
	if err != nil {
		t.Fatalf("one submit once the planner says ready: %v", err)
	}
	var r events.SubmitReply
	if err := json.Unmarshal(reply.Data, &r); err != nil || r.Workflow == "" || r.Error != nil {
		t.Fatalf("one submit once the planner says ready: %s", reply.Data)
	}
	nc.Close()
	if code, out := ready("planner"); code != 6 || !strings.Contains(out, "NATS") {
		t.Errorf("disconnected: exit %d, %q; want 6 naming NATS", code, out)
	}
}
