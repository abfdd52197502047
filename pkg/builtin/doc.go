// Package builtin holds the agent handlers that ship with baton: research
// (keywords and word counts of text), data (numeric statistics), write (a
// summary composed from dependencies' results), sleep and noop (tests,
// demos, benchmarks), exec (a configured command per task) and http (POST
// the task to a configured URL).
package builtin
