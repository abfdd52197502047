// Package benchkit is what baton's benchmarks share: `baton bench` and
// its suite (internal/cli) and the comparison with other task runners
// (bench/compare, a module of its own).
package benchkit

import (
	"fmt"
	"math"
	"net"
	"path/filepath"
	"slices"
)

// FreePort returns a TCP port free on loopback at the time of asking.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// NATSConfig is the configuration of a one-node nats-server as
// deploy/nats.conf has it (baton's 8 MB payload limit, JetStream on file
// storage), listening on loopback at port, its files under dir.
func NATSConfig(dir string, port int) []byte {
	return fmt.Appendf(nil, "listen: 127.0.0.1:%d\nmax_payload: 8MB\njetstream {\n  store_dir: %q\n}\n", port, filepath.Join(dir, "jetstream"))
}

// Median is the median of xs (the mean of the middle two of an even
// count); NaN for none.
func Median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	switch {
	case len(s) == 0:
		return math.NaN()
	case len(s)%2 == 1:
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
