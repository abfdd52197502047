package tests

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/events"
)

// napper is a handler that sleeps for the sum of its input's milliseconds
// (a chunk of a list), or until its context ends.
var napper = agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) {
	var chunk []int
	if err := json.Unmarshal(t.Input, &chunk); err != nil {
		return nil, agent.Permanent(err)
	}
	ms := 0
	for _, n := range chunk {
		ms += n
	}
	nap := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer nap.Stop()
	select {
	case <-nap.C:
		return ms, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
})

// TestSeed_CrashAgent3Drill is the seed's failure test as a drill: four
// agents in one process (as in baton up), ten tasks; agent 3 is crashed
// mid-run with the crash control request. It answers with the tasks it
// abandons and stops as if killed while the process lives on: it is
// marked failed within two heartbeats, its tasks are redelivered after the
// ack wait, every task completes once, none by agent 3, and the output
// reads success with recovery "recovered". A drill for an agent that is
// not running is not found; a malformed or misaddressed drill sent
// straight to an agent is refused by it.
func TestSeed_CrashAgent3Drill(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{AckWait: time.Second, AgentTTL: 1500 * time.Millisecond})
	e.planner()
	e.aggregator()
	for _, id := range []string{"agent-1", "agent-2", "agent-3", "agent-4"} {
		e.agent(id, 3, map[string]agent.Handler{"nap": napper})
	}
	e.waitReady()
	waitFor(t, 30*time.Second, "four agents", func() bool {
		list, err := e.cl.Agents(e.ctl())
		return err == nil && len(list) == 4
	})

	// Drills the agent refuses: it stays alive.
	s := e.cfg.Subjects()
	for _, body := range []string{`{"agent":"agent-1"}`, `{}`, `{"agent":"agent-3","x":1}`, `not json`, `{"agent":"` + strings.Repeat("a", 100000) + `"}`} {
		m, err := e.nc.Request(s.AgentCrash("agent-3"), []byte(body), 5*time.Second)
		if err != nil {
			t.Fatalf("drill %.40s: %v", body, err)
		}
		if m.Header.Get("Nats-Service-Error-Code") != "400" || len(m.Header.Get("Nats-Service-Error")) > 400 {
			t.Fatalf("drill %.40s: answered %q %q, want a short 400", body, m.Header.Get("Nats-Service-Error-Code"), m.Header.Get("Nats-Service-Error"))
		}
	}
	if _, err := e.cl.CrashAgent(e.ctl(), "agent-9"); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("crash of an agent that is not running: %v, want not found", err)
	}
	if _, err := e.cl.CrashAgent(e.ctl(), ""); !errors.Is(err, events.ErrBadRequest) {
		t.Fatalf("crash of no agent: %v, want a bad request", err)
	}

	naps := []int{1200, 1200, 1200, 1200, 1200, 1200, 1200, 1200, 1200, 1200}
	wf := e.submit(map[string]any{"id": "seed-drill", "steps": []map[string]any{{"id": "nap", "type": "nap", "split": 1, "input": naps}}})
	waitFor(t, 30*time.Second, "agent-3 to run a task", func() bool {
		return slices.ContainsFunc(e.events(wf, events.EventStarted), func(ev events.Event) bool { return ev.Agent == "agent-3" })
	})
	reply := must(e.cl.CrashAgent(e.ctl(), "agent-3"))(t)
	crashed := time.Now()
	if reply.Agent != "agent-3" || reply.Status != events.AgentCrashed || reply.Abandoned == 0 || len(reply.Tasks) != reply.Abandoned {
		t.Fatalf("crash reply %+v, want agent-3 abandoning the tasks it ran", reply)
	}
	waitFor(t, 10*time.Second, "agent-3 marked failed", func() bool {
		list, err := e.cl.Agents(e.ctl())
		return err == nil && slices.ContainsFunc(list, func(a events.AgentInfo) bool { return a.ID == "agent-3" && a.Status == events.AgentFailed })
	})
	if d := time.Since(crashed); d > 2*500*time.Millisecond+500*time.Millisecond {
		t.Errorf("agent-3 marked failed %v after the crash; heartbeats are 500ms apart", d)
	}
	if _, err := e.cl.CrashAgent(e.ctl(), "agent-3"); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("a second crash of agent-3: %v, want not found (it answers nothing)", err)
	}
	out := e.final(wf, time.Minute)
	if out.Status != events.OutcomeSuccess || out.Metadata.Tasks.Completed != 10 {
		t.Fatalf("status %s tasks %+v", out.Status, out.Metadata.Tasks)
	}
	if out.Metadata.Recovery != events.RecoveryRecovered || out.Metadata.Recovered < reply.Abandoned {
		t.Errorf("recovery %q (%d recovered), want recovered, at least the %d abandoned", out.Metadata.Recovery, out.Metadata.Recovered, reply.Abandoned)
	}
	if slices.Contains(out.Metadata.Agents, "agent-3") {
		t.Errorf("a result came from the crashed agent: %v", out.Metadata.Agents)
	}
	finals, all := e.results(wf)
	if len(finals) != 10 || len(all) != 10 {
		t.Errorf("%d results for %d tasks, want 10 and 10", len(all), len(finals))
	}
	rerun := func(evs []events.Event, task string) bool {
		return slices.ContainsFunc(evs, func(ev events.Event) bool { return wf+"/"+ev.Task == task && ev.Agent != "agent-3" })
	}
	heard := e.heardStarts(wf, func(evs []events.Event) bool {
		return !slices.ContainsFunc(reply.Tasks, func(task string) bool { return !rerun(evs, task) })
	})
	for _, task := range reply.Tasks {
		if !rerun(heard, task) {
			t.Errorf("abandoned task %s was not run again by another agent", task)
		}
	}
	// The registry entry expires with the TTL, as a dead agent's does.
	waitFor(t, 10*time.Second, "agent-3's entry to expire", func() bool {
		list, err := e.cl.Agents(e.ctl())
		return err == nil && !slices.ContainsFunc(list, func(a events.AgentInfo) bool { return a.ID == "agent-3" })
	})
}

// TestAgents_CrashCommand: `baton agents crash ID` ends a standalone agent
// process with status 137, as SIGKILL would, and prints its answer; an
// agent that is not running exits 3.
func TestAgents_CrashCommand(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	p := e.start("agent-x", "agent", "--id", "agent-x", "--types", "sleep")
	e.waitReady()
	waitFor(t, 30*time.Second, "agent-x", func() bool {
		list, err := e.cl.Agents(e.ctl())
		return err == nil && len(list) == 1
	})
	baton := func(args ...string) ([]byte, int) {
		cmd := exec.Command(filepath.Join(bin, "baton"), append(args, "--server", e.url())...)
		out, err := cmd.Output()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return out, ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return out, 0
	}
	if _, code := baton("agents", "crash", "agent-nobody"); code != 3 {
		t.Errorf("crash of an agent that is not running: exit %d, want 3", code)
	}
	out, code := baton("agents", "crash", "agent-x")
	var reply events.CrashReply
	if code != 0 || json.Unmarshal(out, &reply) != nil || reply.Agent != "agent-x" || reply.Status != events.AgentCrashed {
		t.Fatalf("baton agents crash agent-x: exit %d, %s", code, out)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent process did not exit")
	}
	if st := p.cmd.ProcessState; st.ExitCode() != 137 {
		t.Errorf("the agent process exited with %v, want status 137", st)
	}
	if strings.Contains(p.log.String(), "agent stopped") {
		t.Errorf("the agent shut down cleanly instead of dying:\n%s", p.log.String())
	}
}
