package planner

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/baton-dev/baton/pkg/control"
	"github.com/baton-dev/baton/pkg/events"
)

// newCheckpoint records in f's record the checkpoint a pause or stop takes
// (the caller stores the record) and returns it. Whatever checkpoint was
// there before is replaced: its token is stale from now on.
func (f *flow) newCheckpoint(cp *events.Checkpoint, replies []events.AgentReply, now bool) *events.CheckpointRecord {
	seq := 1
	if prev := f.rec.Checkpoint; prev != nil {
		seq = prev.Seq + 1
	}
	running := make(map[string]bool, len(cp.Running))
	for _, id := range cp.Running {
		running[id] = true
	}
	h := sha256.New()
	for i, s := range f.st {
		state := "pending"
		switch {
		case s.state == done:
			state = "done"
		case running[f.plan.Tasks[i].ID()]:
			state = "running"
		}
		fmt.Fprintf(h, "%s %s\n", f.plan.Tasks[i].ID(), state)
	}
	rec := &events.CheckpointRecord{
		Seq: seq, Status: f.rec.Status, Gen: f.rec.Gen, Taken: time.Now().UTC(), Now: now,
		Done: len(cp.Done), Running: len(cp.Running), Pending: len(cp.Pending),
		Digest: hex.EncodeToString(h.Sum(nil)[:16]), Agents: []events.CheckpointAgent{},
	}
	prefix := f.rec.ID + "/"
	for _, r := range replies {
		if !events.ValidToken(r.Agent) {
			continue // not an agent baton knows how to name
		}
		a := events.CheckpointAgent{Agent: r.Agent}
		for _, run := range r.Running {
			if task, ok := strings.CutPrefix(run, prefix); ok && events.ValidToken(task) {
				a.Running++
				if len(a.Tasks) < events.MaxCheckpointAgentTasks {
					a.Tasks = append(a.Tasks, task)
				}
			}
		}
		rec.Agents = append(rec.Agents, a)
	}
	// The agents that ran the workflow's tasks first, then by id.
	slices.SortFunc(rec.Agents, func(a, b events.CheckpointAgent) int {
		if a.Running != b.Running {
			return b.Running - a.Running
		}
		return strings.Compare(a.Agent, b.Agent)
	})
	if len(rec.Agents) > events.MaxCheckpointAgents {
		rec.AgentsOmitted = len(rec.Agents) - events.MaxCheckpointAgents
		rec.Agents = rec.Agents[:events.MaxCheckpointAgents]
	}
	f.rec.Checkpoint = rec
	return rec
}

// staleCheckpoint marks f's checkpoint as no longer resumable, for why
// (the workflow was resumed, cancelled in part, …); it reports whether it
// changed the record, which the caller then stores.
func (f *flow) staleCheckpoint(why string) bool {
	cp := f.rec.Checkpoint
	if cp == nil || cp.Stale != "" {
		return false
	}
	cp.Stale = fmt.Sprintf("%s at %s", why, time.Now().UTC().Format(time.RFC3339))
	return true
}

// checkToken refuses a resume token that is not f's current checkpoint:
// malformed or not made for f (400), or stale (409) because f changed
// since the pause. It also checks that f still stands where the
// checkpoint left it: nothing finished then is unfinished now, and only
// tasks running then may have finished since.
func (p *Planner) checkToken(f *flow, token string) error {
	seq, mac, err := events.ParseCheckpointToken(token)
	if err != nil {
		return control.Errorf(400, "%v", err)
	}
	id := f.rec.ID
	if !p.key.CheckCheckpoint(id, seq, mac) {
		return control.Errorf(400, "token %s is not a checkpoint of workflow %s: it was made for another workflow, or not by baton", token, id)
	}
	cp := f.rec.Checkpoint
	switch {
	case cp == nil || seq > cp.Seq:
		return control.Errorf(409, "token %s: workflow %s has no checkpoint %d", token, id, seq)
	case seq < cp.Seq:
		return control.Errorf(409, "token %s is stale: checkpoint %d of workflow %s was replaced by checkpoint %d (%s at %s)",
			token, seq, id, cp.Seq, cp.Status, cp.Taken.Format(time.RFC3339))
	case cp.Stale != "":
		return control.Errorf(409, "token %s is stale: since checkpoint %d workflow %s was %s; pause or stop it again for a fresh token", token, seq, id, cp.Stale)
	}
	c := f.counts()
	if finished := c.Total - c.Pending; finished < cp.Done || finished > cp.Done+cp.Running {
		return control.Errorf(409, "token %s: workflow %s does not match checkpoint %d: %d tasks finished now, %d then and %d running",
			token, id, seq, finished, cp.Done, cp.Running)
	}
	return nil
}
