//go:build linux

package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// clockTick is the unit of /proc/<pid>/stat's times: USER_HZ, 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// CPU returns the CPU time (user and system, all threads) process pid has
// used so far; pid 0 means this process, measured to the microsecond.
// Another process's is in clock ticks of 10 ms.
func CPU(pid int) (time.Duration, error) {
	if pid == 0 {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return 0, fmt.Errorf("procstat: getrusage: %w", err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("procstat: %w", err)
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after its closing parenthesis. utime and stime are
	// fields 14 and 15, so the 12th and 13th after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%w: /proc/%d/stat has no command name", ErrFormat, pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("%w: /proc/%d/stat has %d fields after the name", ErrFormat, pid, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: /proc/%d/stat: %v", ErrFormat, pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// PeakRSS returns the most resident memory, in bytes, process pid (0: this
// process) has held since it started or since its last ResetPeak: VmHWM.
func PeakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%s/status", self(pid)))
	if err != nil {
		return 0, fmt.Errorf("procstat: %w", err)
	}
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("VmHWM:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("%w: VmHWM line %q", ErrFormat, bytes.TrimSpace(line))
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: VmHWM: %v", ErrFormat, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("%w: no VmHWM in /proc/%s/status", ErrFormat, self(pid))
}

// ResetPeak sets the peak PeakRSS reports of process pid (0: this process)
// to its resident memory now, by writing 5 to /proc/<pid>/clear_refs; the
// caller must own the process.
func ResetPeak(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%s/clear_refs", self(pid)), []byte("5"), 0); err != nil {
		return fmt.Errorf("procstat: reset peak: %w", err)
	}
	return nil
}

func self(pid int) string {
	if pid == 0 {
		return "self"
	}
	return strconv.Itoa(pid)
}
