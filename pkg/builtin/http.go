package builtin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/events"
)

// HTTPRequest is the JSON body the http type POSTs.
type HTTPRequest struct {
	Workflow string             `json:"workflow"`
	Task     string             `json:"task"`
	Step     string             `json:"step"`
	Attempt  int                `json:"attempt"`
	Input    json.RawMessage    `json:"input,omitempty"`
	Deps     []events.DepResult `json:"deps,omitempty"`
}

// HTTP returns a handler that POSTs each task to url. A 2xx body becomes the
// result (as JSON if it is JSON, else as a string). 429 and 503 honour
// Retry-After; other 4xx fail at once; 5xx and network errors are retried.
// client nil means http.DefaultClient; the task's timeout bounds the call.
func HTTP(url string, client *http.Client) agent.Handler {
	if client == nil {
		client = http.DefaultClient
	}
	return agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) {
		body, err := json.Marshal(HTTPRequest{Workflow: t.Workflow, Task: t.ID, Step: t.Step, Attempt: t.Attempt, Input: t.Input, Deps: t.Deps})
		if err != nil {
			return nil, agent.Permanent(err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return nil, agent.Permanent(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", t.Workflow+"/"+t.ID)
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			out = bytes.TrimSpace(out)
			if len(out) > 0 && json.Valid(out) {
				return json.RawMessage(out), nil
			}
			return string(out), nil
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
			err := fmt.Errorf("POST %s: %s", url, resp.Status)
			if secs, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && secs >= 0 {
				return nil, agent.RetryAfter(time.Duration(secs)*time.Second, err)
			}
			return nil, err
		case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout:
			return nil, agent.Permanent(fmt.Errorf("POST %s: %s: %s", url, resp.Status, tail(string(out), 512)))
		default:
			return nil, fmt.Errorf("POST %s: %s: %s", url, resp.Status, tail(string(out), 512))
		}
	})
}
