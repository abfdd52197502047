// Package aggregator turns task results into workflow outputs. It follows the
// RESULTS stream, keeps a small streaming state per workflow, publishes
// partial outputs as results arrive (throttled; none in batch collection),
// a hybrid workflow's ready output once its critical tasks are done, and the
// final output when every task has a final result. The verdict of a
// workflow that missed its success threshold under an on_threshold_missed
// policy is the planner's: the final output waits for the record to give it
// (finish.go).
//
// The output's data is built by the job's aggregate: merge, reduce or
// transform (Combine, Reducer), or, in synth.go, named fields, computed
// fields (expressions, see package expression) and interpolated fallbacks,
// for which the data of every collected result is kept until the end.
//
// Like the planner it keeps no state of its own: after a restart it replays
// the results of every workflow that has no final output yet. A task that ran
// twice counts once: the first final result of a task wins.
package aggregator
