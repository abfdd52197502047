package agent

import (
	"context"
	"slices"
	"sync"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go/micro"
)

// onCrash takes a crash drill (the crash verb): if it names this agent, the
// agent answers with what it holds and dies (die).
func (a *Agent) onCrash(r micro.Request) {
	if err := events.ParseCrashDrill(r.Data(), a.cfg.ID); err != nil {
		_ = r.Error("400", truncate(err.Error(), 300), nil)
		return
	}
	reply := events.CrashReply{Agent: a.cfg.ID, Status: events.AgentCrashed, Tasks: []string{}}
	a.mu.Lock()
	a.die()
	for j := range a.running {
		reply.Abandoned++
		reply.Tasks = append(reply.Tasks, j.wf+"/"+j.id)
	}
	a.mu.Unlock()
	slices.Sort(reply.Tasks)
	reply.Tasks = reply.Tasks[:min(len(reply.Tasks), events.MaxListedTasks)]
	a.log.Warn("crash drill: stopping abruptly, as if killed", "abandoned", reply.Abandoned)
	_ = r.RespondJSON(reply)
	// The answer is on its way before a process that exits on Crashed does.
	_ = a.nc.Flush()
	a.crashOnce.Do(func() { close(a.crashed) })
}

// die marks the agent dead, with a.mu held: from now on it settles no
// message, publishes nothing and stops its loops (see abandon). A task
// whose acknowledgement was already under way ends as it would have.
func (a *Agent) die() {
	a.dead.Store(true)
	if a.stopLoop != nil {
		a.stopLoop()
	}
}

// Crashed is closed when the agent took a crash drill. Run then returns
// only once its context ends, so that a process running other services
// (baton up) lives on; a process that is only this agent exits on it, as
// cmd/agent does (status 137, as if killed by SIGKILL).
func (a *Agent) Crashed() <-chan struct{} { return a.crashed }

// abandon is how Run ends after a crash drill: the handlers' contexts end
// and their outcomes are dropped (no ack, nak, result or hand-back), the
// heartbeat and in-progress loops stop, the agent stops answering, and its
// registry entry stays until the reaper marks it failed and its TTL runs
// out. JetStream redelivers its tasks to other agents once their ack wait
// passes, as for an agent that was killed.
func (a *Agent) abandon(ctx context.Context, tasks *sync.WaitGroup, stopWork, stopSide func(), side *sync.WaitGroup, stop ...func()) {
	stopWork()
	stopSide()
	for _, fn := range stop {
		fn()
	}
	side.Wait()
	tasks.Wait()
	a.log.Warn("agent crashed (drill): its tasks come back after the ack wait; waiting for the process to stop")
	<-ctx.Done()
}
