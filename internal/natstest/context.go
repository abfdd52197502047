package natstest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// SaveContexts points XDG_CONFIG_HOME, where the nats CLI and natscontext
// keep contexts, at a new temporary directory for the rest of the test, and
// saves contexts there with the real nats CLI (the module's `go tool nats`):
// each name with its `nats context save` flags. It returns the directory.
// Since it sets an environment variable, the test cannot be parallel.
func SaveContexts(tb testing.TB, contexts map[string][]string) string {
	tb.Helper()
	// The go command finds its own settings under XDG_CONFIG_HOME too.
	goenv, err := exec.Command("go", "env", "GOENV").Output()
	if err != nil {
		tb.Fatalf("go env GOENV: %v", err)
	}
	dir := tb.TempDir()
	tb.Setenv("XDG_CONFIG_HOME", dir)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NATS_") { // nats context save would read them
			env = append(env, kv)
		}
	}
	env = append(env, "GOENV="+strings.TrimSpace(string(goenv)))
	for name, flags := range contexts {
		cmd := exec.Command("go", append([]string{"tool", "nats", "context", "save", name}, flags...)...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("go tool nats context save %s: %v\n%s", name, err, out)
		}
	}
	return dir
}
