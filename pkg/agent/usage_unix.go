//go:build unix

package agent

import (
	"syscall"
	"time"
)

func rusageCPU(ru *syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// selfUsage is the process's CPU time so far and its peak RSS in bytes.
func selfUsage() (cpu time.Duration, maxRSS int64) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0
	}
	return rusageCPU(&ru), int64(ru.Maxrss) * maxRSSUnit
}

// ChildUsage reads the CPU time (user+system) and the peak resident size
// in bytes from a finished child's ProcessState.SysUsage().
func ChildUsage(sys any) (cpu time.Duration, maxRSS int64, ok bool) {
	ru, ok := sys.(*syscall.Rusage)
	if !ok || ru == nil {
		return 0, 0, false
	}
	return rusageCPU(ru), int64(ru.Maxrss) * maxRSSUnit, true
}
