//go:build linux

package procstat_test

import (
	"os"
	"os/exec"
	"runtime/debug"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/procstat"
)

// burn spends CPU until d of it is used, so that the figures have
// something to show.
func burn(tb testing.TB, d time.Duration) {
	tb.Helper()
	start, err := procstat.CPU(0)
	if err != nil {
		tb.Fatal(err)
	}
	x := 0
	for {
		for i := range 100_000 {
			x += i
		}
		now, err := procstat.CPU(0)
		if err != nil {
			tb.Fatal(err)
		}
		if now-start >= d {
			_ = x
			return
		}
	}
}

func TestCPU_Self(t *testing.T) {
	t.Parallel()
	before, err := procstat.CPU(0)
	if err != nil {
		t.Fatal(err)
	}
	burn(t, 30*time.Millisecond)
	after, err := procstat.CPU(0)
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 30*time.Millisecond {
		t.Fatalf("CPU grew by %v, want at least 30ms", after-before)
	}
	// The same process through /proc, in clock ticks, agrees.
	viaProc, err := procstat.CPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if viaProc <= 0 || viaProc > after+time.Second {
		t.Fatalf("/proc says %v, getrusage %v", viaProc, after)
	}
}

func TestCPU_Child(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep command: %v", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if _, err := procstat.CPU(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	rss, err := procstat.PeakRSS(cmd.Process.Pid)
	if err != nil || rss <= 0 {
		t.Fatalf("child's peak RSS %d, %v", rss, err)
	}
	if err := procstat.ResetPeak(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
}

func TestPeakRSS_ResetForgetsAnEarlierPeak(t *testing.T) {
	// Not parallel: other tests' allocations would move this process's peak.
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = 1
	}
	peak, err := procstat.PeakRSS(0)
	if err != nil {
		t.Fatal(err)
	}
	if peak < 64<<20 {
		t.Fatalf("peak %d after touching 64 MiB", peak)
	}
	big = nil
	_ = big
	// Give the 64 MiB back to the system, then forget the peak.
	debug.FreeOSMemory()
	if err := procstat.ResetPeak(0); err != nil {
		t.Fatal(err)
	}
	after, err := procstat.PeakRSS(0)
	if err != nil {
		t.Fatal(err)
	}
	if after >= peak {
		t.Fatalf("peak after reset %d, not below %d", after, peak)
	}
}

func TestCPU_NoSuchProcess(t *testing.T) {
	t.Parallel()
	if _, err := procstat.CPU(1 << 30); err == nil {
		t.Fatal("CPU of a process that does not exist: no error")
	}
	if _, err := procstat.PeakRSS(1 << 30); err == nil {
		t.Fatal("PeakRSS of a process that does not exist: no error")
	}
}
