//go:build unix && !linux

package agent

// maxRSSUnit is what ru_maxrss counts in: bytes on the BSDs and macOS
// (Solaris and AIX differ; there the figure is off by their unit).
const maxRSSUnit = 1
