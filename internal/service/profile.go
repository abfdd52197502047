package service

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// StartProfile starts a CPU profile of this process to path, for `go tool
// pprof`; no path: none. The returned function stops it and closes the
// file, reporting what failed to stderr: a service stopping keeps its own
// exit status.
func StartProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "cpu profile:", err)
		}
	}, nil
}
