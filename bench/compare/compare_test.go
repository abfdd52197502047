package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// programs builds nats-server (the version baton requires) into a temporary directory and finds
// redis-server; without redis-server the test is skipped, except in CI,
// which installs it.
func programs(t *testing.T) (natsServer, redisServer string) {
	t.Helper()
	redisServer, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI installs redis-server: %v", err)
		}
		t.Skipf("no redis-server: %v", err)
	}
	dir := t.TempDir()
	// From baton's module, which requires nats-server.
	build := exec.Command("go", "build", "-o", dir+"/", "github.com/nats-io/nats-server/v2")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build nats-server: %v\n%s", err, out)
	}
	return filepath.Join(dir, "nats-server"), redisServer
}

// TestCompare_Small runs every system once with a few tasks, and checks
// that each has its row with a rate and CPU per task, and that each kind
// is compared at its fastest number of producers.
func TestCompare_Small(t *testing.T) {
	natsServer, redisServer := programs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := mainErr(ctx, []string{"--tasks", "300", "--rounds", "1", "--producers", "1,3",
		"--nats-server", natsServer, "--redis-server", redisServer}, &out)
	if err != nil {
		t.Fatalf("compare: %v\n%s", err, out.String())
	}
	o, _ := parse([]string{"--producers", "1,3", "--nats-server", natsServer, "--redis-server", redisServer})
	sys := systems(o)
	if len(sys) != 1+4*2 {
		t.Fatalf("%d systems, want baton and 4 kinds × 2 producer counts", len(sys))
	}
	table := out.String()[strings.Index(out.String(), "system (medians)"):]
	rate := map[string]float64{}
	for _, s := range sys {
		line := lineOf(table, s.name+" ")
		f := strings.Fields(strings.TrimPrefix(line, s.name))
		if len(f) != 3 {
			t.Fatalf("row of %q: %q\n%s", s.name, line, out.String())
		}
		for i, v := range f {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil || x <= 0 {
				t.Errorf("row of %q, column %d: %q is not a positive figure", s.name, i+1, v)
			}
		}
		rate[s.name], _ = strconv.ParseFloat(f[0], 64)
		if s.name == sys[0].name && f[2] != "1.00" {
			t.Errorf("baton ÷ baton is %s", f[2])
		}
	}
	best := table[strings.Index(table, "at its fastest"):]
	kinds := map[string]bool{}
	for _, s := range sys[1:] {
		kinds[s.kind] = true
	}
	if len(kinds) != 4 {
		t.Errorf("kinds %v, want 4", kinds)
	}
	for kind := range kinds {
		line := lineOf(best, kind)
		one, three := kind+", 1 producers", kind+", 3 producers"
		fastest := one
		if rate[three] > rate[one] {
			fastest = three
		}
		if !strings.HasSuffix(line, "("+fastest+")") {
			t.Errorf("fastest of %q: %q, want %s (%v tasks/s, beside %v)", kind, line, fastest, rate[fastest], rate[one]+rate[three]-rate[fastest])
		}
	}
}

// lineOf returns the first line of text that starts with prefix.
func lineOf(text, prefix string) string {
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, prefix) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// TestCompare_Rejects checks that each bad flag is a usage error, before
// any broker starts.
func TestCompare_Rejects(t *testing.T) {
	for _, args := range [][]string{
		{"extra"},
		{"--tasks", "0"},
		{"--tasks", "3", "--producers", "4"},
		{"--tasks", "1000001"},
		{"--rounds", "0"},
		{"--agents", "0"},
		{"--slots", "0"},
		{"--producers", ""},
		{"--producers", "4,x"},
		{"--producers", "0"},
		{"--producers", "2000"},
		{"--nats-server", "/nonexistent/nats-server"},
		{"--redis-server", "/nonexistent/redis-server"},
		{"--no-such-flag"},
	} {
		_, err := parse(append([]string{"--nats-server", "go", "--redis-server", "go"}, args...))
		if !errors.Is(err, errUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
	if _, err := parse([]string{"--nats-server", "go", "--redis-server", "go"}); err != nil {
		t.Errorf("defaults with programs found: %v", err)
	}
}

// TestCompare_ACountOffIsAnError checks that a system which handles
// another number of tasks than it was given fails the run.
func TestCompare_ACountOffIsAnError(t *testing.T) {
	c := newCounter(2)
	c.handled()
	if err := c.check(); !errors.Is(err, errCount) {
		t.Errorf("1 of 2 handled: %v", err)
	}
	c.handled()
	if err := c.wait(context.Background(), nil); err != nil {
		t.Errorf("2 of 2 handled: %v", err)
	}
	if err := c.check(); err != nil {
		t.Errorf("2 of 2 handled: %v", err)
	}
	c.handled()
	if err := c.check(); !errors.Is(err, errCount) {
		t.Errorf("3 of 2 handled (one twice): %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := newCounter(1).wait(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("none handled, cancelled: %v", err)
	}
	failed := make(chan error, 1)
	failed <- errors.New("enqueue refused")
	if err := newCounter(1).wait(context.Background(), failed); err == nil || err.Error() != "enqueue refused" {
		t.Errorf("a producer failed: %v", err)
	}
}
