package agent

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// TestOutage_LogsOnceEachWay: a hundred failures in a row make one line,
// their end one more, and the next outage is logged again.
func TestOutage_LogsOnceEachWay(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	var o outage
	boom := errors.New("nats: no responders available for request")
	for range 100 {
		o.fail(log, "fetching tasks", boom, "lane", "lane_x_1")
	}
	o.ok(log, "fetching tasks")
	o.ok(log, "fetching tasks")
	o.fail(log, "fetching tasks", boom)
	s := out.String()
	if n := strings.Count(s, "fetching tasks fails"); n != 2 {
		t.Errorf("%d failure lines, want 2:\n%s", n, s)
	}
	if n := strings.Count(s, "fetching tasks works again"); n != 1 || !strings.Contains(s, "failures=100") {
		t.Errorf("recovery lines %d, want 1 with failures=100:\n%s", n, s)
	}
}
