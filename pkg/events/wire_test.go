package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/baton-dev/baton/pkg/events"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/events -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s changed: the wire format is a contract. got\n%q\nwant\n%q", name, got, want)
	}
}

func sampleTask() *events.Task {
	return &events.Task{
		Workflow: "wf-1", ID: "research-3", Step: "research", Index: 3, Chunks: 7, Type: "research", Priority: 2,
		Round: 1, Input: json.RawMessage(`"some text"`),
		Deps:        []events.DepResult{{Task: "fetch", Step: "fetch", Status: events.StateCompleted, Data: json.RawMessage(`{"n":1}`)}, {Task: "gone", Step: "gone", Status: events.StateFailed, Error: "boom"}},
		MaxAttempts: 3, Backoff: 200 * time.Millisecond, MaxBackoff: 30 * time.Second, Timeout: 5 * time.Minute,
		Fallback: "backup", Critical: true, Gen: 2,
	}
}

func sampleResult() *events.Result {
	return &events.Result{
		Workflow: "wf-1", Task: "research-3", Step: "research", Index: 3, Type: "research", Round: 1,
		Status: events.StateFailed, Final: true, Data: json.RawMessage(`[1,2]`), Error: "timed out", ErrorKind: events.KindTimeout,
		Attempts: 3, Agent: "agent-1", Started: 1700000000000000000, Finished: 1700000001000000000, Gen: 2,
	}
}

func TestEncode_Golden(t *testing.T) {
	t.Parallel()
	task, err := events.Encode(sampleTask())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "task.msgpack.golden", task)
	result, err := events.Encode(sampleResult())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "result.msgpack.golden", result)
	for name, v := range map[string]any{
		"result.json.golden": sampleResult(),
		"event.json.golden": events.Event{Workflow: "wf-1", Kind: events.EventRetry, Task: "t-1", Agent: "agent-1",
			Time: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), Message: "attempt 1 of 3 failed", Detail: json.RawMessage(`{"x":1}`)},
		"output.json.golden": events.Output{Workflow: "wf-1", Kind: events.OutputFinal, Status: events.OutcomePartial,
			Progress: events.Progress{Done: 2, Total: 2, Percent: 100}, Data: json.RawMessage(`[1]`), Missing: []string{"t-2"},
			Errors:   []events.TaskError{{Task: "t-2", Step: "t", Type: "x", Status: events.StateFailed, Kind: events.KindError, Message: "boom", Attempts: 3, Remediation: "fix it", RetryRecommended: true}},
			Metadata: &events.Metadata{Started: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), Finished: time.Date(2026, 11, 24, 10, 0, 1, 0, time.UTC), ElapsedMS: 1000, Agents: []string{"a"}, AgentsUsed: 1, SuccessRate: 0.5, Threshold: 0.5, Tasks: events.Counts{Total: 2, Completed: 1, Failed: 1}, Attempts: 4, Recovered: 1, Recovery: events.RecoveryIncomplete}},
		"control.json.golden": events.ControlRequest{Workflow: "wf-1", Type: "research", Priority: 2, Until: events.Duration(time.Minute), Now: true,
			RetryFailed: true, Tasks: []string{"a"}, Agent: "agent-1", MinPriority: 1, MaxPriority: 3, ReleaseDependents: true, Task: "a", To: 1},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, name, b)
	}
}

func TestDecodeTask_RoundTrip(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/task.msgpack.golden")
	if err != nil {
		t.Fatal(err)
	}
	got, err := events.DecodeTask(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, sampleTask()) {
		t.Errorf("decoded %+v\nwant    %+v", got, sampleTask())
	}
}

func TestDecodeResult_RoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ file, contentType string }{
		{"result.msgpack.golden", ""},
		{"result.msgpack.golden", events.ContentMsgpack},
		{"result.json.golden", events.ContentJSON},
	} {
		data, err := os.ReadFile(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := events.DecodeResult(tc.contentType, data)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if !reflect.DeepEqual(got, sampleResult()) {
			t.Errorf("%s: decoded %+v\nwant %+v", tc.file, got, sampleResult())
		}
	}
}

func mutateTask(f func(*events.Task)) []byte {
	t := sampleTask()
	f(t)
	b, _ := events.Encode(t)
	return b
}

func TestDecodeTask_Rejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		data []byte
		says string
	}{
		{"empty", nil, "EOF"},
		{"not msgpack", []byte("{\"wf\":1}"), "decode"},
		{"wrong shape", []byte{0x93, 1, 2, 3}, "decode"},
		{"unknown field", mustMsgpack(map[string]any{"wf": "w", "id": "i", "nope": 1}), "nope"},
		{"bad workflow", mutateTask(func(t *events.Task) { t.Workflow = "a.b" }), "workflow id"},
		{"bad id", mutateTask(func(t *events.Task) { t.ID = "" }), "id"},
		{"bad type", mutateTask(func(t *events.Task) { t.Type = "x y" }), "type"},
		{"priority", mutateTask(func(t *events.Task) { t.Priority = 9 }), "priority 9"},
		{"attempts", mutateTask(func(t *events.Task) { t.MaxAttempts = 0 }), "max attempts"},
		{"negative timeout", mutateTask(func(t *events.Task) { t.Timeout = -1 }), "negative"},
		{"input not JSON", mutateTask(func(t *events.Task) { t.Input = json.RawMessage("{oops") }), "not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := events.DecodeTask(tc.data)
			if !errors.Is(err, events.ErrDecode) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %v, want ErrDecode saying %q", err, tc.says)
			}
		})
	}
}

func TestDecodeResult_Rejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, contentType, data, says string
	}{
		{"malformed JSON", events.ContentJSON, `{"workflow":`, "result"},
		{"unknown JSON field", events.ContentJSON, `{"workflow":"w","task":"t","status":"completed","colour":1}`, "colour"},
		{"bad status", events.ContentJSON, `{"workflow":"w","task":"t","status":"done"}`, "status \"done\""},
		{"bad workflow", events.ContentJSON, `{"workflow":"","task":"t","status":"completed"}`, "workflow id"},
		{"bad task", events.ContentJSON, `{"workflow":"w","task":"a b","status":"completed"}`, "task id"},
		{"data not JSON", events.ContentJSON, `{"workflow":"w","task":"t","status":"completed","data":"x"}`, ""},
		{"msgpack garbage", "", "\xc1\xc1", "decode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := events.DecodeResult(tc.contentType, []byte(tc.data))
			if tc.name == "data not JSON" {
				// "x" is a JSON string: valid. The check that matters is that a
				// result decodes to the same value it was written from.
				if err != nil || string(r.Data) != `"x"` {
					t.Errorf("got %v, %v", r, err)
				}
				return
			}
			if !errors.Is(err, events.ErrDecode) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %v, want ErrDecode saying %q", err, tc.says)
			}
		})
	}
}

func TestParseControl(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, body, says string }{
		{"malformed", `{"workflow":`, "malformed JSON"},
		{"unknown field", `{"colour":1}`, "unknown field"},
		{"trailing data", `{} {}`, "after the JSON"},
		{"bad id", `{"workflow":"a.b"}`, "not an id"},
		{"bad type", `{"type":"a b"}`, "type"},
		{"priority", `{"to":7}`, "to 7"},
		{"negative until", `{"until":-5}`, "until"},
		{"wrong type", `{"tasks":"a"}`, "tasks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := events.ParseControl([]byte(tc.body))
			if !errors.Is(err, events.ErrBadRequest) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %v, want ErrBadRequest saying %q", err, tc.says)
			}
		})
	}
	r, err := events.ParseControl([]byte(`{"workflow":"wf-1","until":"2s","tasks":["a","b"]}`))
	if err != nil || r.Workflow != "wf-1" || r.Until.D() != 2*time.Second || len(r.Tasks) != 2 {
		t.Errorf("valid request: %+v, %v", r, err)
	}
	if r, err := events.ParseControl(nil); err != nil || r.Workflow != "" {
		t.Errorf("empty request: %+v, %v", r, err)
	}
}

func TestValidToken(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"a": true, "wf-1_X": true, strings.Repeat("a", 64): true,
		"": false, strings.Repeat("a", 65): false, "a.b": false, "a b": false, "a*": false, "a>": false, "é": false,
	} {
		if got := events.ValidToken(s); got != want {
			t.Errorf("ValidToken(%q) = %v", s, got)
		}
	}
}

func TestSubjects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ got, want string }{
		{events.Subjects{}.Task("research", 2, "wf", "t-1"), "baton.tasks.research.2.wf.t-1"},
		{events.Subjects{}.Lane("research", 2), "baton.tasks.research.2.>"},
		{events.Subjects{Prefix: "acme"}.QueuedTasks("wf", "*"), "acme.tasks.*.*.wf.*"},
		{events.Subjects{}.Result("wf", "t"), "baton.results.wf.t"},
		{events.Subjects{}.Output("wf", events.OutputFinal), "baton.outputs.wf.final"},
		{events.Subjects{}.Event("wf", events.EventRejected), "baton.events.wf.rejected"},
		{events.Subjects{}.Control(events.VerbPause), "baton.control.pause"},
		{events.Subjects{Prefix: "acme"}.Wake("x", 1), "acme.wake.x.1"},
		{events.MsgID("wf", "t", "r0", 1), "wf.t.r0.1"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
