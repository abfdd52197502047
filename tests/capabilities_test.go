package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/builtin"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
)

// agentWith runs an in-process agent configured by cfg (its Streams and
// Logger are the env's).
func (e *env) agentWith(cfg agent.Config, handlers map[string]agent.Handler) func() {
	e.t.Helper()
	cfg.Streams, cfg.Logger = e.cfg, e.logger()
	a, err := agent.New(e.nc, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	for typ, h := range handlers {
		a.Handle(typ, h)
	}
	return e.goService("agent "+cfg.ID, a.Run)
}

// submitReply sends a job and returns the planner's reply.
func (e *env) submitReply(job string) *events.SubmitReply {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := e.cl.Submit(ctx, []byte(job))
	if err != nil {
		e.t.Fatalf("submit: %v", err)
	}
	return r
}

// whoRuns answers with the id of the agent that ran the task.
var whoRuns = agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) { return t.Agent, nil })

// waitAgents waits until the registry lists every id.
func (e *env) waitAgents(ids ...string) {
	e.t.Helper()
	waitFor(e.t, 10*time.Second, fmt.Sprintf("agents %v registered", ids), func() bool {
		list, err := e.cl.Agents(context.Background())
		if err != nil {
			return false
		}
		for _, id := range ids {
			if !slices.ContainsFunc(list, func(a events.AgentInfo) bool { return a.ID == id }) {
				return false
			}
		}
		return true
	})
}

// TestCapabilities_RoutesToCapableAgent: of two agents of a type, only the
// one advertising gpu runs the tasks of a step that requires it; plain
// tasks go to both. Pausing the type's lanes pauses its capability lane too.
func TestCapabilities_RoutesToCapableAgent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	e.agentWith(agent.Config{ID: "cpu-only", Concurrency: 2}, map[string]agent.Handler{"work": whoRuns})
	e.agentWith(agent.Config{ID: "with-gpu", Concurrency: 2, Capabilities: []string{"gpu", "ssd"}}, map[string]agent.Handler{"work": whoRuns})
	e.waitAgents("cpu-only", "with-gpu")

	r := e.submitReply(`{"steps":[
		{"id":"g","type":"work","requires":["gpu"],"split":1,"input":[1,2,3,4,5,6,7,8,9,10,11,12]},
		{"id":"s","type":"work","requires":["ssd","gpu"],"input":1},
		{"id":"p","type":"work","split":1,"input":[1,2,3,4,5,6,7,8,9,10,11,12]}]}`)
	if len(r.Warnings) != 0 {
		t.Errorf("warnings %q for a job live agents can run", r.Warnings)
	}
	if want := "work.3-" + events.CapKey([]string{"gpu"}); !slices.Contains(r.Lanes, want) {
		t.Errorf("lanes %v, want %s among them", r.Lanes, want)
	}
	out := e.final(r.Workflow, 30*time.Second)
	if out.Status != events.OutcomeSuccess {
		t.Fatalf("output %s: %+v", out.Status, out.Errors)
	}
	_, all := e.results(r.Workflow)
	ran := map[string]map[string]int{} // step → agent → tasks
	for _, res := range all {
		if ran[res.Step] == nil {
			ran[res.Step] = map[string]int{}
		}
		ran[res.Step][res.Agent]++
	}
	if ran["g"]["with-gpu"] != 12 || ran["s"]["with-gpu"] != 1 || len(ran["g"]) != 1 || len(ran["s"]) != 1 {
		t.Errorf("capability steps ran on %v and %v, want with-gpu only", ran["g"], ran["s"])
	}
	if ran["p"]["cpu-only"]+ran["p"]["with-gpu"] != 12 {
		t.Errorf("plain step ran on %v", ran["p"])
	}

	// A forged task on the gpu lane whose body requires another set (a
	// task that would run where its requirements are not met) is refused
	// unrun and kept as a dead letter.
	forged := &events.Task{Workflow: r.Workflow, ID: "g-0", Step: "g", Type: "work", Priority: events.PriorityDefault,
		Requires: []string{"tpu"}, MaxAttempts: 1, Input: json.RawMessage(`1`)}
	msg, err := e.cfg.Subjects().TaskMsg(forged)
	if err != nil {
		t.Fatal(err)
	}
	msg.Subject = e.cfg.Subjects().TaskOn("work", events.LaneToken(events.PriorityDefault, []string{"gpu"}), r.Workflow, "g-0")
	msg.Header.Set(events.HeaderMsgID, "forged-cap")
	if _, err := e.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the forged task dead-lettered", func() bool {
		return len(e.stored(e.cfg.DeadStream(), e.cfg.Subjects().DeadLetters())) == 1
	})
	if dead := e.stored(e.cfg.DeadStream(), e.cfg.Subjects().DeadLetters())[0]; dead.Headers().Get(events.HeaderErrorKind) != events.KindForged {
		t.Errorf("dead letter kind %q", dead.Headers().Get(events.HeaderErrorKind))
	}

	// A type's lane pause covers its capability lanes.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lr, err := e.cl.PauseLane(ctx, client.Lane{Type: "work", Priority: events.PriorityDefault}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var paused []string
	for _, l := range lr.Lanes {
		if l.Paused {
			paused = append(paused, l.Lane+fmt.Sprint(l.Requires))
		}
	}
	slices.Sort(paused)
	want := []string{"work.3-" + events.CapKey([]string{"gpu"}) + "[gpu]", "work.3-" + events.CapKey([]string{"gpu", "ssd"}) + "[gpu ssd]",
		"work.3-" + events.CapKey([]string{"ssd"}) + "[ssd]", "work.3[]"}
	slices.Sort(want)
	if !slices.Equal(paused, want) {
		t.Errorf("paused lanes %v, want %v", paused, want)
	}
	if _, err := e.cl.ResumeLane(ctx, client.Lane{Type: "work"}); err != nil {
		t.Fatal(err)
	}
}

// TestCapabilities_FlaggedUntilAnAgentCan: a step requiring a capability
// no live agent has is accepted with a warning (reply, event, status); it
// runs once an agent with it starts.
func TestCapabilities_FlaggedUntilAnAgentCan(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	e.agentWith(agent.Config{ID: "plain"}, map[string]agent.Handler{"work": whoRuns})
	e.waitAgents("plain")

	r := e.submitReply(`{"steps":[{"id":"t","type":"work","requires":["tpu"],"input":1},{"id":"p","type":"work","input":2}]}`)
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], `no live agent of type "work" has capabilities tpu`) {
		t.Fatalf("reply warnings %q", r.Warnings)
	}
	waitFor(t, 10*time.Second, "the warning event", func() bool {
		return slices.ContainsFunc(e.events(r.Workflow, events.EventWarning), func(ev events.Event) bool { return strings.Contains(ev.Message, "tpu") })
	})
	var view events.WorkflowView
	waitFor(t, 10*time.Second, "status with the plain task done and the warning", func() bool {
		snap, err := e.cl.Status(context.Background(), r.Workflow)
		if err != nil || len(snap.Workflows) != 1 {
			return false
		}
		view = snap.Workflows[0]
		return view.Counts.Completed == 1 && len(view.Warnings) == 1 && strings.Contains(view.Warnings[0], "tpu")
	})
	if view.Status != events.WorkflowRunning {
		t.Fatalf("workflow %s while its tpu task waits", view.Status)
	}

	// With the type's lane paused, the capability lane the new agent makes
	// starts paused too; resuming the type resumes it.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := e.cl.PauseLane(ctx, client.Lane{Type: "work", Priority: events.PriorityDefault}, 0); err != nil {
		t.Fatal(err)
	}
	e.agentWith(agent.Config{ID: "has-tpu", Capabilities: []string{"tpu"}}, map[string]agent.Handler{"work": whoRuns})
	e.waitAgents("has-tpu")
	tpuLane := "work.3-" + events.CapKey([]string{"tpu"})
	snap, err := e.cl.Status(ctx, r.Workflow)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(snap.Lanes, func(l events.LaneState) bool { return l.Lane == tpuLane }); i < 0 || !snap.Lanes[i].Paused || snap.Lanes[i].Backlog != 1 {
		t.Fatalf("lane %s not paused with its task: %+v", tpuLane, snap.Lanes)
	}
	if _, err := e.cl.ResumeLane(ctx, client.Lane{Type: "work"}); err != nil {
		t.Fatal(err)
	}
	out := e.final(r.Workflow, 30*time.Second)
	if out.Status != events.OutcomeSuccess {
		t.Fatalf("output %s: %+v", out.Status, out.Errors)
	}
	_, all := e.results(r.Workflow)
	for _, res := range all {
		if res.Task == "t" && res.Agent != "has-tpu" {
			t.Errorf("the tpu task ran on %s", res.Agent)
		}
	}
}

// TestResources_CPUsBoundTheTasksRunning: an agent with 8 slots and 2 CPUs
// runs tasks needing 1 CPU two at a time, never more.
func TestResources_CPUsBoundTheTasksRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	e.agentWith(agent.Config{ID: "two-cpus", Concurrency: 8, CPUs: 2, Memory: 1 << 30},
		map[string]agent.Handler{"sleep": agent.HandlerFunc(builtin.Sleep)})
	e.waitAgents("two-cpus")
	r := e.submitReply(`{"steps":[{"id":"s","type":"sleep","split":1,"input":[150,150,150,150,150,150,150,150],
		"resources":{"cpus":1,"memory":"100MiB"}}]}`)
	if len(r.Warnings) != 0 {
		t.Errorf("warnings %q", r.Warnings)
	}
	out := e.final(r.Workflow, 30*time.Second)
	if out.Status != events.OutcomeSuccess {
		t.Fatalf("output %s: %+v", out.Status, out.Errors)
	}
	finals, all := e.results(r.Workflow)
	if len(finals) != 8 {
		t.Fatalf("%d results", len(finals))
	}
	if n := maxOverlap(all); n != 2 {
		t.Errorf("at most %d tasks ran at once, want 2 (2 cpus, 1 per task)", n)
	}
	for _, res := range all {
		if res.Attempts != 1 {
			t.Errorf("task %s took %d attempts: a task that did not fit spent one", res.Task, res.Attempts)
		}
	}
}

// TestResources_OversizedFlaggedLaneFlows: a task needing more CPUs than
// any live agent has is flagged at submit; the smaller tasks behind it on
// the same lane still run; an agent big enough runs it later, at its first
// attempt.
func TestResources_OversizedFlaggedLaneFlows(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	e.agentWith(agent.Config{ID: "small", Concurrency: 4, CPUs: 1}, map[string]agent.Handler{"work": whoRuns})
	e.waitAgents("small")
	r := e.submitReply(`{"steps":[
		{"id":"big","type":"work","resources":{"cpus":4},"input":0},
		{"id":"small","type":"work","resources":{"cpus":0.5},"split":1,"input":[1,2,3,4,5,6]}]}`)
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "4 cpus") {
		t.Fatalf("reply warnings %q", r.Warnings)
	}
	waitFor(t, 20*time.Second, "the six small tasks done while the big one waits", func() bool {
		snap, err := e.cl.Status(context.Background(), r.Workflow)
		return err == nil && len(snap.Workflows) == 1 && snap.Workflows[0].Counts.Completed == 6 &&
			len(snap.Workflows[0].Warnings) == 1
	})
	e.agentWith(agent.Config{ID: "big", Concurrency: 1, CPUs: 8}, map[string]agent.Handler{"work": whoRuns})
	out := e.final(r.Workflow, 30*time.Second)
	if out.Status != events.OutcomeSuccess {
		t.Fatalf("output %s: %+v", out.Status, out.Errors)
	}
	_, all := e.results(r.Workflow)
	for _, res := range all {
		if res.Task == "big" && (res.Agent != "big" || res.Attempts != 1) {
			t.Errorf("big task ran on %s at attempt %d, want agent big at attempt 1", res.Agent, res.Attempts)
		}
	}
}

// TestUsage_RegistryResultsAndTotals: the registry carries each agent's
// process CPU and RSS; an exec task's result carries its child's CPU; an
// in-process handler's CPU is its own goroutine's (a sleeping handler
// uses next to none, a computing one some, never more than its own wall
// time though other tasks run beside it); the final
// metadata sums them, each task once.
func TestUsage_RegistryResultsAndTotals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	script := filepath.Join(t.TempDir(), "burn.sh")
	// It burns some CPU, then fails for good (exit 65) on input [3].
	body := "#!/bin/sh\nin=$(cat)\ni=0\nwhile [ $i -lt 60000 ]; do i=$((i+1)); done\n[ \"$in\" = '[3]' ] && exit 65\necho '{\"ok\":true}'\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	// A fixed amount of work: its CPU time does not shrink when the
	// machine is busy (its wall time grows instead).
	spin := agent.HandlerFunc(func(ctx context.Context, _ *agent.Task) (any, error) {
		x := uint64(1)
		for range 50_000_000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
		return x, nil
	})
	e.agentWith(agent.Config{ID: "usage", Concurrency: 4}, map[string]agent.Handler{
		"exec": builtin.Exec([]string{script}), "spin": spin, "sleep": agent.HandlerFunc(builtin.Sleep)})
	e.waitAgents("usage")

	var info events.AgentInfo
	waitFor(t, 10*time.Second, "the agent's process usage in the registry", func() bool {
		list, err := e.cl.Agents(context.Background())
		if err != nil || len(list) != 1 || list[0].Process == nil {
			return false
		}
		info = list[0]
		return info.Process.RSS > 0 && info.Process.CPUSeconds > 0
	})
	if info.Process.MaxRSS < info.Process.RSS/2 {
		t.Errorf("process usage %+v", *info.Process)
	}

	// The agent program declares what its flags say.
	e.start("agent-process", "agent", "--id", "declared", "--types", "noop", "--capabilities", "gpu,lang:de", "--cpus", "1.5", "--memory", "2GiB")
	e.waitAgents("declared")
	list, err := e.cl.Agents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d := list[slices.IndexFunc(list, func(a events.AgentInfo) bool { return a.ID == "declared" })]
	if !slices.Equal(d.Routing, []string{"gpu", "lang:de"}) || d.CPUMilli != 1500 || d.Memory != 2<<30 || d.Process == nil || d.Process.RSS <= 0 {
		t.Errorf("agent process entry: routing %v, cpu %d, memory %d, process %+v", d.Routing, d.CPUMilli, d.Memory, d.Process)
	}

	r := e.submitReply(`{"success_threshold":0.5,"steps":[{"id":"x","type":"exec","split":1,"input":[1,2,3]},{"id":"s","type":"spin","input":1},{"id":"z","type":"sleep","input":100}]}`)
	out := e.final(r.Workflow, 60*time.Second)
	if out.Status != events.OutcomePartial || len(out.Missing) != 1 || out.Missing[0] != "x-2" {
		t.Fatalf("output %s: %+v", out.Status, out.Errors)
	}
	_, all := e.results(r.Workflow)
	var want events.ResourceTotals
	for _, res := range all {
		u := res.Usage
		if u == nil {
			t.Fatalf("result of %s has no usage", res.Task)
		}
		want.Add(u)
		wall := float64(res.Finished-res.Started) / 1e6
		switch res.Step {
		case "x":
			if u.ExecCPUMS <= 0 || u.ExecMaxRSS <= 0 {
				t.Errorf("exec task %s: usage %+v, want its child's CPU and RSS", res.Task, *u)
			}
		case "s":
			if u.CPUMS < 5 || u.CPUMS > wall+5 {
				t.Errorf("spinning handler: cpu %.1f ms over %.1f ms wall", u.CPUMS, wall)
			}
		case "z":
			if u.CPUMS > 20 || wall < 100 {
				t.Errorf("sleeping handler: cpu %.1f ms over %.1f ms wall", u.CPUMS, wall)
			}
		}
	}
	got := out.Metadata.Resources
	if got.Measured != 5 || got.Round() != want.Round() || got.ExecCPUMS <= 0 {
		t.Errorf("metadata resources %+v, want %+v", got, want.Round())
	}
	b, _ := json.Marshal(out.Metadata)
	if !strings.Contains(string(b), `"resources":{"measured":5,`) {
		t.Errorf("metadata JSON %s", b)
	}
}
