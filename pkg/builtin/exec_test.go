package builtin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/baton-dev/baton/pkg/builtin"
)

// The commands below are fixed programs; task data reaches them only on
// stdin and in BATON_* variables, never spliced into a command line.

func TestExec_Output(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		command []string
		input   string
		want    any
	}{
		{name: "input on stdin, JSON out", command: []string{"cat"}, input: `{"a":[1,2]}`, want: json.RawMessage(`{"a":[1,2]}`)},
		{name: "JSON out trimmed", command: []string{"printf", ` {"a":1} \n`}, input: `1`, want: json.RawMessage(`{"a":1}`)},
		{name: "text out trimmed", command: []string{"printf", "  hello world \n"}, input: `1`, want: "hello world"},
		{name: "no output", command: []string{"true"}, input: `1`, want: ""},
		{name: "empty input", command: []string{"cat"}, input: ``, want: ""},
		// Shell syntax in the input stays text: the shell reads it as
		// data, and neither runs it nor expands it.
		{name: "input is not run by a shell", command: []string{"sh", "-c", `read -r line; printf '%s' "$line"`},
			input: `"$(echo injected); *"`, want: json.RawMessage(`"$(echo injected); *"`)},
		{name: "input through cat unchanged", command: []string{"cat"}, input: `"$(echo injected) | rm -rf ~ ; *"`,
			want: json.RawMessage(`"$(echo injected) | rm -rf ~ ; *"`)},
		// Arguments are passed as they are, without a shell in between.
		{name: "arguments verbatim", command: []string{"printf", "%s|%s", "$HOME", "a b;c *"}, input: `1`, want: "$HOME|a b;c *"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := builtin.Exec(tc.command).Handle(context.Background(), task(tc.input))
			if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			switch want := tc.want.(type) {
			case json.RawMessage:
				if got, ok := out.(json.RawMessage); !ok || string(got) != string(want) {
					t.Errorf("got %v (%T), want JSON %s", out, out, want)
				}
			default:
				if out != tc.want {
					t.Errorf("got %q (%T), want %q", out, out, tc.want)
				}
			}
		})
	}
}

func TestExec_Environment(t *testing.T) {
	t.Parallel()
	out, err := builtin.Exec([]string{"env"}).Handle(context.Background(), task(`1`))
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	text, ok := out.(string)
	if !ok {
		t.Fatalf("got %T, want the text env prints", out)
	}
	env := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	for k, want := range map[string]string{"BATON_WORKFLOW": "wf", "BATON_TASK": "t-1", "BATON_STEP": "s", "BATON_ATTEMPT": "2"} {
		if got, ok := env[k]; !ok || got != want {
			t.Errorf("%s=%q (set %v), want %q", k, got, ok, want)
		}
	}
	if _, ok := env["PATH"]; !ok {
		t.Error("PATH is not passed on: the command gets the agent's environment")
	}
}

func TestExec_Failure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		command   []string
		permanent bool
		exitCode  int    // 0: not an exit status
		mention   string // in the error: what the command said on stderr
	}{
		{name: "exit 65 is permanent", command: []string{"sh", "-c", "echo bad input >&2; exit 65"}, permanent: true, exitCode: 65, mention: "bad input"},
		{name: "exit 1 is retried", command: []string{"sh", "-c", "echo flaky >&2; exit 1"}, exitCode: 1, mention: "flaky"},
		{name: "exit 2 is retried", command: []string{"sh", "-c", "exit 2"}, exitCode: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := builtin.Exec(tc.command).Handle(context.Background(), task(`1`))
			if out != nil {
				t.Errorf("result %v, want none", out)
			}
			if tc.permanent {
				wantPermanent(t, err)
			} else {
				wantRetryable(t, err)
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != tc.exitCode {
				t.Errorf("error %v, want exit status %d", err, tc.exitCode)
			}
			if err != nil && !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
		})
	}
}

func TestExec_StderrTail(t *testing.T) {
	t.Parallel()
	// 100 words of 6 bytes on stderr: only the last 512 bytes are kept.
	_, err := builtin.Exec([]string{"sh", "-c", `i=0; while [ $i -lt 100 ]; do printf 'x%04d ' $i; i=$((i+1)); done >&2; exit 1`}).
		Handle(context.Background(), task(`1`))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if !strings.Contains(msg, "x0099") || strings.Contains(msg, "x0000") || len(msg) > 700 {
		t.Errorf("error of %d bytes %q: want the tail of stderr only", len(msg), msg)
	}
}

func TestExec_NoSuchProgram(t *testing.T) {
	t.Parallel()
	_, err := builtin.Exec([]string{"/nonexistent/baton-test-program"}).Handle(context.Background(), task(`1`))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v, want one wrapping fs.ErrNotExist", err)
	}
}

func TestExec_Context(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		command []string
	}{
		{name: "the command", command: []string{"sleep", "8"}},
		// The shell is killed, its child sleep holds stdout open: the
		// handler must not wait for it.
		{name: "a child holding stdout", command: []string{"sh", "-c", "sleep 8; echo late"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := builtin.Exec(tc.command).Handle(ctx, task(`1`))
				done <- err
			}()
			select {
			case err := <-done:
				wantRetryable(t, err)
			case <-time.After(5 * time.Second):
				t.Fatal("the handler outlived its context by seconds")
			}
		})
	}
}
