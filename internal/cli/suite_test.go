package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-dev/baton/pkg/events"
)

// tinySuite are bench --suite's flags scaled down to seconds.
var tinySuite = []string{"bench", "--suite", "--tasks", "200", "--rounds", "1", "--w2-tasks", "64", "--w2-sleep", "5ms",
	"--latency-runs", "10", "--idle-runs", "2", "--idle", "50ms"}

// runSuite runs Main with args, which must succeed, and returns stdout.
func runSuite(tb testing.TB, args ...string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	if err := Main(ctx, args, &out, &errOut); err != nil {
		tb.Fatalf("Main(%q): %v\nstdout:\n%s\nstderr:\n%s", args, err, out.String(), errOut.String())
	}
	return out.String()
}

// suiteRows parses the table bench --suite prints: row name → bare,
// baton and ratio as printed.
func suiteRows(tb testing.TB, out string) map[string][3]string {
	tb.Helper()
	rows := map[string][3]string{}
	in := false
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == "figure" {
			in = true
			continue
		}
		if !in || len(f) < 4 {
			continue
		}
		cells := [3]string(f[len(f)-3:])
		ok := true
		for _, c := range cells {
			if _, err := strconv.ParseFloat(c, 64); err != nil && c != "-" {
				ok = false
			}
		}
		if ok {
			rows[strings.Join(f[:len(f)-3], " ")] = cells
		}
	}
	if len(rows) == 0 {
		tb.Fatalf("no table in:\n%s", out)
	}
	return rows
}

// suiteExpect lists a mode's rows; withBare says which have a bare figure.
func suiteExpect(mode string, procs []string) map[string]bool {
	want := map[string]bool{
		"W1 throughput, tasks/s":              true,
		"W1 CPU per task, µs (all processes)": true,
		"latency warm p50, ms":                true,
		"latency warm p99, ms":                true,
		"latency after 50ms idle p50, ms":     true,
	}
	for _, p := range procs {
		want["W1 peak RSS, MiB, "+p] = p != "planner" && p != "aggregator" && p != "largest agent"
	}
	for _, s := range []string{"JOBS", "TASKS", "RESULTS", "EVENTS", "OUTPUTS", "all streams"} {
		want["W1 stored bytes per task, "+s] = s == "TASKS" || s == "RESULTS" || s == "all streams"
	}
	want["W1 throughput, tasks/s: "+shapedRow] = true
	want["W1 CPU per task, µs: "+shapedRow] = true
	want["W1 throughput: baton ÷ bare in baton's shapes"] = true
	if len(procs) > 1 {
		for _, p := range []string{"nats-server", "planner", "aggregator", "agents together", "bench process"} {
			want["W1 CPU per task, µs, "+p] = p == "nats-server" || p == "bench process"
		}
		for _, p := range []string{"nats-server", "bench process"} {
			want["W1 CPU per task, µs, "+p+": "+shapedRow] = true
		}
	}
	if mode == "embedded" {
		want["W2 wall ÷ ideal (64 × 5ms, concurrency 64)"] = true
	}
	out := map[string]bool{}
	for k, v := range want {
		out[mode+" "+k] = v
	}
	return out
}

// checkSuite checks that the table has exactly the rows of want, each
// with sane figures: positive (zero only for stored bytes, where a
// work-queue stream keeps nothing, and one process's CPU), a bare figure
// where there is one and a finite positive ratio to it.
func checkSuite(tb testing.TB, out string, want map[string]bool) {
	tb.Helper()
	rows := suiteRows(tb, out)
	for name, withBare := range want {
		r, ok := rows[name]
		if !ok {
			tb.Errorf("no row %q in:\n%s", name, out)
			continue
		}
		num := func(s string) float64 {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				tb.Errorf("row %q: %q is not a finite figure ≥ 0", name, s)
			}
			return v
		}
		// A work-queue stream may keep nothing; one process's CPU, read
		// in 10 ms ticks, may be none over a tiny run.
		zeroOK := strings.Contains(name, "stored bytes") || strings.Contains(name, "CPU per task, µs, ")
		if baton := num(r[1]); baton == 0 && !zeroOK {
			tb.Errorf("row %q: baton figure 0", name)
		}
		switch {
		case !withBare:
			if r[0] != "-" || r[2] != "-" {
				tb.Errorf("row %q: bare %q ratio %q, want none", name, r[0], r[2])
			}
		case num(r[0]) == 0:
			if !zeroOK || r[2] != "-" {
				tb.Errorf("row %q: bare 0, ratio %q", name, r[2])
			}
		case zeroOK && num(r[1]) == 0:
			// A work queue read while the bare pipeline's last acks
			// are in flight: bare a few bytes, baton none (or a
			// process's CPU under a tick).
			if num(r[2]) != 0 {
				tb.Errorf("row %q: baton 0, ratio %q", name, r[2])
			}
		default:
			if num(r[2]) == 0 {
				tb.Errorf("row %q: ratio 0", name)
			}
		}
	}
	for name := range rows {
		if _, ok := want[name]; !ok {
			tb.Errorf("unexpected row %q", name)
		}
	}
}

func TestBench_SuiteEmbedded(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("bench --suite reads /proc")
	}
	out := runSuite(t, tinySuite...)
	checkSuite(t, out, suiteExpect("embedded", []string{"this process"}))
	if !strings.Contains(out, "external mode: not run; it needs --bin DIR") {
		t.Errorf("no word on the external mode in:\n%s", out)
	}
}

func TestBench_SuiteExternal(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("bench --suite reads /proc")
	}
	if testing.Short() {
		t.Skip("builds the services and nats-server")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator),
		"./cmd/planner", "./cmd/aggregator", "./cmd/agent", "github.com/nats-io/nats-server/v2")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", build, err, out)
	}
	profiles := filepath.Join(t.TempDir(), "profiles")
	out := runSuite(t, append(tinySuite, "--bin", bin, "--agents", "2", "--concurrency", "8", "--w2-concurrency", "64", "--large", "300",
		"--profiles", profiles)...)
	want := suiteExpect("embedded", []string{"this process"})
	for k, v := range suiteExpect("external", []string{"nats-server", "planner", "aggregator", "largest agent", "bench process"}) {
		want[k] = v
	}
	checkSuite(t, out, want)
	for _, line := range []string{"large, embedded: ", "large, external: ", "planner ", "aggregator ", "agent-2 ", "CPU profiles of the external services"} {
		if !strings.Contains(out, line) {
			t.Errorf("no %q in:\n%s", line, out)
		}
	}
	// Each service of each external run wrote its CPU profile: gzipped
	// (as runtime/pprof writes them), whole.
	for _, run := range []string{"w1", "large"} {
		for _, name := range []string{"planner", "aggregator", "agent-1", "agent-2"} {
			path := filepath.Join(profiles, run+"-"+name+".pprof")
			f, err := os.Open(path)
			if err != nil {
				t.Error(err)
				continue
			}
			zr, err := gzip.NewReader(f)
			var n int64
			if err == nil {
				n, err = io.Copy(io.Discard, zr)
			}
			f.Close()
			if err != nil || n == 0 {
				t.Errorf("%s: %d bytes unzipped, %v", path, n, err)
			}
		}
	}
}

func TestBench_SuiteUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "suite flag without --suite", args: []string{"bench", "--large", "10"}, want: "--large: only with --suite"},
		{name: "no W2 tasks", args: []string{"bench", "--suite", "--w2-tasks", "0"}, want: "--w2-tasks"},
		{name: "W2 slots not shared evenly", args: []string{"bench", "--suite", "--w2-concurrency", "63"}, want: "multiple of --agents"},
		{name: "no sleep", args: []string{"bench", "--suite", "--w2-sleep", "0s"}, want: "--w2-sleep"},
		{name: "no latency runs", args: []string{"bench", "--suite", "--latency-runs", "0"}, want: "--latency-runs"},
		{name: "negative idle", args: []string{"bench", "--suite", "--idle", "-1s"}, want: "--idle"},
		{name: "negative large", args: []string{"bench", "--suite", "--large", "-1"}, want: "--large"},
		{name: "profile of the suite", args: []string{"bench", "--suite", "--cpuprofile", "x.pprof"}, want: "--cpuprofile"},
		{name: "profiles without external services", args: []string{"bench", "--suite", "--profiles", "p"}, want: "--profiles profiles the external mode's services: it needs --bin"},
		{name: "profiles without the suite", args: []string{"bench", "--profiles", "p"}, want: "--profiles: only with --suite"},
		{name: "programs missing", args: []string{"bench", "--suite", "--bin", "."}, want: "--bin lacks a program nats-server (build them with: go build -o ./ "},
		{name: "no agents", args: []string{"bench", "--agents", "0"}, want: "--agents"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runMain(t, tt.args...)
			if code != ExitUsage || !strings.Contains(stderr, tt.want) || stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d and %q", code, stdout, stderr, ExitUsage, tt.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	ms := func(xs ...int) []time.Duration {
		var ds []time.Duration
		for _, x := range xs {
			ds = append(ds, time.Duration(x)*time.Millisecond)
		}
		return ds
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // unsorted: 100 … 1
	}
	tests := []struct {
		name string
		ds   []time.Duration
		p    float64
		want time.Duration
	}{
		{name: "none", ds: nil, p: 50, want: 0},
		{name: "one", ds: ms(7), p: 99, want: 7 * time.Millisecond},
		{name: "median of an odd count", ds: ms(3, 1, 2), p: 50, want: 2 * time.Millisecond},
		{name: "median of an even count is the lower", ds: ms(4, 1, 3, 2), p: 50, want: 2 * time.Millisecond},
		{name: "p99 of 100", ds: ms(hundred...), p: 99, want: 99 * time.Millisecond},
		{name: "p99 of 10 is the largest", ds: ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), p: 99, want: 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := percentile(tt.ds, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.ds, tt.p, got, tt.want)
			}
		})
	}
}

// TestBare_ShapesAreBatons: the bare pipeline in baton's shapes sends
// baton's messages: bodies that decode as baton's task and result, and
// subjects and headers that baton's own checks accept for the task and
// result they name (the shared body names one task; each message's
// subject and headers name its own), each with its own subject and id.
func TestBare_ShapesAreBatons(t *testing.T) {
	t.Parallel()
	sh, err := newShapes("bench.x")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i := range 3 {
		m := sh.task(i)
		task, err := events.DecodeTask(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		// The body is shared: its task is noop-12345 whatever i.
		task.ID = m.Header.Get(events.HeaderTask)
		if err := sh.subj.CheckTaskMsg(m.Subject, "noop", task); err != nil {
			t.Errorf("task %d: %v", i, err)
		}
		if task.Workflow != m.Header.Get(events.HeaderWorkflow) {
			t.Errorf("task %d: workflow %q, header %q", i, task.Workflow, m.Header.Get(events.HeaderWorkflow))
		}
		r := sh.result(m.Header)
		res, err := events.DecodeResult("", r.Data)
		if err != nil {
			t.Fatal(err)
		}
		res.Task = task.ID
		body, err := events.Encode(res)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sh.subj.DecodeResultMsg(r.Subject, "", body); err != nil {
			t.Errorf("result %d: %v", i, err)
		}
		for _, k := range []string{m.Subject, m.Header.Get(events.HeaderMsgID), r.Subject, r.Header.Get(events.HeaderMsgID)} {
			if k == "" || seen[k] {
				t.Errorf("task %d: subject or message id %q empty or not its own", i, k)
			}
			seen[k] = true
		}
	}
}
