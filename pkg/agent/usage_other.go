//go:build !linux

package agent

import "time"

// measure runs fn; without a per-thread CPU clock it measures nothing.
func measure(fn func()) (cpu time.Duration, ok bool) {
	fn()
	return 0, false
}

// residentBytes is not read here: ProcessUsage.RSS is then the peak.
func residentBytes() int64 { return 0 }
