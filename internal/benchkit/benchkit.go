// Package benchkit is what baton's benchmarks share: `baton bench` and
// its suite (internal/cli) and the comparison with other task runners
// (bench/compare, a module of its own): a loopback nats-server's port and
// configuration, the job they time and its check, medians.
package benchkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"slices"
	"time"

	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
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

// ErrJob is returned when a benchmark's job does not end as it must.
var ErrJob = errors.New("benchmark job did not succeed")

// RunRange submits one job of n tasks of type typ, their inputs a range
// (split_by "range": the document stays a few bytes whatever n), whose
// final output counts them; see Run.
func RunRange(ctx context.Context, cl *client.Client, typ string, n int) (time.Duration, error) {
	job, err := json.Marshal(map[string]any{
		"name":      "bench",
		"steps":     []map[string]any{{"id": typ, "type": typ, "split": 1, "split_by": events.SplitRange, "input": map[string]int{"count": n}}},
		"aggregate": map[string]any{"strategy": "reduce", "op": "count", "field": "."},
	})
	if err != nil {
		return 0, err
	}
	return Run(ctx, cl, job, n)
}

// Run submits job, of n tasks, and returns the time from submission to
// its final output; a final output other than success with n tasks
// completed is an error (ErrJob).
func Run(ctx context.Context, cl *client.Client, job []byte, n int) (time.Duration, error) {
	start := time.Now()
	out, err := cl.Run(ctx, job, nil)
	if err != nil {
		return 0, err
	}
	el := time.Since(start)
	if out.Status != events.OutcomeSuccess || out.Metadata.Tasks.Completed != n {
		return 0, fmt.Errorf("%w: workflow %s ended %s with %d of %d tasks", ErrJob, out.Workflow, out.Status, out.Metadata.Tasks.Completed, n)
	}
	return el, nil
}
