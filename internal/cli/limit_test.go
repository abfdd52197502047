package cli

import (
	"strings"
	"testing"
)

// TestMain_Limit: set, get, ls and clear a per-type cap against a real
// server, in sequence, with the exit status of each refusal.
func TestMain_Limit(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	for _, step := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{name: "get before set", args: []string{"limit", "get", "--type", "http"}, code: ExitNotFound, stderr: "type http: no limit set"},
		{name: "ls empty", args: []string{"limit", "ls"}, code: ExitOK, stdout: "[]"},
		{name: "set", args: []string{"limit", "set", "--type", "http", "3"}, code: ExitOK, stdout: `"limit": 3`},
		{name: "set another", args: []string{"limit", "set", "2", "--type", "db"}, code: ExitOK, stdout: `"type": "db"`},
		{name: "get", args: []string{"limit", "get", "--type", "http"}, code: ExitOK, stdout: `"limit": 3`},
		{name: "ls", args: []string{"limit", "ls"}, code: ExitOK, stdout: `"type": "db"`},
		{name: "set zero", args: []string{"limit", "set", "--type", "http", "0"}, code: ExitRejected, stderr: "want 1..256"},
		{name: "set too many", args: []string{"limit", "set", "--type", "http", "257"}, code: ExitRejected, stderr: "want 1..256"},
		{name: "set bad type", args: []string{"limit", "set", "--type", "a.b", "1"}, code: ExitRejected, stderr: `type "a.b"`},
		{name: "set not a number", args: []string{"limit", "set", "--type", "http", "x"}, code: ExitUsage, stderr: "want a whole number"},
		{name: "set without type", args: []string{"limit", "set", "3"}, code: ExitUsage, stderr: "type"},
		{name: "set without N", args: []string{"limit", "set", "--type", "http"}, code: ExitUsage, stderr: "arg"},
		{name: "clear", args: []string{"limit", "clear", "--type", "http"}, code: ExitOK, stdout: `"limit": "none"`},
		{name: "clear again", args: []string{"limit", "clear", "--type", "http"}, code: ExitNotFound, stderr: "no limit set"},
		{name: "get after clear", args: []string{"limit", "get", "--type", "http"}, code: ExitNotFound},
		{name: "unknown subcommand", args: []string{"limit", "bump"}, code: ExitUsage},
	} {
		code, stdout, stderr := runMain(t, append(step.args, "--server", d.url)...)
		if code != step.code || !strings.Contains(stdout, step.stdout) || !strings.Contains(stderr, step.stderr) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %d, %q, %q", step.name, code, stdout, stderr, step.code, step.stdout, step.stderr)
		}
	}
}
