// Package planner turns submitted jobs into tasks on JetStream lanes and
// follows their results to release dependents, switch to fallback types and
// finish workflows; it also carries out the control verbs that change a
// workflow (pause, resume, stop, restart, cancel, reprioritize), and the
// crash drill, which it relays to one agent.
//
// The planner keeps no state of its own. A workflow's record and job live in
// the workflows bucket; its progress is the RESULTS stream. The planner is a
// deterministic function of the two: on start it replays the results of every
// unfinished workflow, then publishes the tasks that are due and not yet done
// (Nats-Msg-Id makes a task published twice arrive once), and carries on live.
// Kill it at any moment and start it again: nothing is lost and nothing is
// re-run that had finished.
//
// One file per job: planner.go is the loop that owns every workflow's state;
// jobs.go plans a submitted job; results.go applies results (dependencies,
// fallback, finishing with the outcome); dispatch.go queues tasks and stores
// what the planner decides; replay.go rebuilds after a restart; service.go
// is the control service; pause.go and cancel.go are the control verbs;
// checkpoint.go takes the checkpoints pause and stop keep in the record and
// checks the resume tokens that name them; crash.go relays crash drills;
// finish.go is how a workflow ends: stop_when, retry rounds and escalation
// when its success threshold is missed (with a webhook sent by package
// webhook), resolve, and reopening a finished workflow to retry its failed
// tasks;
// decompose.go and flow.go are the plan and one workflow's progress. The
// read-only verbs (status, agents) are the monitor's (package monitor).
package planner
