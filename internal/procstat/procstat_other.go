//go:build !linux

package procstat

import "time"

// CPU returns ErrUnsupported: see the Linux version.
func CPU(int) (time.Duration, error) { return 0, ErrUnsupported }

// PeakRSS returns ErrUnsupported: see the Linux version.
func PeakRSS(int) (int64, error) { return 0, ErrUnsupported }

// ResetPeak returns ErrUnsupported: see the Linux version.
func ResetPeak(int) error { return ErrUnsupported }
