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

// seen is one request the test server received.
type seen struct {
	method, contentType, idempotencyKey string
	body                                []byte
}

// replay answers each request with the status, headers and body named by
// the task's input, {"status": 503, "header": {...}, "body": "..."}, and
// reports what it received on a channel.
func replay(tb testing.TB) (*httptest.Server, <-chan seen) {
	tb.Helper()
	got := make(chan seen, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		select {
		case got <- seen{method: r.Method, contentType: r.Header.Get("Content-Type"), idempotencyKey: r.Header.Get("Idempotency-Key"), body: body}:
		default:
		}
		var req builtin.HTTPRequest
		var spec struct {
			Status int               `json:"status"`
			Header map[string]string `json:"header"`
			Body   string            `json:"body"`
			Repeat int               `json:"repeat"`
		}
		if json.Unmarshal(body, &req) != nil || json.Unmarshal(req.Input, &spec) != nil {
			http.Error(w, "test server: bad request", http.StatusTeapot)
			return
		}
		for k, v := range spec.Header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(spec.Status)
		_, _ = io.WriteString(w, strings.Repeat(spec.Body, max(1, spec.Repeat)))
	}))
	tb.Cleanup(srv.Close)
	return srv, got
}

func TestHTTP_Request(t *testing.T) {
	t.Parallel()
	srv, got := replay(t)
	tk := task(`{"status":200}`)
	tk.Deps = []events.DepResult{{Task: "d-0", Step: "d", Status: events.StateCompleted, Data: json.RawMessage(`[1]`)}}
	if _, err := builtin.HTTP(srv.URL, srv.Client()).Handle(context.Background(), tk); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	r := <-got
	if r.method != http.MethodPost || r.contentType != "application/json" || r.idempotencyKey != "wf/t-1" {
		t.Errorf("method %s, content type %q, idempotency key %q; want POST, application/json, wf/t-1", r.method, r.contentType, r.idempotencyKey)
	}
	const want = `{"workflow":"wf","task":"t-1","step":"s","attempt":2,"input":{"status":200},"deps":[{"task":"d-0","step":"d","status":"completed","data":[1]}]}`
	if string(r.body) != want {
		t.Errorf("body\n%s\nwant\n%s", r.body, want)
	}
}

func TestHTTP_Success(t *testing.T) {
	t.Parallel()
	srv, _ := replay(t)
	for _, tc := range []struct {
		name  string
		input string
		want  any
	}{
		{name: "JSON body", input: `{"status":200,"body":" {\"echo\":1}\n"}`, want: json.RawMessage(`{"echo":1}`)},
		{name: "text body", input: `{"status":200,"body":" done \n"}`, want: "done"},
		{name: "created", input: `{"status":201,"body":"[1,2]"}`, want: json.RawMessage(`[1,2]`)},
		{name: "no content", input: `{"status":204}`, want: ""},
		// A body past 4 MiB is cut there: memory stays bounded.
		{name: "huge body cut", input: `{"status":200,"body":"abcdefgh","repeat":1048576}`, want: strings.Repeat("abcdefgh", 1<<19)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := builtin.HTTP(srv.URL, srv.Client()).Handle(context.Background(), task(tc.input))
			if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			switch want := tc.want.(type) {
			case json.RawMessage:
				if got, ok := out.(json.RawMessage); !ok || string(got) != string(want) {
					t.Errorf("got %v (%T), want JSON %s", out, out, want)
				}
			case string:
				if got, ok := out.(string); !ok || got != want {
					t.Errorf("got %d bytes (%T), want %d bytes of text", len(got), out, len(want))
				}
			}
		})
	}
}

func TestHTTP_Failure(t *testing.T) {
	t.Parallel()
	srv, _ := replay(t)
	const (
		permanent = "permanent"
		retry     = "retry"      // with backoff
		snooze    = "retryafter" // after the server's delay
	)
	for _, tc := range []struct {
		name    string
		input   string
		want    string
		delay   time.Duration
		mention string
	}{
		{name: "400 is permanent", input: `{"status":400,"body":"no such thing"}`, want: permanent, mention: "no such thing"},
		{name: "404 is permanent", input: `{"status":404}`, want: permanent, mention: "404"},
		{name: "422 is permanent", input: `{"status":422,"body":"bad field"}`, want: permanent, mention: "bad field"},
		{name: "408 is retried", input: `{"status":408}`, want: retry, mention: "408"},
		{name: "500 is retried", input: `{"status":500,"body":"oops"}`, want: retry, mention: "oops"},
		{name: "502 is retried", input: `{"status":502}`, want: retry, mention: "502"},
		{name: "503 with Retry-After", input: `{"status":503,"header":{"Retry-After":"3"}}`, want: snooze, delay: 3 * time.Second},
		{name: "429 with Retry-After", input: `{"status":429,"header":{"Retry-After":"120"}}`, want: snooze, delay: 2 * time.Minute},
		{name: "429 with Retry-After 0", input: `{"status":429,"header":{"Retry-After":"0"}}`, want: snooze, delay: 0},
		{name: "429 without Retry-After", input: `{"status":429}`, want: retry, mention: "429"},
		{name: "503 with a date in Retry-After", input: `{"status":503,"header":{"Retry-After":"Wed, 21 Oct 2015 07:28:00 GMT"}}`, want: retry, mention: "503"},
		{name: "503 with a negative Retry-After", input: `{"status":503,"header":{"Retry-After":"-5"}}`, want: retry, mention: "503"},
		{name: "redirect to nowhere is retried", input: `{"status":307}`, want: retry, mention: "307"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := builtin.HTTP(srv.URL, srv.Client()).Handle(context.Background(), task(tc.input))
			if out != nil {
				t.Errorf("result %v, want none", out)
			}
			switch tc.want {
			case permanent:
				wantPermanent(t, err)
			case retry:
				wantRetryable(t, err)
			case snooze:
				var ra *agent.RetryAfterError
				if !errors.As(err, &ra) || ra.Delay != tc.delay {
					t.Errorf("error %v, want a retry after %v", err, tc.delay)
				}
			}
			if err != nil && !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
		})
	}
}

func TestHTTP_Unreachable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := builtin.HTTP(url, nil).Handle(context.Background(), task(`1`))
	wantRetryable(t, err)
}

func TestHTTP_Context(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := builtin.HTTP(srv.URL, srv.Client()).Handle(ctx, task(`1`))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want the context's deadline", err)
	}
}
