//go:build !unix

package agent

import "time"

// selfUsage is not read here: the process's usage is reported as 0.
func selfUsage() (cpu time.Duration, maxRSS int64) { return 0, 0 }

// ChildUsage reads nothing here: ok is false.
func ChildUsage(sys any) (cpu time.Duration, maxRSS int64, ok bool) { return 0, 0, false }
