package builtin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/baton-dev/baton/pkg/agent"
)

// ExitPermanent is the exit status (EX_DATAERR) by which an exec command says
// its input is bad and a retry cannot help.
const ExitPermanent = 65

// Exec returns a handler that runs command (no shell: task data is never
// interpolated) once per task with the task's input JSON on stdin and
// BATON_WORKFLOW, BATON_TASK, BATON_STEP, BATON_ATTEMPT in the environment.
// Stdout becomes the result: as JSON if it is JSON, else as a string. A
// non-zero exit is an error that is retried; exit 65 fails at once. The
// command's CPU time and peak resident size (its rusage) go into the
// result's usage.
func Exec(command []string) agent.Handler {
	return agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) {
		cmd := exec.CommandContext(ctx, command[0], command[1:]...)
		cmd.Stdin = bytes.NewReader(t.Input)
		cmd.Env = append(os.Environ(),
			"BATON_WORKFLOW="+t.Workflow, "BATON_TASK="+t.ID, "BATON_STEP="+t.Step,
			"BATON_ATTEMPT="+strconv.Itoa(t.Attempt))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		// When ctx ends the command is killed, but a child it started may
		// still hold stdout open; stop waiting for it after a second, so
		// that the task's timeout bounds the attempt.
		cmd.WaitDelay = time.Second
		err := cmd.Run()
		if cmd.ProcessState != nil {
			if cpu, rss, ok := agent.ChildUsage(cmd.ProcessState.SysUsage()); ok {
				t.ReportChild(cpu, rss)
			}
		}
		if err != nil {
			msg := fmt.Errorf("%s: %w: %s", command[0], err, tail(stderr.String(), 512))
			var exit *exec.ExitError
			if errors.As(err, &exit) && exit.ExitCode() == ExitPermanent {
				return nil, agent.Permanent(msg)
			}
			return nil, msg
		}
		out := bytes.TrimSpace(stdout.Bytes())
		if len(out) > 0 && json.Valid(out) {
			return json.RawMessage(out), nil
		}
		return string(out), nil
	})
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
