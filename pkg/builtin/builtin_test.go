package builtin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/builtin"
	"github.com/baton-dev/baton/pkg/events"
)

func task(input string) *agent.Task {
	return &agent.Task{Task: events.Task{Workflow: "wf", ID: "t-1", Step: "s", Input: json.RawMessage(input)}, Attempt: 2}
}

func permanent(err error) bool {
	var p *agent.PermanentError
	return errors.As(err, &p)
}

func TestResearch(t *testing.T) {
	t.Parallel()
	out, err := builtin.Research(context.Background(), task(`"The queue, the QUEUE and a worker's queue."`))
	if err != nil {
		t.Fatal(err)
	}
	r := out.(builtin.ResearchResult)
	if r.Words != 8 || len(r.Keywords) != 2 || r.Keywords[0] != (builtin.Keyword{Word: "queue", Count: 3}) || r.Keywords[1].Word != "worker's" {
		t.Errorf("%+v", r)
	}
	if _, err := builtin.Research(context.Background(), task(`42`)); !permanent(err) {
		t.Errorf("a number: %v, want a permanent error", err)
	}
}

func TestData(t *testing.T) {
	t.Parallel()
	out, err := builtin.Data(context.Background(), task(`[[1,2],[3],4]`))
	if err != nil {
		t.Fatal(err)
	}
	s := out.(builtin.Stats)
	if s.Count != 4 || s.Sum != 10 || s.Min != 1 || s.Max != 4 || s.Mean != 2.5 {
		t.Errorf("%+v", s)
	}
	for _, in := range []string{`[]`, `["x"]`, `{"a":1}`, `nope`} {
		if _, err := builtin.Data(context.Background(), task(in)); !permanent(err) {
			t.Errorf("input %s: %v, want a permanent error", in, err)
		}
	}
	all := builtin.CombineStats([]builtin.Stats{s, {Count: 2, Sum: 20, Min: 5, Max: 15, SumSq: 250}})
	if all.Count != 6 || all.Sum != 30 || all.Min != 1 || all.Max != 15 || all.Mean != 5 {
		t.Errorf("combined %+v", all)
	}
}

func TestWrite(t *testing.T) {
	t.Parallel()
	tk := task(`"Report"`)
	tk.Deps = []events.DepResult{
		{Task: "r-0", Status: events.StateCompleted, Data: json.RawMessage(`{"chunk":0,"words":5,"keywords":[{"word":"queue","count":2}]}`)},
		{Task: "d-0", Status: events.StateCompleted, Data: json.RawMessage(`{"count":2,"sum":6,"min":2,"max":4,"mean":3,"sumsq":20}`)},
		{Task: "x-0", Status: events.StateFailed, Error: "boom"},
	}
	out, err := builtin.Write(context.Background(), tk)
	if err != nil {
		t.Fatal(err)
	}
	s := out.(builtin.Summary)
	if s.Sources != 2 || s.Words != 5 || s.Stats == nil || s.Stats.Sum != 6 || len(s.Missing) != 1 || s.Missing[0] != "x-0" {
		t.Errorf("%+v", s)
	}
	if !strings.HasPrefix(s.Summary, "Report: 2 of 3 sources") || !strings.Contains(s.Summary, "missing: x-0") {
		t.Errorf("summary %q", s.Summary)
	}
}

func TestSleep_Cancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := builtin.Sleep(ctx, task(`60000`)); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want the context's error at once", err)
	}
	if _, err := builtin.Sleep(context.Background(), task(`"soon"`)); !permanent(err) {
		t.Errorf("bad input: %v", err)
	}
	out, err := builtin.Sleep(context.Background(), task(`{"ms": 1}`))
	if err != nil || out.(builtin.SleepResult).SleptMS != 1 {
		t.Errorf("%v %v", out, err)
	}
}

func TestExec(t *testing.T) {
	t.Parallel()
	// The task's input reaches the program on stdin, never through a shell:
	// "$(touch pwned)" stays text.
	h := builtin.Exec([]string{"sh", "-c", `read -r line; printf '{"got":%s,"task":"%s","attempt":%s}' "$line" "$BATON_TASK" "$BATON_ATTEMPT"`})
	out, err := h.Handle(context.Background(), task(`"$(touch pwned)"`))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out.(json.RawMessage)); got != `{"got":"$(touch pwned)","task":"t-1","attempt":2}` {
		t.Errorf("stdout %s", got)
	}
	plain, err := builtin.Exec([]string{"echo", "hello"}).Handle(context.Background(), task(`1`))
	if err != nil || plain != "hello" {
		t.Errorf("non-JSON stdout: %v %v", plain, err)
	}
	_, err = builtin.Exec([]string{"sh", "-c", "echo bad input >&2; exit 65"}).Handle(context.Background(), task(`1`))
	if !permanent(err) || !strings.Contains(err.Error(), "bad input") {
		t.Errorf("exit 65: %v, want a permanent error with stderr", err)
	}
	_, err = builtin.Exec([]string{"sh", "-c", "exit 1"}).Handle(context.Background(), task(`1`))
	if err == nil || permanent(err) {
		t.Errorf("exit 1: %v, want a retryable error", err)
	}
}

func TestHTTP(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req builtin.HTTPRequest
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &req)
		switch string(req.Input) {
		case `"ok"`:
			_, _ = w.Write([]byte(`{"echo":"` + req.Task + `"}`))
		case `"bad"`:
			http.Error(w, "no such thing", http.StatusBadRequest)
		case `"busy"`:
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	h := builtin.HTTP(srv.URL, srv.Client())
	out, err := h.Handle(context.Background(), task(`"ok"`))
	if err != nil || string(out.(json.RawMessage)) != `{"echo":"t-1"}` {
		t.Errorf("2xx: %v %v", out, err)
	}
	if _, err := h.Handle(context.Background(), task(`"bad"`)); !permanent(err) || !strings.Contains(err.Error(), "no such thing") {
		t.Errorf("4xx: %v", err)
	}
	var snooze *agent.RetryAfterError
	if _, err := h.Handle(context.Background(), task(`"busy"`)); !errors.As(err, &snooze) || snooze.Delay != 3*time.Second {
		t.Errorf("503 with Retry-After: %v", err)
	}
	if _, err := h.Handle(context.Background(), task(`"other"`)); err == nil || permanent(err) {
		t.Errorf("5xx: %v, want a retryable error", err)
	}
}
