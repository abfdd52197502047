// Package monitor computes baton's figures — task counts and timings,
// throughput, error rate, agent utilization, workflow progress, ETA,
// bottleneck and critical path, lane states — from JetStream alone: the
// workflows and agents buckets, the lane consumers, and the results and
// started events of a recent window, which it follows. Any process running
// a Monitor reports the same figures, and a restarted one rebuilds them from
// the streams.
//
// Whatever the number and size of workflows, agents and lanes, a snapshot
// stays bounded: the sums and the counts by status cover every workflow,
// while the lists (workflows, by a Query's status, offset and limit; lanes;
// agents) stop at their documented counts and before the reply would
// outgrow the connection's max payload, and say what they left out (see
// events.Snapshot). What someone else may have written (a record, an agent
// entry, a started event) is checked or clipped before it is shown.
//
// One Monitor serves a whole process, and it starts on demand: Run reads
// nothing until Snapshot (or Ready, or Start) is first called. Snapshot is
// the one entry point; Serve answers the read-only control verbs (status,
// agents) as the NATS service "baton-status", and the Prometheus collector,
// `baton status`, `baton watch` and the dashboard all read it.
package monitor
