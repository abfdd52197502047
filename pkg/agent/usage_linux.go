//go:build linux

package agent

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// measure runs fn with its goroutine locked to its OS thread and returns
// the CPU time (user+system) that thread used meanwhile: the CPU of fn's
// own goroutine, not of other tasks (they run on other threads) nor of
// goroutines fn starts. ok is false if the thread's usage could not be
// read.
func measure(fn func()) (cpu time.Duration, ok bool) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var before, after syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_THREAD, &before) != nil {
		fn()
		return 0, false
	}
	fn()
	if syscall.Getrusage(syscall.RUSAGE_THREAD, &after) != nil {
		return 0, false
	}
	return rusageCPU(&after) - rusageCPU(&before), true
}

// residentBytes is the process's resident set size now, from
// /proc/self/statm (its second field, in pages).
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// maxRSSUnit is what ru_maxrss counts in: KiB on Linux.
const maxRSSUnit = 1024
