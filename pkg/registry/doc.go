// Package registry owns the agent record: the entry each agent keeps in the
// agents bucket (id, types, capabilities, status, slots, running tasks,
// heartbeat), how it is read (List, ServedTypes, Live), how a silent agent
// is marked failed (Reaper), and how every agent is asked something at once
// (Ask).
//
// An entry lives as long as its agent heartbeats: the bucket's TTL removes
// it after the last one, and the Reaper marks it failed before that, so that
// status and the planner stop counting on it. JetStream, not the registry,
// gives a dead agent's tasks to others: its unacknowledged messages are
// redelivered after the lane's ack wait.
package registry
