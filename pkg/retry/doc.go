// Package retry is the one place where baton decides what follows a
// failure: how many times a task is tried, how long it waits between tries,
// when a failure is final and when a step's fallback type takes over, and
// the loop with which services ride out a JetStream hiccup.
//
// The agent asks After what to do with a failed attempt; the result it then
// publishes says, with Final, whether the planner must start the fallback
// (FallbackDue). Both read the policy from the task itself (MaxAttempts,
// Backoff, MaxBackoff, Fallback, Round), which the planner set from the job.
package retry
