package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/vmihailenco/msgpack/v5"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(tb testing.TB, name string, got []byte) {
	tb.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	want := readTestdata(tb, name)
	if !bytes.Equal(got, want) {
		tb.Errorf("%s changed: the wire format is a contract (go test ./pkg/events -update rewrites it). got\n%q\nwant\n%q", name, got, want)
	}
}

// readTestdata returns the content of testdata/name.
func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatalf("%v (go test ./pkg/events -update creates it)", err)
	}
	return b
}

// mustMsgpack encodes v with msgpack, for hand-made messages.
func mustMsgpack(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// strictDecode decodes one JSON value into a new T, refusing unknown fields
// and trailing data, as a peer that knows the contract would.
func strictDecode[T any](data []byte) (*T, error) {
	var v T
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("trailing data")
	}
	return &v, nil
}

var (
	t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	t1 = t0.Add(1500 * time.Millisecond)
)

func ptr[T any](v T) *T { return &v }

// The samples below set every field (requireFull checks it), so that a
// renamed or reused tag changes a golden file.

func sampleTask() *events.Task {
	return &events.Task{
		Workflow: "wf-1", ID: "research-3", Step: "research", Index: 3, Chunks: 7, Type: "research", Priority: 2,
		Round: 1, Input: json.RawMessage(`"some text"`),
		Deps: []events.DepResult{
			{Task: "fetch", Step: "fetch", Status: events.StateCompleted, Data: json.RawMessage(`{"n":1}`)},
			{Task: "gone", Step: "gone", Status: events.StateFailed, Error: "boom"},
		},
		MaxAttempts: 3, Backoff: 200 * time.Millisecond, MaxBackoff: 30 * time.Second, Timeout: 5 * time.Minute,
		Fallback: "backup", Critical: true, Gen: 2, Lease: "3q2-7wAAAAAAAAAAAAAAAA",
		Key: "customer-acme", Limit: 3, Rate: "20/s", Burst: 5,
		Requires: []string{"gpu", "lang:de"}, CPUMilli: 500, Memory: 512 << 20,
	}
}

func sampleResult() *events.Result {
	return &events.Result{
		Workflow: "wf-1", Task: "research-3", Step: "research", Index: 3, Type: "research", Round: 1,
		Status: events.StateFailed, Final: true, Data: json.RawMessage(`[1,2]`), Error: "timed out", ErrorKind: events.KindTimeout,
		Attempts: 3, Agent: "agent-1", Started: 1700000000000000000, Finished: 1700000001000000000, Gen: 2, Priority: 4,
		Lease: "3q2-7wAAAAAAAAAAAAAAAA", Usage: &events.TaskUsage{CPUMS: 12.5, ExecCPUMS: 40.25, ExecMaxRSS: 8 << 20},
		CapKey: "c0123456789ab",
	}
}

func sampleCounts() events.Counts {
	return events.Counts{Total: 21, Pending: 1, Running: 2, Completed: 15, Failed: 2, Cancelled: 1}
}

func sampleAggregate() events.Aggregate {
	return events.Aggregate{
		Strategy: events.StrategyReduce, Steps: []string{"research"}, DedupeBy: "url", SortBy: "score", Desc: true,
		Field: "score", Op: "sum", Select: map[string]string{"title": "name", "link": "url"}, Fallback: json.RawMessage(`{"score":0}`),
		Compute: map[string]string{"pct": "item.score * 100"},
		Fields: map[string]events.NamedField{
			"summary":    {Field: "text", Join: ptr(" ")},
			"confidence": {Op: "avg", Field: "score"},
		},
	}
}

func sampleJob() *events.Job {
	return &events.Job{
		ID: "report-2026", Name: "quarterly report", Deadline: events.Duration(time.Hour),
		Steps: []events.Step{
			{
				ID: "research", Type: "analysis", Input: json.RawMessage(`"line one\nline two"`), Split: 1, SplitBy: "lines",
				Priority: 2, Retries: ptr(4), Backoff: events.Duration(250 * time.Millisecond),
				MaxBackoff: events.Duration(10 * time.Second), Fallback: "analysis-slow", Timeout: events.Duration(90 * time.Second),
				Critical: true, Concurrency: &events.Concurrency{Key: "customer-{input.customer}", Limit: 3}, Rate: "20/s", Burst: 5,
				Requires: []string{"gpu"}, Resources: &events.Resources{CPUs: 0.5, Memory: 512 << 20},
			},
			{ID: "summary", Type: "writing", Decompose: "by-section", After: []string{"research"}, Input: json.RawMessage(`{"title":"Q4"}`)},
		},
		MaxParallel: 8, SuccessThreshold: ptr(0.75), Aggregate: sampleAggregate(),
		Collect: events.CollectHybrid, StopWhen: &events.StopWhen{Completed: 3},
		OnThresholdMissed: &events.ThresholdPolicy{RetryFailed: 2, Escalate: &events.Escalate{Webhook: "https://hooks.example/baton"}},
	}
}

func sampleEvent() *events.Event {
	return &events.Event{Workflow: "wf-1", Kind: events.EventRetry, Task: "t-1", Tasks: []string{"t-2", "t-3"}, Agent: "agent-1",
		Time: t0, Message: "attempt 1 of 3 failed", Detail: json.RawMessage(`{"x":1}`)}
}

func sampleWorkflow() *events.Workflow {
	return &events.Workflow{
		ID: "wf-1", Name: "quarterly report", Status: events.WorkflowFailed, Submitted: t0, Finished: t1,
		Counts: sampleCounts(), Critical: []string{"summary"}, Collect: []string{"summary"}, SuccessThreshold: 0.75,
		Aggregate: sampleAggregate(), ResultsFrom: 42, Deadline: t1, Steps: map[string]int{"research": 3, "summary": 0}, Outcome: events.OutcomeFailed, Error: "critical task summary failed", Gen: 3,
		Priorities: map[string]int{"*": 2, "summary": 1}, Retry: map[string]int{"research-3": 2},
		Lanes: []string{"analysis.2", "writing.3"}, CriticalPathTotal: 2, CriticalPath: 1, Leased: true,
		Checkpoint: sampleCheckpointRecord(),
		Mode:       events.CollectHybrid, StopWhen: &events.StopWhen{Completed: 2, Threshold: true}, // both, to pin both
		OnThresholdMissed: &events.ThresholdPolicy{RetryFailed: 1, Escalate: &events.Escalate{Webhook: "http://hooks.example:8080/x"}}, Rounds: 1, Escalated: t1,
		Resolution: events.ResolveAccept, Reopened: 1, Ready: t1,
		Needs: []events.Need{{Type: "research", Requires: []string{"gpu"}, CPUMilli: 500, Memory: 512 << 20}},
	}
}

func sampleCheckpointRecord() *events.CheckpointRecord {
	return &events.CheckpointRecord{Seq: 2, Status: events.WorkflowStopped, Gen: 2, Taken: t1, Now: true,
		Done: 1, Running: 1, Pending: 1, Digest: "503af05087a83fb046290cb53b7a41e0",
		Agents:        []events.CheckpointAgent{{Agent: "agent-1", Running: 1, Tasks: []string{"b"}}},
		AgentsOmitted: 3, Stale: "resumed (generation 3) at 2026-01-02T03:04:05Z"}
}

func sampleAgentInfo() events.AgentInfo {
	return events.AgentInfo{
		ID: "agent-1", Types: []string{"analysis", "writing"}, Capabilities: []string{"gpu"}, Concurrency: 4, Running: 1,
		Tasks: []string{"wf-1/research-3"}, Status: events.AgentBusy, Done: 120, Failures: 3, Host: "node-7", PID: 4242,
		Version: "v1.2.3", Started: t0, Heartbeat: t1, Routing: []string{"gpu"}, CPUMilli: 2000, Memory: 4 << 30,
		CPUMilliUsed: 500, MemoryUsed: 512 << 20,
		Process: &events.ProcessUsage{CPUSeconds: 12.5, CPUPercent: 37.5, RSS: 48 << 20, MaxRSS: 64 << 20},
	}
}

func sampleOutput() *events.Output {
	return &events.Output{
		Workflow: "wf-1", Kind: events.OutputFinal, Status: events.OutcomePartial,
		Progress: events.Progress{Done: 2, Total: 2, Percent: 100}, Data: json.RawMessage(`[1]`),
		Results: []events.TaskOutput{{Task: "t-1", Step: "t", Status: events.StateCompleted, Data: json.RawMessage(`1`), DataTooLarge: true}},
		Metadata: &events.Metadata{Started: t0, Finished: t1, ElapsedMS: 1500, Agents: []string{"agent-1"}, AgentsUsed: 1,
			SuccessRate: 0.5, Threshold: 0.5, Tasks: sampleCounts(), BusyMS: 1250.5, Attempts: 4, Recovered: 1, Recovery: events.RecoveryIncomplete,
			Interpolation: events.InterpolateMean, Interpolated: []string{"t-2"},
			Resources: events.ResourceTotals{Measured: 2, CPUMS: 25, ExecCPUMS: 80.5, ExecMaxRSS: 8 << 20}},
		Errors: []events.TaskError{{Task: "t-2", Step: "t", Type: "x", Status: events.StateFailed, Kind: events.KindError,
			Message: "boom", Attempts: 3, Critical: true, Remediation: "fix it", RetryRecommended: true}},
		Missing: []string{"t-2"},
	}
}

func sampleControl() *events.ControlRequest {
	return &events.ControlRequest{Workflow: "wf-1", Type: "research", Priority: 2, Until: events.Duration(time.Minute), Now: true,
		RetryFailed: true, All: true, Tasks: []string{"a"}, Agent: "agent-1", MinPriority: 1, MaxPriority: 3,
		ReleaseDependents: true, Task: "a", To: 1, Offset: 100, Limit: 50, Status: events.WorkflowPaused,
		Token:      "cp2.hZ0kq3s8V2T4dVHc0y1x9A",
		Resolution: events.ResolveRetryFailed}
}

func sampleLane() events.LaneState {
	return events.LaneState{Lane: "analysis.2", Type: "analysis", Priority: 2, Consumer: "lane-analysis-2", Backlog: 17,
		InFlight: 3, Redelivered: 1, Paused: true, PausedUntil: ptr(t1), Requires: []string{"gpu"}}
}

func sampleBottleneck() *events.Bottleneck {
	return &events.Bottleneck{Lane: "analysis.2", Backlog: 17, Rate: 0.5, Seconds: ptr(34.0), Why: "17 queued at 0.5/s"}
}

func sampleSnapshot() *events.Snapshot {
	return &events.Snapshot{
		Time: t1, Open: 1, Progress: 71.5, Active: 2, Completed: 15,
		Tasks: events.TaskStats{Counts: sampleCounts(), WindowSeconds: 300, Finished: 17, AvgSeconds: 1.25, P50Seconds: 1,
			P95Seconds: 3.5, Throughput: 0.25, ThroughputSeconds: 60, ErrorRate: 0.125},
		Agents: events.AgentStats{Active: 1, Idle: 1, Busy: 1, Draining: 1, Failed: 1, Slots: 4, BusySlots: 1,
			Utilization: 0.25, FailureRate: 0.025, List: []events.AgentInfo{sampleAgentInfo()}, Omitted: 3},
		Workflows: []events.WorkflowView{{
			ID: "wf-1", Name: "quarterly report", Status: events.WorkflowFailed, Outcome: events.OutcomeFailed, Counts: sampleCounts(), Progress: 71.5,
			Active: 2, Completed: 15, Ready: true, Submitted: t0, Rate: 0.5, ETASeconds: ptr(12.0), ETA: "12s", Bottleneck: sampleBottleneck(),
			CriticalPath: events.CriticalPathStatus{Total: 2, Remaining: 1, Seconds: ptr(1.0), OnSchedule: true, Why: "one step left"},
			Running:      []string{"research-3"},
			Warnings:     []string{`no live agent of type "research" has capabilities gpu: its tasks wait on their lane until one starts`},
		}},
		Lanes:      []events.LaneState{sampleLane()},
		Bottleneck: sampleBottleneck(),
		Totals: events.WorkflowTotals{Total: 123, Running: 100, Paused: 2, Stopped: 1, NeedsAttention: 3, Completed: 12, Failed: 5,
			FinishedRecently: 4},
		Page: events.ListPage{Total: 107, Offset: 100, Limit: 1, Omitted: 106, Next: 101,
			Note: "listing 1 of 107 workflows from offset 100: ask with offset 101 for more"},
		LanesOmitted: 2,
		Truncated:    true,
	}
}

// wireCase is one wire type in one encoding: how to write the sample and
// how a peer reads it back.
type wireCase struct {
	file   string
	value  any
	encode func() ([]byte, error)
	decode func([]byte) (any, error)
}

func jsonCase[T any](file string, v *T) wireCase {
	return wireCase{
		file:   file,
		value:  v,
		encode: func() ([]byte, error) { return json.Marshal(v) },
		decode: func(b []byte) (any, error) { return strictDecode[T](b) },
	}
}

func wireCases() []wireCase {
	return []wireCase{
		{
			file: "task.msgpack.golden", value: sampleTask(),
			encode: func() ([]byte, error) { return events.Encode(sampleTask()) },
			decode: func(b []byte) (any, error) { return events.DecodeTask(b) },
		},
		{
			file: "result.msgpack.golden", value: sampleResult(),
			encode: func() ([]byte, error) { return events.Encode(sampleResult()) },
			decode: func(b []byte) (any, error) { return events.DecodeResult(events.ContentMsgpack, b) },
		},
		{
			file: "result.json.golden", value: sampleResult(),
			encode: func() ([]byte, error) { return json.Marshal(sampleResult()) },
			decode: func(b []byte) (any, error) { return events.DecodeResult(events.ContentJSON, b) },
		},
		{
			file: "validation_error.msgpack.golden", value: &events.ValidationError{Field: "steps[2].after[0]", Reason: `no step is called "x"`},
			encode: func() ([]byte, error) {
				return events.Encode(&events.ValidationError{Field: "steps[2].after[0]", Reason: `no step is called "x"`})
			},
			decode: func(b []byte) (any, error) {
				var v events.ValidationError
				err := msgpack.Unmarshal(b, &v)
				return &v, err
			},
		},
		{
			file: "job.json.golden", value: sampleJob(),
			encode: func() ([]byte, error) { return json.Marshal(sampleJob()) },
			decode: func(b []byte) (any, error) { return events.ParseJob(b, events.Limits{}) },
		},
		{
			file: "control.json.golden", value: sampleControl(),
			encode: func() ([]byte, error) { return json.Marshal(sampleControl()) },
			decode: func(b []byte) (any, error) { return events.ParseControl(b) },
		},
		jsonCase("task.json.golden", sampleTask()),
		jsonCase("event.json.golden", sampleEvent()),
		jsonCase("output.json.golden", sampleOutput()),
		jsonCase("workflow.json.golden", sampleWorkflow()),
		jsonCase("submit_reply.json.golden", &events.SubmitReply{Workflow: "wf-1", Tasks: 12, Lanes: []string{"analysis.2"},
			Error: &events.ValidationError{Field: "steps[0].type", Reason: "missing"}, Warnings: []string{"no live agent serves type \"x\""}, Created: true}),
		jsonCase("agent_info.json.golden", ptr(sampleAgentInfo())),
		jsonCase("control_error.json.golden", &events.ControlError{Code: 409, Message: "workflow wf-1 is completed"}),
		jsonCase("checkpoint.json.golden", &events.Checkpoint{Workflow: "wf-1", Status: events.WorkflowPaused, Gen: 2,
			Done: []string{"a"}, Running: []string{"b"}, Pending: []string{"c"}, Token: "cp2.hZ0kq3s8V2T4dVHc0y1x9A",
			Checkpoint: sampleCheckpointRecord()}),
		jsonCase("cancel_reply.json.golden", &events.CancelReply{Status: events.StateCancelled, Cancelled: []string{"a"},
			Dependents: []string{"b"}, Released: []string{"c"}}),
		jsonCase("resume_reply.json.golden", &events.ResumeReply{Workflow: "wf-1", Status: events.WorkflowRunning, Gen: 3,
			Queued: []string{"a"}, Running: []string{"b"}}),
		jsonCase("reprioritize_reply.json.golden", &events.ReprioritizeReply{Workflow: "wf-1", Priority: 1,
			Moved: []string{"a"}, Updated: []string{"b"}}),
		jsonCase("lane_reply.json.golden", &events.LaneReply{Lanes: []events.LaneState{sampleLane()}}),
		jsonCase("agent_command.json.golden", &events.AgentCommand{Op: events.AgentOpCancel, Workflow: "wf-1",
			Tasks: []string{"a"}, Now: true, Reason: "cancelled: the deadline passed", Kind: events.KindDeadline}),
		jsonCase("agent_reply.json.golden", &events.AgentReply{Agent: "agent-1", Running: []string{"wf-1/b"},
			Stopped: []string{"wf-1/a"}}),
		jsonCase("snapshot.json.golden", sampleSnapshot()),
		jsonCase("crash_drill.json.golden", &events.CrashDrill{Agent: "agent-3"}),
		jsonCase("crash_reply.json.golden", &events.CrashReply{Agent: "agent-3", Status: events.AgentCrashed, Abandoned: 2,
			Tasks: []string{"wf-1/a", "wf-1/b"}}),
	}
}

// TestEncode_Golden pins every wire type: the sample must encode to the
// golden bytes, and the golden bytes must decode to the sample, so that a
// renamed, dropped or reused tag fails here before it reaches a peer.
func TestEncode_Golden(t *testing.T) {
	t.Parallel()
	for _, tc := range wireCases() {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			requireFull(t, tc.value)
			got, err := tc.encode()
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.file, got)
			back, err := tc.decode(readTestdata(t, tc.file))
			if err != nil {
				t.Fatalf("the golden file does not decode: %v", err)
			}
			if !reflect.DeepEqual(back, tc.value) {
				t.Errorf("the golden file decodes to\n%+v\nwant\n%+v", back, tc.value)
			}
		})
	}
}

// requireFull fails when a field of v is zero, in v and in every element of
// the slices on the way: a sample that leaves a field out does not pin it.
func requireFull(tb testing.TB, v any) {
	tb.Helper()
	all, set := map[string]bool{}, map[string]bool{}
	walkFields(reflect.ValueOf(v), reflect.TypeOf(v).String(), all, set)
	var zero []string
	for p := range all {
		if !set[p] && !exclusive[p] {
			zero = append(zero, p)
		}
	}
	sort.Strings(zero)
	if len(zero) > 0 {
		tb.Errorf("the sample leaves these fields zero: %s", strings.Join(zero, ", "))
	}
}

// exclusive are fields a valid sample cannot set because another one is
// (stop_when has one form); the record's sample pins them.
var exclusive = map[string]bool{"*events.Job.StopWhen.Threshold": true}

var timeType = reflect.TypeFor[time.Time]()

func walkFields(v reflect.Value, path string, all, set map[string]bool) {
	t := v.Type()
	switch {
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct && t.Elem() != timeType:
		all[path] = true
		if !v.IsNil() {
			set[path] = true
			walkFields(v.Elem(), path, all, set)
		}
	case t.Kind() == reflect.Struct && t != timeType:
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() {
				walkFields(v.Field(i), path+"."+f.Name, all, set)
			}
		}
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		all[path] = true
		set[path] = set[path] || v.Len() > 0
		for i := range v.Len() {
			walkFields(v.Index(i), path+"[]", all, set)
		}
	default:
		all[path] = true
		set[path] = set[path] || !v.IsZero()
	}
}

// TestWireTypes_Tags checks the tags themselves: every field of a msgpack
// type has an explicit msgpack name, every field of a JSON type a json name,
// and no name is used twice in one object (encoding/json would silently drop
// both fields).
func TestWireTypes_Tags(t *testing.T) {
	t.Parallel()
	msgpackTypes := map[reflect.Type]bool{
		reflect.TypeFor[events.Task]():            true,
		reflect.TypeFor[events.DepResult]():       true,
		reflect.TypeFor[events.Result]():          true,
		reflect.TypeFor[events.ValidationError](): true,
	}
	types := map[reflect.Type]bool{}
	for _, tc := range wireCases() {
		collectStructs(reflect.TypeOf(tc.value), types)
	}
	for typ := range msgpackTypes {
		if !types[typ] {
			t.Errorf("%v has no golden file", typ)
		}
	}
	for typ := range types {
		t.Run(typ.String(), func(t *testing.T) {
			t.Parallel()
			tags := []string{"json"}
			if msgpackTypes[typ] {
				tags = append(tags, "msgpack")
			}
			for _, key := range tags {
				seen := map[string]string{}
				for _, f := range flatFields(typ) {
					name, _, _ := strings.Cut(f.Tag.Get(key), ",")
					if name == "" || name == "-" {
						t.Errorf("%s: field %s has no explicit %s name", typ, f.Name, key)
						continue
					}
					if other, dup := seen[name]; dup {
						t.Errorf("%s: %s name %q is used by %s and %s", typ, key, name, other, f.Name)
					}
					seen[name] = f.Name
				}
			}
		})
	}
}

// collectStructs adds t and every struct type it holds (but time.Time).
func collectStructs(t reflect.Type, out map[reflect.Type]bool) {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		collectStructs(t.Elem(), out)
	case reflect.Struct:
		if t == timeType || out[t] {
			return
		}
		out[t] = true
		for i := range t.NumField() {
			collectStructs(t.Field(i).Type, out)
		}
	}
}

// flatFields lists the exported fields of t as encoding/json sees them, the
// fields of untagged embedded structs in place of the struct.
func flatFields(t reflect.Type) []reflect.StructField {
	var out []reflect.StructField
	for i := range t.NumField() {
		f := t.Field(i)
		switch {
		case f.Anonymous && f.Tag == "" && f.Type.Kind() == reflect.Struct:
			out = append(out, flatFields(f.Type)...)
		case f.IsExported():
			out = append(out, f)
		}
	}
	return out
}

// mutateTask encodes the sample task after f changed it.
func mutateTask(tb testing.TB, f func(*events.Task)) []byte {
	tb.Helper()
	task := sampleTask()
	f(task)
	b, err := events.Encode(task)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// mutateResult encodes the sample result after f changed it.
func mutateResult(tb testing.TB, f func(*events.Result)) []byte {
	tb.Helper()
	r := sampleResult()
	f(r)
	b, err := events.Encode(r)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestDecodeTask_Rejects(t *testing.T) {
	t.Parallel()
	good, err := events.Encode(sampleTask())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		says string
	}{
		{"empty", nil, "end of message"},
		{"JSON instead of msgpack", []byte(`{"wf":"w"}`), "Task"},
		{"array instead of map", []byte{0x93, 1, 2, 3}, "Task"},
		{"nil", []byte{0xc0}, "workflow id"},
		{"truncated", good[:len(good)-3], "end of message"},
		{"trailing bytes", append(append([]byte{}, good...), 0xc0), "1 bytes after the message"},
		{"two messages", append(append([]byte{}, good...), good...), "bytes after the message"},
		{"array claims four billion elements", []byte{0x81, 0xa4, 'd', 'e', 'p', 's', 0xdd, 0xff, 0xff, 0xff, 0xff}, "end of message"},
		{"map claims four billion entries", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, "end of message"},
		{"string claims four gigabytes", []byte{0x81, 0xa2, 'w', 'f', 0xdb, 0xff, 0xff, 0xff, 0xff, 'x'}, "end of message"},
		{"integer overflows int64", []byte{0x81, 0xa3, 'i', 'd', 'x', 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "overflows"},
		{"float for an integer", []byte{0x81, 0xa3, 'i', 'd', 'x', 0xcb, 0, 0, 0, 0, 0, 0, 0, 0}, "want an integer"},
		// msgpack/v5 recurses once per level: 8 MiB of array headers used to
		// overflow the goroutine stack, a fatal error. Every field has its
		// shape now: nesting stops at the first level that is not it.
		{"nested eight million deep", bytes.Repeat([]byte{0x91}, 8<<20), "want a map"},
		{"deps nested eight million deep", append([]byte{0x81, 0xa4, 'd', 'e', 'p', 's'}, bytes.Repeat([]byte{0x91}, 8<<20)...), "want a map"},
		{"unknown field", mustMsgpack(t, map[string]any{"wf": "w", "id": "i", "nope": 1}), "nope"},
		{"wrong field type", mustMsgpack(t, map[string]any{"wf": 1}), "Task"},
		{"bad workflow", mutateTask(t, func(x *events.Task) { x.Workflow = "a.b" }), "workflow id"},
		{"missing id", mutateTask(t, func(x *events.Task) { x.ID = "" }), "task: id"},
		{"bad type", mutateTask(t, func(x *events.Task) { x.Type = "x y" }), "type"},
		{"priority too low", mutateTask(t, func(x *events.Task) { x.Priority = 9 }), "priority 9"},
		{"priority zero", mutateTask(t, func(x *events.Task) { x.Priority = 0 }), "priority 0"},
		{"no attempts", mutateTask(t, func(x *events.Task) { x.MaxAttempts = 0 }), "max attempts"},
		{"negative backoff", mutateTask(t, func(x *events.Task) { x.Backoff = -1 }), "negative"},
		{"negative max backoff", mutateTask(t, func(x *events.Task) { x.MaxBackoff = -1 }), "negative"},
		{"negative timeout", mutateTask(t, func(x *events.Task) { x.Timeout = -1 }), "negative"},
		{"input not JSON", mutateTask(t, func(x *events.Task) { x.Input = json.RawMessage("{oops") }), "not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			task, err := events.DecodeTask(tc.data)
			if !errors.Is(err, events.ErrDecode) || task != nil {
				t.Fatalf("got %+v, %v; want an error wrapping ErrDecode", task, err)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
		})
	}
}

func TestDecodeTask_Accepts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		data []byte
		want *events.Task
	}{
		{
			name: "minimal",
			data: mustMsgpack(t, map[string]any{"wf": "w", "id": "i", "type": "t", "prio": 5, "attempts": 1}),
			want: &events.Task{Workflow: "w", ID: "i", Type: "t", Priority: 5, MaxAttempts: 1},
		},
		{
			name: "input as a msgpack string",
			data: mustMsgpack(t, map[string]any{"wf": "w", "id": "i", "type": "t", "prio": 1, "attempts": 1, "input": `[1]`}),
			want: &events.Task{Workflow: "w", ID: "i", Type: "t", Priority: 1, MaxAttempts: 1, Input: json.RawMessage(`[1]`)},
		},
		{
			name: "nested as deep as a dependency",
			data: mutateTask(t, func(*events.Task) {}),
			want: sampleTask(),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := events.DecodeTask(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decoded %+v\nwant    %+v", got, tc.want)
			}
		})
	}
}

func TestDecodeResult_Rejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, contentType string
		data              []byte
		says              string
	}{
		{"JSON malformed", events.ContentJSON, []byte(`{"workflow":`), "result"},
		{"JSON empty", events.ContentJSON, nil, "EOF"},
		{"JSON unknown field", events.ContentJSON, []byte(`{"workflow":"w","task":"t","status":"completed","colour":1}`), "colour"},
		{"JSON wrong field type", events.ContentJSON, []byte(`{"workflow":"w","task":"t","status":"completed","final":"yes"}`), "final"},
		{"JSON trailing data", events.ContentJSON, []byte(`{"workflow":"w","task":"t","status":"completed"} {"task":"u"}`), "after the JSON object"},
		{"JSON bad status", events.ContentJSON, []byte(`{"workflow":"w","task":"t","status":"done"}`), `status "done"`},
		{"JSON running is not an outcome", events.ContentJSON, []byte(`{"workflow":"w","task":"t","status":"running"}`), `status "running"`},
		{"JSON bad workflow", events.ContentJSON, []byte(`{"workflow":"","task":"t","status":"completed"}`), "workflow id"},
		{"JSON bad task", events.ContentJSON, []byte(`{"workflow":"w","task":"a b","status":"completed"}`), "task id"},
		{"msgpack garbage", events.ContentMsgpack, []byte("\xc1\xc1"), "Result"},
		{"msgpack by default", "", []byte(`{"workflow":"w","task":"t","status":"completed"}`), "Result"},
		{"msgpack unknown field", events.ContentMsgpack, mustMsgpack(t, map[string]any{"wf": "w", "colour": 1}), "colour"},
		{"msgpack trailing bytes", events.ContentMsgpack, append(mutateResult(t, func(*events.Result) {}), 0x01), "after the message"},
		{"msgpack nested too deep", events.ContentMsgpack, bytes.Repeat([]byte{0x91}, 1<<16), "want a map"},
		{"msgpack bad status", events.ContentMsgpack, mutateResult(t, func(x *events.Result) { x.Status = events.StatePending }), `status "pending"`},
		{"msgpack bad task", events.ContentMsgpack, mutateResult(t, func(x *events.Result) { x.Task = "" }), "task id"},
		{"JSON type not a token", events.ContentJSON, []byte(`{"workflow":"w","task":"t","type":"a name, with words","status":"completed"}`), `type "a name`},
		{"msgpack data not JSON", events.ContentMsgpack, mutateResult(t, func(x *events.Result) { x.Data = json.RawMessage("{x") }), "data is not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := events.DecodeResult(tc.contentType, tc.data)
			if !errors.Is(err, events.ErrDecode) || r != nil {
				t.Fatalf("got %+v, %v; want an error wrapping ErrDecode", r, err)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
		})
	}
}

func TestDecodeResult_Accepts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, contentType string
		data              []byte
		want              *events.Result
	}{
		{
			name: "JSON from an agent in another language", contentType: events.ContentJSON,
			data: []byte(" {\"workflow\":\"w\",\"task\":\"t\",\"status\":\"completed\",\"data\":{\"a\": [1, 2]}}\n"),
			want: &events.Result{Workflow: "w", Task: "t", Status: events.StateCompleted, Data: json.RawMessage(`{"a": [1, 2]}`)},
		},
		{
			name: "JSON cancelled", contentType: events.ContentJSON,
			data: []byte(`{"workflow":"w","task":"t","status":"cancelled","kind":"cancelled"}`),
			want: &events.Result{Workflow: "w", Task: "t", Status: events.StateCancelled, ErrorKind: events.KindCancelled},
		},
		{
			name: "msgpack", contentType: events.ContentMsgpack,
			data: mutateResult(t, func(*events.Result) {}),
			want: sampleResult(),
		},
		{
			name: "msgpack when the content type is unknown", contentType: "text/plain",
			data: mutateResult(t, func(*events.Result) {}),
			want: sampleResult(),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := events.DecodeResult(tc.contentType, tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decoded %+v\nwant    %+v", got, tc.want)
			}
		})
	}
}

func TestEncode_Error(t *testing.T) {
	t.Parallel()
	if _, err := events.Encode(make(chan int)); err == nil || !strings.Contains(err.Error(), "chan int") {
		t.Errorf("error %v, want one naming the type", err)
	}
}

func TestParseControl_Rejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, body, says string }{
		{"malformed", `{"workflow":`, "malformed JSON"},
		{"syntax", `{"workflow":}`, "malformed JSON at byte"},
		{"not an object", `[]`, "want a JSON object"},
		{"unknown field", `{"colour":1}`, `unknown field "colour"`},
		{"trailing data", `{} {}`, "after the JSON"},
		{"wrong type", `{"tasks":"a"}`, "tasks: want []string"},
		{"bad workflow", `{"workflow":"a.b"}`, `"a.b" is not an id`},
		{"bad agent", `{"agent":"a>"}`, `"a>" is not an id`},
		{"bad task", `{"task":"a*"}`, `"a*" is not an id`},
		{"bad task in list", `{"tasks":["a","b c"]}`, `"b c" is not an id`},
		{"bad type", `{"type":"a b"}`, "type"},
		{"priority", `{"priority":6}`, "priority 6"},
		{"min_priority", `{"min_priority":-1}`, "min_priority -1"},
		{"max_priority", `{"max_priority":9}`, "max_priority 9"},
		{"to", `{"to":7}`, "to 7"},
		{"negative until", `{"until":-5}`, "until"},
		{"bad until", `{"until":"later"}`, "duration"},
		{"negative offset", `{"offset":-1}`, "offset and limit"},
		{"negative limit", `{"limit":-5}`, "offset and limit"},
		{"status not a word", `{"status":"open or not"}`, `status "open or not"`},
		{"token too long", `{"token":"cp1.` + strings.Repeat("A", 61) + `"}`, "65 bytes, at most 64"},
		{"token prefix", `{"token":"ck1.abc"}`, "does not start with cp"},
		{"token without a mac", `{"token":"cp1"}`, "no '.'"},
		{"token number zero", `{"token":"cp0.abc"}`, "not a positive integer"},
		{"token number padded", `{"token":"cp01.abc"}`, "not a positive integer"},
		{"token number signed", `{"token":"cp+1.abc"}`, "not a positive integer"},
		{"token number huge", `{"token":"cp99999999999999999999.abc"}`, "not a positive integer"},
		{"token mac empty", `{"token":"cp1."}`, "not base64url"},
		{"token mac not base64url", `{"token":"cp1.a/b+c"}`, "not base64url"},
		{"token not a string", `{"token":1}`, "token: want string"},
		{"unknown resolution", `{"resolution":"later"}`, `resolution "later": want accept, retry_failed or fail`},
		{"resolution not a string", `{"resolution":true}`, "resolution: want string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := events.ParseControl([]byte(tc.body))
			if !errors.Is(err, events.ErrBadRequest) || r != nil {
				t.Fatalf("got %+v, %v; want an error wrapping ErrBadRequest", r, err)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
		})
	}
}

func TestParseControl_Accepts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		want       *events.ControlRequest
	}{
		{"empty", ``, &events.ControlRequest{}},
		{"blank", " \n", &events.ControlRequest{}},
		{"empty object", `{}`, &events.ControlRequest{}},
		{"cancel", `{"workflow":"wf-1","tasks":["a","b"],"release_dependents":true}`,
			&events.ControlRequest{Workflow: "wf-1", Tasks: []string{"a", "b"}, ReleaseDependents: true}},
		{"lane pause", `{"type":"research","priority":2,"until":"2s"}`,
			&events.ControlRequest{Type: "research", Priority: 2, Until: events.Duration(2 * time.Second)}},
		{"until in milliseconds", `{"until":1500}`, &events.ControlRequest{Until: events.Duration(1500 * time.Millisecond)}},
		{"until null", `{"until":null}`, &events.ControlRequest{}},
		{"a page of paused workflows", `{"offset":100,"limit":50,"status":"paused"}`,
			&events.ControlRequest{Offset: 100, Limit: 50, Status: events.WorkflowPaused}},
		{"resume from a checkpoint", `{"workflow":"wf-1","token":"cp12.hZ0kq3s8V2T4dVHc0y1x9A"}`,
			&events.ControlRequest{Workflow: "wf-1", Token: "cp12.hZ0kq3s8V2T4dVHc0y1x9A"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := events.ParseControl([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parsed %+v\nwant   %+v", got, tc.want)
			}
		})
	}
}

func TestControlError_Error(t *testing.T) {
	t.Parallel()
	var err error = &events.ControlError{Code: 404, Message: "no workflow wf-9"}
	var ce *events.ControlError
	if !errors.As(err, &ce) || ce.Code != 404 || err.Error() != "no workflow wf-9" {
		t.Errorf("got %v (%+v)", err, ce)
	}
}
