// Package procstat reads what `baton bench --suite` measures of a process:
// the CPU time it has used and its peak resident memory, for this process
// or a child, and resets that peak so that one phase of a run can be
// measured on its own.
//
// On Linux the figures come from /proc/<pid>/stat and /proc/<pid>/status,
// and this process's CPU time from getrusage (microseconds rather than
// clock ticks). Elsewhere every function returns ErrUnsupported.
package procstat
