package builtin

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/baton-dev/baton/pkg/agent"
)

// SleepResult is what the sleep type returns.
type SleepResult struct {
	SleptMS int64  `json:"slept_ms"`
	Agent   string `json:"agent"`
}

// Sleep waits for the input's number of milliseconds (a number, a one-item
// list, or {"ms": n}) and honours cancellation.
func Sleep(ctx context.Context, t *agent.Task) (any, error) {
	ms, err := sleepMS(t.Input)
	if err != nil {
		return nil, agent.Permanent(fmt.Errorf("task %s: %w", t.ID, err))
	}
	timer := time.NewTimer(time.Duration(ms * float64(time.Millisecond)))
	defer timer.Stop()
	select {
	case <-timer.C:
		return SleepResult{SleptMS: int64(ms), Agent: t.Agent}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func sleepMS(in json.RawMessage) (float64, error) {
	var n float64
	if json.Unmarshal(in, &n) == nil {
		return n, nil
	}
	var list []float64
	if json.Unmarshal(in, &list) == nil && len(list) == 1 {
		return list[0], nil
	}
	var obj struct {
		MS *float64 `json:"ms"`
	}
	if json.Unmarshal(in, &obj) == nil && obj.MS != nil {
		return *obj.MS, nil
	}
	return 0, fmt.Errorf("want milliseconds as a number, [n] or {\"ms\": n}")
}

// Noop returns its input unchanged.
func Noop(ctx context.Context, t *agent.Task) (any, error) {
	if len(t.Input) == 0 {
		return json.RawMessage("null"), nil
	}
	return t.Input, nil
}
