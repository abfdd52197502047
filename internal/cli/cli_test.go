package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/jetstream/auth"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go"
)

// runMain runs Main with args and returns its exit status and output.
func runMain(tb testing.TB, args ...string) (code int, stdout, stderr string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err := Main(ctx, args, &out, &errOut)
	var ee *ExitError
	if err != nil && !errors.As(err, &ee) {
		tb.Fatalf("Main(%q) returned %T %v, want an *ExitError", args, err, err)
	}
	return ExitCode(err), out.String(), errOut.String()
}

func TestMain_Help(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		want   []string // on stdout
		absent []string // not on stdout
	}{
		{name: "bare", args: nil, want: []string{"Usage:", "baton [command]", "Exit status:", "submit", "completion"}},
		{name: "-h", args: []string{"-h"}, want: []string{"Usage:", "Exit status:", "--server", "--prefix"}},
		{name: "help", args: []string{"help"}, want: []string{"Usage:", "Exit status:"}},
		{name: "help submit", args: []string{"help", "submit"}, want: []string{"baton submit FILE|-", "--follow", "Examples:"}},
		{name: "submit -h", args: []string{"submit", "-h"}, want: []string{"baton submit FILE|-", "--follow", "--server"}},
		{name: "status -h", args: []string{"status", "-h"}, want: []string{"baton status [WORKFLOW]", "--json", "--server", "--prefix"},
			absent: []string{"--replicas", "--ack-wait", "--agent-ttl", "--http", "--log-level", "--log-json"}},
		{name: "cancel -h", args: []string{"cancel", "--help"}, want: []string{"--all", "every unfinished task of WORKFLOW"}},
		{name: "up -h", args: []string{"up", "-h"}, want: []string{"--replicas", "--ack-wait", "--agent-ttl", "--http", "--log-level", "--data"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runMain(t, tt.args...)
			if code != ExitOK || stderr != "" {
				t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(stdout, a) {
					t.Errorf("stdout mentions %q:\n%s", a, stdout)
				}
			}
		})
	}
}

func TestMain_Version(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--version"}, {"version"}} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			code, stdout, _ := runMain(t, args...)
			if code != ExitOK || !strings.HasPrefix(stdout, "baton version ") || !strings.Contains(stdout, ", commit ") {
				t.Errorf("exit %d, stdout %q; want 0 and \"baton version V, commit C\"", code, stdout)
			}
		})
	}
}

func TestVersionOf(t *testing.T) {
	t.Parallel()
	settings := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	tests := []struct {
		name string
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		{name: "no build info", want: "0.1.0, commit unknown"},
		{name: "devel without vcs", info: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, ok: true, want: "0.1.0, commit unknown"},
		{name: "devel modified", ok: true, info: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
			Settings: settings("vcs.revision", "4f2c1d0", "vcs.modified", "true")}, want: "0.1.0, commit 4f2c1d0 (modified)"},
		{name: "tagged clean", ok: true, info: &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"},
			Settings: settings("vcs.revision", "abc123", "vcs.modified", "false")}, want: "v1.2.3, commit abc123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := versionOf(tt.info, tt.ok); got != tt.want {
				t.Errorf("versionOf = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMain_Usage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string // on stderr
	}{
		{name: "unknown command", args: []string{"frobnicate"}, want: `baton: unknown command "frobnicate"`},
		{name: "misspelt command", args: []string{"stauts"}, want: "did you mean status?"},
		{name: "unknown help topic", args: []string{"help", "frobnicate"}, want: `unknown command "frobnicate"`},
		{name: "unknown flag", args: []string{"status", "--replicas", "3"}, want: "unknown flag: --replicas"},
		{name: "bad flag value", args: []string{"watch", "--every", "soon"}, want: "--every"},
		{name: "missing argument", args: []string{"results"}, want: "Run 'baton results --help' for usage."},
		{name: "extra argument", args: []string{"status", "a", "b"}, want: "baton: "},
		{name: "pause nothing", args: []string{"pause"}, want: "pause a WORKFLOW, or the lanes of a task type with --type"},
		{name: "pause both", args: []string{"pause", "wf", "--type", "http"}, want: "not both"},
		{name: "reprioritize without --to", args: []string{"reprioritize", "wf"}, want: "--to"},
		{name: "resume lanes with a token", args: []string{"resume", "--type", "http", "--token", "cp1.abc"}, want: "--token applies to a workflow"},
		{name: "pause with a token", args: []string{"pause", "wf", "--token", "cp1.abc"}, want: "unknown flag: --token"},
		{name: "crash no agent", args: []string{"agents", "crash"}, want: "Run 'baton agents crash --help' for usage."},
		{name: "checkpoint of nothing", args: []string{"checkpoint"}, want: "Run 'baton checkpoint --help' for usage."},
		{name: "bad --types", args: []string{"streams", "--types", "a.b"}, want: "--types"},
		{name: "bad --listen", args: []string{"up", "--listen", "nowhere"}, want: "--listen"},
		{name: "resolve how?", args: []string{"resolve", "wf"}, want: "one of --accept, --retry-failed or --fail"},
		{name: "resolve two ways", args: []string{"resolve", "wf", "--accept", "--fail"}, want: "one of --accept"},
		{name: "--collect without --follow", args: []string{"results", "wf", "--collect", "batch"}, want: "need --follow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runMain(t, tt.args...)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d (stderr %q)", code, ExitUsage, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q lacks %q", stderr, tt.want)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want int
	}{
		{name: "nil", err: nil, want: ExitOK},
		{name: "exit error", err: &ExitError{Code: ExitConflict, Err: errors.New("x")}, want: ExitConflict},
		{name: "usage", err: usagef("bad"), want: ExitUsage},
		{name: "workflow failed", err: fmt.Errorf("wf: %w", ErrWorkflowFailed), want: ExitFailed},
		{name: "no final output", err: fmt.Errorf("client: %w", client.ErrNoFinal), want: ExitFailed},
		{name: "other", err: errors.New("disk full"), want: ExitFailed},
		{name: "unknown workflow", err: fmt.Errorf("client: wf: %w", client.ErrUnknownWorkflow), want: ExitNotFound},
		{name: "not found", err: events.ErrNotFound, want: ExitNotFound},
		{name: "control 404", err: &events.ControlError{Code: 404, Message: "unknown task"}, want: ExitNotFound},
		{name: "invalid job", err: fmt.Errorf("rejected: %w", &events.ValidationError{Field: "steps", Reason: "empty"}), want: ExitRejected},
		{name: "bad request", err: fmt.Errorf("client: %w", events.ErrBadRequest), want: ExitRejected},
		{name: "control 400", err: &events.ControlError{Code: 400, Message: "name a workflow"}, want: ExitRejected},
		{name: "conflict", err: events.ErrConflict, want: ExitConflict},
		{name: "control 409", err: &events.ControlError{Code: 409, Message: "finished"}, want: ExitConflict},
		{name: "no planner", err: fmt.Errorf("client: status: %w", client.ErrNoPlanner), want: ExitUnavailable},
		{name: "unavailable", err: events.ErrUnavailable, want: ExitUnavailable},
		{name: "control 503", err: &events.ControlError{Code: 503, Message: "stopping"}, want: ExitUnavailable},
		{name: "no servers", err: fmt.Errorf("connect: %w", nats.ErrNoServers), want: ExitUnavailable},
		{name: "deadline", err: fmt.Errorf("client: %w", context.DeadlineExceeded), want: ExitUnavailable},
		{name: "needs attention", err: fmt.Errorf("client: wf: %w", client.ErrNeedsAttention), want: ExitAttention},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := ExitCode(tt.err); got != tt.want {
				t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestMain_Completion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		shell string
		want  string
	}{
		{shell: "bash", want: "__start_baton"},
		{shell: "zsh", want: "#compdef baton"},
		{shell: "fish", want: "complete -c baton"},
		{shell: "powershell", want: "Register-ArgumentCompleter"},
	}
	for _, tt := range tests {
		t.Run(tt.shell, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runMain(t, "completion", tt.shell)
			if code != ExitOK || !strings.Contains(stdout, tt.want) {
				t.Errorf("exit %d (stderr %q); script lacks %q", code, stderr, tt.want)
			}
		})
	}
}

func TestMain_Streams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		args  []string
		lanes []string // nil: only count
		count int
	}{
		{name: "types a,b", args: []string{"--types", "a,b"}, lanes: []string{
			"lane_a_1", "lane_a_2", "lane_a_3", "lane_a_4", "lane_a_5",
			"lane_b_1", "lane_b_2", "lane_b_3", "lane_b_4", "lane_b_5"}},
		{name: "repeated --types", args: []string{"--types", "a", "--types", "b"}, count: 10},
		{name: "built-in types", args: nil, count: 7 * len(events.Priorities)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runMain(t, append([]string{"streams"}, tt.args...)...)
			if code != ExitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			type consumer struct {
				Durable string `json:"durable_name"`
			}
			var got struct {
				Streams []struct{ Name string }   `json:"streams"`
				Buckets []struct{ Bucket string } `json:"buckets"`
				Planner consumer                  `json:"planner"`
				Lanes   []consumer                `json:"lanes"`
			}
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, stdout)
			}
			if len(got.Streams) == 0 || len(got.Buckets) == 0 || got.Planner.Durable != streams.PlannerConsumer {
				t.Errorf("streams %v, buckets %v, planner %q: want all of them", got.Streams, got.Buckets, got.Planner.Durable)
			}
			var names []string
			for _, l := range got.Lanes {
				names = append(names, l.Durable)
			}
			if tt.lanes != nil && strings.Join(names, " ") != strings.Join(tt.lanes, " ") {
				t.Errorf("lanes %v, want %v", names, tt.lanes)
			}
			if tt.lanes == nil && len(names) != tt.count {
				t.Errorf("%d lanes, want %d", len(names), tt.count)
			}
		})
	}
}

// deployment is a server with baton's streams and, for the test to fill,
// its workflows bucket and outputs stream; no planner runs.
type deployment struct {
	url string
	kv  interface {
		Put(ctx context.Context, key string, value []byte) (uint64, error)
	}
	publish func(subject string, data []byte)
}

func newDeployment(t *testing.T) *deployment {
	t.Helper()
	srv := natstest.Start(t)
	cfg := streams.Config{}
	_, js := natstest.Ensure(t, srv, cfg)
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, cfg.WorkflowsBucket())
	if err != nil {
		t.Fatal(err)
	}
	return &deployment{url: srv.ClientURL(), kv: kv, publish: func(subject string, data []byte) {
		t.Helper()
		if _, err := js.Publish(ctx, subject, data); err != nil {
			t.Fatal(err)
		}
	}}
}

// workflow records a workflow and, unless final is "", its final output
// of that status.
func (d *deployment) workflow(t *testing.T, id, status, final string) {
	t.Helper()
	rec, err := json.Marshal(events.Workflow{ID: id, Status: status})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.kv.Put(context.Background(), id, rec); err != nil {
		t.Fatal(err)
	}
	if final == "" {
		return
	}
	out, err := json.Marshal(events.Output{Workflow: id, Kind: events.OutputFinal, Status: final,
		Progress: events.Progress{Done: 2, Total: 2, Percent: 100}, Data: json.RawMessage(`{"n":2}`)})
	if err != nil {
		t.Fatal(err)
	}
	d.publish(streams.Config{}.Subjects().Output(id, events.OutputFinal), out)
}

func TestMain_Results(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	d.workflow(t, "wf-success", events.WorkflowCompleted, events.OutcomeSuccess)
	d.workflow(t, "wf-partial", events.WorkflowCompleted, events.OutcomePartial)
	d.workflow(t, "wf-failed", events.WorkflowFailed, events.OutcomeFailed)
	d.workflow(t, "wf-running", events.WorkflowRunning, "")
	d.workflow(t, "wf-attention", events.WorkflowNeedsAttention, "")
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // "": nothing
		stderr string // "": nothing
	}{
		{name: "unknown", args: []string{"results", "nope", "--server", d.url}, code: ExitNotFound, stderr: "unknown workflow"},
		{name: "unknown followed", args: []string{"results", "nope", "--follow", "--server", d.url}, code: ExitNotFound, stderr: "unknown workflow"},
		{name: "not an id", args: []string{"results", "a.b", "--server", d.url}, code: ExitRejected, stderr: "not a workflow id"},
		{name: "not finished", args: []string{"--server", d.url, "results", "wf-running"}, code: ExitFailed, stderr: "is running: no final output yet"},
		{name: "needs attention", args: []string{"results", "wf-attention", "--server", d.url}, code: ExitAttention, stderr: "needs attention: resolve it"},
		{name: "bad collect", args: []string{"results", "wf-success", "--follow", "--collect", "lazy", "--server", d.url}, code: ExitRejected, stderr: `collect "lazy"`},
		{name: "success", args: []string{"results", "wf-success", "--server", d.url}, code: ExitOK, stdout: `"status": "success"`},
		{name: "partial", args: []string{"results", "--server", d.url, "wf-partial"}, code: ExitOK, stdout: `"status": "partial"`},
		{name: "failed", args: []string{"results", "wf-failed", "--server", d.url}, code: ExitFailed, stdout: `"status": "failed"`, stderr: "workflow wf-failed ended failed"},
		{name: "failed followed", args: []string{"results", "wf-failed", "--follow", "--server", d.url}, code: ExitFailed, stdout: `"status": "failed"`, stderr: "ended failed"},
		{name: "success followed", args: []string{"results", "--follow", "wf-success", "--server", d.url}, code: ExitOK, stdout: `"status": "success"`},
		{name: "other prefix", args: []string{"results", "wf-success", "--server", d.url, "--prefix", "other"}, code: ExitFailed, stderr: "baton: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runMain(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if tt.stdout == "" && stdout != "" || !strings.Contains(stdout, tt.stdout) {
				t.Errorf("stdout %q, want %q", stdout, tt.stdout)
			}
			if tt.stderr == "" && stderr != "" || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr %q, want %q", stderr, tt.stderr)
			}
			if tt.stderr != "" && !strings.HasPrefix(stderr, "baton: ") {
				t.Errorf("stderr %q does not start with \"baton: \"", stderr)
			}
		})
	}
}

// TestMain_Checkpoint: baton checkpoint prints a workflow's last
// checkpoint; a workflow never paused has none and an unknown one is not
// found (exit 3 both).
func TestMain_Checkpoint(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	d.workflow(t, "wf-never", events.WorkflowRunning, "")
	rec, err := json.Marshal(events.Workflow{ID: "wf-paused", Status: events.WorkflowPaused,
		Checkpoint: &events.CheckpointRecord{Seq: 2, Status: events.WorkflowPaused, Done: 3, Pending: 4, Digest: "ab12"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.kv.Put(context.Background(), "wf-paused", rec); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		wf, says string
		code     int
	}{
		{"wf-paused", `"digest": "ab12"`, ExitOK},
		{"wf-never", "has no checkpoint", ExitNotFound},
		{"nope", "unknown workflow", ExitNotFound},
	} {
		code, stdout, stderr := runMain(t, "checkpoint", tc.wf, "--server", d.url)
		if code != tc.code || !strings.Contains(stdout+stderr, tc.says) {
			t.Errorf("checkpoint %s: exit %d, %q %q; want %d and %q", tc.wf, code, stdout, stderr, tc.code, tc.says)
		}
	}
}

// TestMain_FlagsAnywhere checks that flags parse before, between and after
// the positional arguments: with no planner running, a status request
// that was parsed right ends unavailable, not as a usage error.
func TestMain_FlagsAnywhere(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	tests := []struct {
		name string
		args []string
		code int
	}{
		{name: "status --json WF", args: []string{"status", "--json", "wf", "--server", d.url}, code: ExitUnavailable},
		{name: "status WF --json", args: []string{"status", "wf", "--json", "--server", d.url}, code: ExitUnavailable},
		{name: "root flag first", args: []string{"--server", d.url, "status", "wf", "--json"}, code: ExitUnavailable},
		{name: "flag=value", args: []string{"status", "--server=" + d.url, "wf"}, code: ExitUnavailable},
		{name: "results WF --follow", args: []string{"results", "nope", "--follow", "--server", d.url}, code: ExitNotFound},
		{name: "pause --type after", args: []string{"pause", "--server", d.url, "--type", "http", "--until", "1m"}, code: ExitUnavailable},
		{name: "no server", args: []string{"status", "wf", "--server", "nats://127.0.0.1:1"}, code: ExitUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, _, stderr := runMain(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, stderr)
			}
		})
	}
}

func TestMain_CompleteWorkflows(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	for _, id := range []string{"wf-1", "wf-2", "other"} {
		d.workflow(t, id, events.WorkflowRunning, "")
	}
	if _, err := d.kv.Put(context.Background(), "wf-1.spec", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{name: "all", args: []string{"results", ""}, want: []string{"other", "wf-1", "wf-2"}},
		{name: "prefix", args: []string{"status", "wf"}, want: []string{"wf-1", "wf-2"}},
		{name: "second argument", args: []string{"stop", "wf-1", ""}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"__complete", "--server", d.url}, tt.args...)
			code, stdout, stderr := runMain(t, args...)
			if code != ExitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			got, directive := lines[:len(lines)-1], lines[len(lines)-1]
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("completions %q, want %q", got, tt.want)
			}
			if directive != ":4" { // cobra.ShellCompDirectiveNoFileComp
				t.Errorf("directive %q, want :4", directive)
			}
		})
	}
}

func TestPrintStatus_Headline(t *testing.T) {
	t.Parallel()
	done := events.WorkflowView{ID: "wf-done", Status: events.WorkflowCompleted, Progress: 100, Completed: 13,
		Counts: events.Counts{Total: 13, Completed: 13}}
	running := events.WorkflowView{ID: "wf-run", Status: events.WorkflowRunning, Progress: 40, Active: 2, Completed: 4,
		Counts: events.Counts{Total: 10, Completed: 4}}
	tests := []struct {
		name string
		snap events.Snapshot
		wf   string
		want string
	}{
		{name: "only finished", snap: events.Snapshot{Workflows: []events.WorkflowView{done}},
			want: "open workflows: 0 — progress 0.0%  active 0  completed 0"},
		{name: "one open", snap: events.Snapshot{Open: 1, Progress: 40, Active: 2, Completed: 4, Workflows: []events.WorkflowView{done, running}},
			want: "open workflows: 1 — progress 40.0%  active 2  completed 4"},
		{name: "one workflow", wf: "wf-done", snap: events.Snapshot{Progress: 100, Completed: 13, Workflows: []events.WorkflowView{done}},
			want: "workflow wf-done (completed) — progress 100.0%  active 0  completed 13"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			if err := printStatus(&b, &tt.snap, tt.wf); err != nil {
				t.Fatal(err)
			}
			if first, _, _ := strings.Cut(b.String(), "\n"); !strings.HasPrefix(first, tt.want) {
				t.Errorf("headline %q, want it to start %q", first, tt.want)
			}
		})
	}
}

// TestPrintStatus_SaysWhatIsLeftOut: a status whose lists were cut says
// so below them, with how to see the rest.
func TestPrintStatus_SaysWhatIsLeftOut(t *testing.T) {
	t.Parallel()
	snap := events.Snapshot{Open: 1005, Workflows: []events.WorkflowView{{ID: "wf-1", Status: events.WorkflowRunning}},
		Totals: events.WorkflowTotals{Total: 1005, Running: 1005},
		Page:   events.ListPage{Total: 1005, Limit: 1, Omitted: 1004, Next: 1, Note: "listing 1 of 1005 workflows"},
		Agents: events.AgentStats{Omitted: 7}, LanesOmitted: 3, Truncated: true}
	var b bytes.Buffer
	if err := printStatus(&b, &snap, ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"open workflows: 1005", "workflows: 1005 — 1005 running", "… listing 1 of 1005 workflows",
		"… 3 lanes left out", "… 7 agents left out"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, b.String())
		}
	}
}

// TestStatus_PagingFlagsNeedNoWorkflow: --offset, --limit and --status list
// workflows, so they make no sense beside one.
func TestStatus_PagingFlagsNeedNoWorkflow(t *testing.T) {
	t.Parallel()
	code, _, stderr := runMain(t, "status", "wf-1", "--limit", "5")
	if code != ExitUsage || !strings.Contains(stderr, "without a WORKFLOW") {
		t.Errorf("exit %d, stderr %q; want a usage error", code, stderr)
	}
}

// TestMain_Credentials: the connection flags every command takes reach the
// server: with the right user and password a command gets through (here to
// "unknown workflow"), without them it is refused, and the error never
// shows the password.
func TestMain_Credentials(t *testing.T) {
	t.Parallel()
	srv := natstest.StartWithAuth(t, map[string]string{"bob": "hunter2"}, nil)
	natstest.Ensure(t, srv, streams.Config{}, nats.UserInfo("bob", "hunter2"))
	code, _, stderr := runMain(t, "results", "nope", "--server", srv.ClientURL(), "--user", "bob", "--password", "hunter2")
	if code != ExitNotFound || !strings.Contains(stderr, "unknown workflow") {
		t.Fatalf("with credentials: exit %d, %q; want %d, unknown workflow", code, stderr, ExitNotFound)
	}
	code, _, stderr = runMain(t, "results", "nope", "--server", srv.ClientURL(), "--user", "bob", "--password", "wrong-pw")
	if code == 0 || code == ExitNotFound || !strings.Contains(stderr, "uthorization") || strings.Contains(stderr, "wrong-pw") {
		t.Fatalf("with a wrong password: exit %d, %q", code, stderr)
	}
	for _, cmd := range append(newRoot(nil).Commands(), nil) {
		args := []string{"--help"}
		if cmd != nil {
			args = []string{cmd.Name(), "--help"}
		}
		code, help, _ := runMain(t, args...)
		if code != 0 {
			t.Fatalf("%q exit %d", args, code)
		}
		for _, flag := range []string{"--context", "--server", "--creds", "--nkey", "--user", "--password", "--tls-ca", "--tls-cert", "--tls-key", "--tls-first"} {
			if !strings.Contains(help, flag) {
				t.Errorf("%q does not list %s", args, flag)
			}
		}
	}
}

// TestMain_Context: a nats CLI context, saved by the nats CLI, named by
// --context or NATS_CONTEXT gives the server and the credentials (the
// default --server does not replace its URL); a flag given replaces the
// context's value; an unknown context is a usage error naming it. Not
// parallel: the contexts live where XDG_CONFIG_HOME says.
func TestMain_Context(t *testing.T) {
	for _, env := range []string{"NATS_CONTEXT", "NATS_URL", "NATS_USER", "NATS_PASSWORD", "NATS_CREDS", "NATS_NKEY"} {
		t.Setenv(env, "")
	}
	srv := natstest.StartWithAuth(t, map[string]string{"bob": "hunter2"}, nil)
	natstest.Ensure(t, srv, streams.Config{}, nats.UserInfo("bob", "hunter2"))
	natstest.SaveContexts(t, map[string][]string{
		"bob":      {"--server", srv.ClientURL(), "--user", "bob", "--password", "hunter2"},
		"wrong-pw": {"--server", srv.ClientURL(), "--user", "bob", "--password", "ctx-guess"},
	})
	for _, tc := range []struct {
		name string
		env  string // NATS_CONTEXT
		args []string
		code int
		says string // on stderr
	}{
		{name: "--context", args: []string{"--context", "bob"}, code: ExitNotFound, says: "unknown workflow"},
		{name: "NATS_CONTEXT", env: "bob", code: ExitNotFound, says: "unknown workflow"},
		{name: "--password replaces the context's", args: []string{"--context", "wrong-pw", "--password", "hunter2"}, code: ExitNotFound, says: "unknown workflow"},
		{name: "the context's wrong password", args: []string{"--context", "wrong-pw"}, code: ExitFailed, says: "uthorization"},
		{name: "unknown context", env: "bob", args: []string{"--context", "nope"}, code: ExitUsage, says: `unknown context "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NATS_CONTEXT", tc.env)
			code, _, stderr := runMain(t, append([]string{"results", "nope"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.says) {
				t.Fatalf("exit %d, %q; want %d, %q", code, stderr, tc.code, tc.says)
			}
			for _, pw := range []string{"hunter2", "ctx-guess"} {
				if strings.Contains(stderr, pw) {
					t.Fatalf("stderr %q shows a password", stderr)
				}
			}
		})
	}
}

// TestMain_UpAuth runs `baton up --auth --tls`: the embedded server admits
// only the roles' nkeys it wrote, over TLS it verifies with the CA it
// wrote; a submitter submits and follows with its own, a viewer reads
// status, a client without credentials or without the CA is refused.
func TestMain_UpAuth(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	data := t.TempDir()
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- Main(ctx, []string{"up", "--auth", "--tls", "--data", data, "--listen", addr, "--http", "", "--agents", "1"}, io.Discard, io.Discard)
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("up: %v", err)
		}
	}()
	dir := filepath.Join(data, "auth")
	as := func(role string) []string {
		return []string{"--server", "nats://" + addr, "--nkey", filepath.Join(dir, auth.SeedFile(role)), "--inbox-prefix", auth.InboxPrefix(role),
			"--tls-ca", filepath.Join(data, "tls", auth.CAFile)}
	}
	natstest.Eventually(t, 30*time.Second, "the server to admit the viewer", func() bool {
		code, _, _ := runMain(t, append([]string{"status"}, as(auth.Viewer)...)...)
		return code == ExitOK
	})
	code, stdout, stderr := runMain(t, append([]string{"submit", "--follow", filepath.Join("..", "..", "examples", "parallel.json")}, as(auth.Submitter)...)...)
	if code != ExitOK || !strings.Contains(stdout, `"status": "success"`) {
		t.Fatalf("submit as submitter: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, _, stderr = runMain(t, "status", "--server", "nats://"+addr, "--tls-ca", filepath.Join(data, "tls", auth.CAFile))
	if code == ExitOK || !strings.Contains(strings.ToLower(stderr), "authorization") {
		t.Fatalf("status without credentials: exit %d, stderr %q; want an authorization error", code, stderr)
	}
	viewer := as(auth.Viewer)
	code, _, stderr = runMain(t, append([]string{"status"}, viewer[:len(viewer)-2]...)...)
	if code == ExitOK || !strings.Contains(strings.ToLower(stderr), "tls") {
		t.Fatalf("status without --tls-ca: exit %d, stderr %q; want a TLS error", code, stderr)
	}
	code, _, stderr = runMain(t, append([]string{"submit", filepath.Join("..", "..", "examples", "parallel.json")}, as(auth.Viewer)...)...)
	if code != ExitRejected || !strings.Contains(stderr, "Permissions Violation") {
		t.Fatalf("submit as viewer: exit %d, stderr %q; want %d and the server's permissions violation", code, stderr, ExitRejected)
	}
}

// TestMain_Demo runs the README's first command: both example jobs
// succeed, and the start says nothing of the agents' and the aggregator's
// wait for the planner to create the streams (expected, so no warning),
// nor any error. (Other warnings are shown, not failed on: a machine under
// load may make a fetch slow enough to be one.)
func TestMain_Demo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	if err := Main(ctx, []string{"demo"}, &out, &errOut); err != nil {
		t.Fatalf("demo: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), `"status": "success"`) || !strings.Contains(out.String(), "× faster") {
		t.Fatalf("demo printed:\n%s", out.String())
	}
	if e := errOut.String(); strings.Contains(e, "waiting for JetStream") || strings.Contains(e, "level=ERROR") {
		t.Fatalf("demo said on stderr:\n%s", e)
	} else if e != "" {
		t.Logf("stderr:\n%s", e)
	}
}
