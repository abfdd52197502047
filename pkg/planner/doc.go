// Package planner turns submitted jobs into tasks on JetStream lanes and
// follows their results to release dependents, switch to fallback types and
// finish workflows.
//
// The planner keeps no state of its own. A workflow's record and job live in
// the workflows bucket; its progress is the RESULTS stream. The planner is a
// deterministic function of the two: on start it replays the results of every
// unfinished workflow, then publishes the tasks that are due and not yet done
// (Nats-Msg-Id makes a task published twice arrive once), and carries on live.
// Kill it at any moment and start it again: nothing is lost and nothing is
// re-run that had finished.
package planner
