// Package agent is the SDK for baton agents: register a Handler per task type,
// Run the agent, and it serves those types' lanes on JetStream.
//
// The handler's outcome decides the acknowledgement: nil → the result is
// published, then the task acked; an error made with Permanent → the task is
// saved as a dead letter, a failed result is published, then the task is
// terminated; an error made with RetryAfter → the task is handed back for
// that long; any other error → handed back with exponential backoff and
// jitter until the task's attempts run out, then treated like a permanent
// error. A panic becomes an error. Long tasks keep their claim alive: the
// agent tells JetStream it is still working at a third of the ack wait.
//
// An agent serves the most urgent non-empty lane first and fetches no more
// tasks than it has free slots. On shutdown it stops fetching, lets running
// tasks finish (for up to DrainTimeout), and hands back the rest.
//
// A crash drill (the crash control verb, `baton agents crash ID`) makes the
// agent die instead, as SIGKILL would: it stops fetching, answering and
// beating, settles and publishes nothing more, and keeps its registry
// entry, so that its tasks come back to other agents after their ack wait.
// Run then waits for its context to end, so that a process that runs other
// services lives on; Crashed tells a process that is only this agent to
// exit.
// A task with a synchronisation point (a concurrency key, a rate, or a type
// with a cap set by `baton limit`) starts only once it holds its permits
// (package permit); while it waits it holds no slot and costs no attempt,
// and after PermitWaitMax on one agent it is handed back to its lane.
// Capabilities (Config.Capabilities) make the agent also serve the lanes of
// tasks whose step requires any subset of them; a declared capacity
// (Config.CPUs, Config.Memory) makes it start only the tasks whose needs fit
// what its running tasks leave (capacity.go). Completed results carry the
// handler goroutine's CPU time and what the handler reported of its child
// processes (Task.ReportChild); the registry entry carries the process's
// CPU and RSS (usage.go).
package agent
