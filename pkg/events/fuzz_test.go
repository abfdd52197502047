package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-dev/baton/examples"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/expression"
	"github.com/vmihailenco/msgpack/v5"
)

// The fuzzers below hold every decoder of the package to its contract: any
// input either decodes to a value that survives a round trip or gives an
// error wrapping the package's sentinel; nothing panics. Inputs the fuzzer
// found crashing are kept in testdata/fuzz and run with every go test.

// exampleJobs returns the example jobs, as fuzz seeds.
func exampleJobs(tb testing.TB) [][]byte {
	tb.Helper()
	names, err := fs.Glob(examples.Jobs, "*.json")
	if err != nil || len(names) == 0 {
		tb.Fatalf("no example jobs: %v", err)
	}
	var out [][]byte
	for _, name := range names {
		b, err := fs.ReadFile(examples.Jobs, name)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// requireErrDecode fails unless err wraps ErrDecode and says so first.
func requireErrDecode(tb testing.TB, err error) {
	tb.Helper()
	if !errors.Is(err, events.ErrDecode) || !strings.HasPrefix(err.Error(), events.ErrDecode.Error()+": ") {
		tb.Fatalf("error %q does not wrap ErrDecode", err)
	}
}

// FuzzDecodeTask: any bytes either decode to a valid task that encodes and
// decodes to the same task, or give an error wrapping ErrDecode.
func FuzzDecodeTask(f *testing.F) {
	f.Add(readTestdata(f, "task.msgpack.golden"))
	f.Add(mustMsgpack(f, map[string]any{"wf": "w", "id": "i", "type": "t", "prio": 1, "attempts": 1}))
	f.Add(mustMsgpack(f, map[string]any{"wf": "w", "id": "i", "type": "t", "prio": 1, "attempts": 1, "deps": []any{}, "input": []byte{}}))
	f.Add([]byte{})
	f.Add([]byte{0x80})
	f.Add([]byte{0xc0})
	f.Add([]byte{0x81, 0xa4, 'd', 'e', 'p', 's', 0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add(bytes.Repeat([]byte{0x91}, 64))
	f.Add(mustMsgpack(f, map[string]any{"wf": "w", "id": "i", "type": "t", "prio": 1, "attempts": 1, "key": "k-1", "limit": 3, "rate": "10/s", "burst": 2}))
	f.Add(mustMsgpack(f, map[string]any{"wf": "w", "id": "i", "type": "t", "prio": 1, "attempts": 1, "key": "a.b", "limit": 1 << 20, "rate": "0/s"}))
	for _, b := range exampleJobs(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		task, err := events.DecodeTask(data)
		if err != nil {
			requireErrDecode(t, err)
			return
		}
		b1, err := events.Encode(task)
		if err != nil {
			t.Fatalf("a decoded task does not encode: %v", err)
		}
		back, err := events.DecodeTask(b1)
		if err != nil {
			t.Fatalf("a decoded task, encoded again, is rejected: %v", err)
		}
		if !reflect.DeepEqual(back, normalTask(task)) {
			t.Fatalf("round trip:\n%+v\nwant\n%+v", back, task)
		}
		if b2, err := events.Encode(back); err != nil || !bytes.Equal(b2, b1) {
			t.Fatalf("encoding is not stable: %q, %v; want %q", b2, err, b1)
		}
	})
}

// normalTask returns t as it reads back after an encoding: omitempty drops
// an empty dependency list and empty dependency data.
func normalTask(t *events.Task) *events.Task {
	n := *t
	if len(n.Deps) == 0 {
		n.Deps = nil
	} else {
		n.Deps = append([]events.DepResult(nil), n.Deps...)
		for i := range n.Deps {
			if len(n.Deps[i].Data) == 0 {
				n.Deps[i].Data = nil
			}
		}
	}
	return &n
}

// FuzzDecodeResult: the same for results, msgpack and JSON; a decoded
// result also survives being written as JSON.
func FuzzDecodeResult(f *testing.F) {
	f.Add(readTestdata(f, "result.msgpack.golden"), false)
	f.Add(readTestdata(f, "result.json.golden"), true)
	f.Add([]byte(`{"workflow":"w","task":"t","status":"completed","data":{"a":[1,2]}}`), true)
	f.Add([]byte(`{"workflow":"w","task":"t","status":"failed","data":"<&>","error":"\u2028"}`), true)
	f.Add([]byte(`{"workflow":"w","task":"t","status":"completed"} {}`), true)
	f.Add(mustMsgpack(f, map[string]any{"wf": "w", "task": "t", "status": "cancelled", "data": []byte{}}), false)
	f.Add([]byte{}, false)
	f.Add([]byte{}, true)
	for _, b := range exampleJobs(f) {
		f.Add(b, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, isJSON bool) {
		ct := events.ContentMsgpack
		if isJSON {
			ct = events.ContentJSON
		}
		r, err := events.DecodeResult(ct, data)
		if err != nil {
			requireErrDecode(t, err)
			return
		}
		want := *r
		if len(want.Data) == 0 {
			want.Data = nil // omitempty
		}

		b1, err := events.Encode(r)
		if err != nil {
			t.Fatalf("a decoded result does not encode: %v", err)
		}
		back, err := events.DecodeResult(events.ContentMsgpack, b1)
		if err != nil {
			t.Fatalf("a decoded result, encoded again, is rejected: %v", err)
		}
		if !reflect.DeepEqual(back, &want) {
			t.Fatalf("msgpack round trip:\n%+v\nwant\n%+v", back, &want)
		}

		// Written as JSON, invalid UTF-8 in a string becomes U+FFFD; after
		// that first rewrite the JSON form reads back to the same result.
		fromJSON := jsonRoundTrip(t, r)
		if again := jsonRoundTrip(t, fromJSON); !reflect.DeepEqual(again, fromJSON) {
			t.Fatalf("JSON round trip:\n%+v\nwant\n%+v", again, fromJSON)
		}
	})
}

// jsonRoundTrip writes r as JSON, as an agent in another language would,
// and reads it back.
func jsonRoundTrip(tb testing.TB, r *events.Result) *events.Result {
	tb.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		tb.Fatalf("a decoded result does not encode as JSON: %v", err)
	}
	back, err := events.DecodeResult(events.ContentJSON, b)
	if err != nil {
		tb.Fatalf("a decoded result, written as JSON, is rejected: %v\n%s", err, b)
	}
	return back
}

// FuzzParseJob: any document is a valid job or a *ValidationError naming a
// field of the job; a valid job written back as JSON parses to the same job.
func FuzzParseJob(f *testing.F) {
	for _, b := range exampleJobs(f) {
		f.Add(b)
	}
	f.Add(readTestdata(f, "job.json.golden"))
	f.Add([]byte(`{"steps":[{"id":"a","type":"x","after":["a"]}]}`))
	f.Add([]byte(`{"steps":[{"id":"a","type":"x","split":2,"input":[1,2,3]},{"id":"b","type":"y","after":["a"],"retries":1,"backoff":"1s","timeout":100}]}`))
	f.Add([]byte(`{"steps":[{"id":"a","type":"x"}],"aggregate":{"strategy":"transform","select":{"a":"b"},"colour":1}}`))
	f.Add([]byte(`{"steps":[{"id":"a","type":"x","timeout":1e300}],"max_parallel":"x"}`))
	f.Add([]byte(`[]`))
	// Synthesis: named fields, expressions, interpolation.
	f.Add([]byte(`{"steps":[{"id":"a","type":"x"}],"aggregate":{"fields":{"summary":{"field":"text","join":" "},"confidence":{"op":"avg","field":"score"},"label":{"expr":"fields.confidence > 0.5 ? 'hi' : 'lo'"}},"fallback":{"interpolate":"mean"}}}`))
	f.Add([]byte(`{"steps":[{"id":"a","type":"x"}],"aggregate":{"strategy":"transform","select":{"t":"text"},"compute":{"pct":"round(item.score * 100)","n":"len(item.tags ?? [])","s":"item.text + '!'"}}}`))
	f.Add([]byte(`{"steps":[{"id":"a","type":"x"}],"aggregate":{"strategy":"transform","compute":{"x":"reduce(1..40, #acc + #acc, 'ab')","y":"all(item.l, all(item.l, true))"}}}`))
	f.Add([]byte(`{"steps":[{"id":"a","type":"x"}],"aggregate":{"fields":{"a":{"expr":"let x = items; x[0].y.z"}},"fallback":{"interpolate":"previous"}}}`))
	f.Add([]byte(`{"steps":[{"id":"a","type":"x","concurrency":{"key":"c-{input.customer}","limit":3},"rate":"20/s","burst":5,"input":{"customer":"acme"}}]}`))
	f.Add([]byte(`{"steps":[{"id":"a","type":"x","concurrency":{"key":"{input.0.a}{input}","limit":0},"rate":"1/h","burst":2}]}`))
	f.Add([]byte(`{"steps":[{"id":"a","type":"x"}],"collect":"hybrid","stop_when":{"completed":1},"on_threshold_missed":{"retry_failed":2,"escalate":{"webhook":"https://h.example/x"}}}`))
	f.Add([]byte(`{"steps":[{"id":"a","type":"x"}],"stop_when":null,"on_threshold_missed":{"escalate":{"webhook":"http://[::1"}}}`))
	f.Add([]byte(`{"steps":[{"id":"a","type":"x","requires":["gpu","lang:de"],"resources":{"cpus":0.5,"memory":"512MiB"}}]}`))
	f.Add([]byte(`{"steps":[{"id":"a","type":"x","requires":["gpu","gpu"],"resources":{"cpus":-1,"memory":"1e3GB","x":1}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		job, err := events.ParseJob(data, events.Limits{})
		if err == nil {
			runExpressions(t, job, data)
		}
		if err != nil {
			var ve *events.ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, events.ErrInvalidJob) || ve.Reason == "" {
				t.Fatalf("error %v is not a ValidationError with a reason", err)
			}
			if strings.HasPrefix(ve.Field, "Job.") || strings.Contains(ve.Reason, "struct {") {
				t.Fatalf("error %q speaks of Go types, not of the job", err)
			}
			return
		}
		if err := job.Validate(); err != nil {
			t.Fatalf("ParseJob accepted a job Validate refuses: %v", err)
		}
		j1, err := json.Marshal(job)
		if err != nil {
			t.Fatalf("a valid job does not encode: %v", err)
		}
		// Written back, the job may be longer (escapes), so no byte limit.
		back, err := events.ParseJob(j1, events.Limits{MaxBytes: 1 << 30})
		if err != nil {
			t.Fatalf("a valid job written back is rejected: %v\n%s", err, j1)
		}
		if j2, err := json.Marshal(back); err != nil || !bytes.Equal(j2, j1) {
			t.Fatalf("round trip changed the job:\n%s\n%s", j1, j2)
		}
	})
}

// runExpressions runs every expression of a valid job on items made of the
// fuzzed bytes: a compiled expression may fail at run time, with ErrRun,
// but not panic, hang or fail to compile again.
func runExpressions(t *testing.T, job *events.Job, data []byte) {
	t.Helper()
	var decoded any
	_ = json.Unmarshal(data, &decoded)
	items := []any{decoded, map[string]any{"text": string(data), "score": 0.5, "l": []any{1.0, "x", nil}}, nil}
	deadline := time.Now().Add(time.Second)
	check := func(src string, env expression.Env) {
		p, err := expression.Compile(src, env)
		if err != nil {
			t.Fatalf("%q passed validation but does not compile: %v", src, err)
		}
		for i, it := range items {
			if env == expression.Item {
				_, err = p.RunItem(it, i, deadline)
			} else {
				_, err = p.RunFields(items, map[string]any{"x": it}, deadline)
			}
			if err != nil && !errors.Is(err, expression.ErrRun) {
				t.Fatalf("%q: error %v does not wrap ErrRun", src, err)
			}
		}
	}
	for _, src := range job.Aggregate.Compute {
		check(src, expression.Item)
	}
	for _, f := range job.Aggregate.Fields {
		for _, src := range f.Compute {
			check(src, expression.Item)
		}
		if f.Expr != "" {
			check(f.Expr, expression.Fields)
		}
	}
}

// FuzzParseControl: any body is a valid request or an ErrBadRequest, and a
// request written back parses to the same request.
func FuzzParseControl(f *testing.F) {
	b, err := json.Marshal(sampleControl())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"workflow":"wf-1","now":true}`))
	f.Add([]byte(`{"type":"research","priority":2,"until":"10m"}`))
	f.Add([]byte(`{"tasks":["a","b"],"release_dependents":true}`))
	f.Add([]byte(`{"until":1e300}`))
	f.Add([]byte(`{"workflow":"wf-1","token":"cp3.hZ0kq3s8V2T4dVHc0y1x9A"}`))
	f.Add([]byte(`{"token":"cp0.-_"}`))
	f.Add([]byte(`{"workflow":"wf-1","resolution":"accept"}`))
	f.Add([]byte(`{"workflow":"wf-1","resolution":"maybe"}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := events.ParseControl(data)
		if err != nil {
			if !errors.Is(err, events.ErrBadRequest) || !strings.HasPrefix(err.Error(), events.ErrBadRequest.Error()+": ") {
				t.Fatalf("error %q does not wrap ErrBadRequest", err)
			}
			return
		}
		for _, id := range append([]string{r.Workflow, r.Agent, r.Task, r.Type}, r.Tasks...) {
			if id != "" && !events.ValidToken(id) {
				t.Fatalf("accepted id %q", id)
			}
		}
		for _, p := range []int{r.Priority, r.MinPriority, r.MaxPriority, r.To} {
			if p != 0 && (p < events.PriorityHighest || p > events.PriorityLowest) {
				t.Fatalf("accepted priority %d", p)
			}
		}
		if r.Until < 0 || r.Offset < 0 || r.Limit < 0 {
			t.Fatalf("accepted until %v, offset %d, limit %d", r.Until.D(), r.Offset, r.Limit)
		}
		if r.Status != "" && !events.ValidToken(r.Status) {
			t.Fatalf("accepted status %q", r.Status)
		}
		if r.Token != "" {
			seq, mac, err := events.ParseCheckpointToken(r.Token)
			if err != nil || len(r.Token) > events.MaxCheckpointToken || events.CheckpointToken(seq, mac) != r.Token {
				t.Fatalf("accepted token %q: %d %q %v", r.Token, seq, mac, err)
			}
		}
		j1, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("a valid request does not encode: %v", err)
		}
		back, err := events.ParseControl(j1)
		if err != nil {
			t.Fatalf("a valid request written back is rejected: %v\n%s", err, j1)
		}
		if j2, err := json.Marshal(back); err != nil || !bytes.Equal(j2, j1) {
			t.Fatalf("round trip changed the request:\n%s\n%s", j1, j2)
		}
	})
}

// FuzzDuration_UnmarshalJSON: a duration that reads back writes as a string
// that reads back to the same duration.
func FuzzDuration_UnmarshalJSON(f *testing.F) {
	for _, s := range []string{`"250ms"`, `"1m30s"`, `1500`, `1.5`, `-5`, `null`, `1e13`, `-1e300`, `"soon"`, `true`, `9223372036854.775807`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var d events.Duration
		if err := json.Unmarshal(data, &d); err != nil {
			return
		}
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("%v does not encode: %v", d.D(), err)
		}
		var back events.Duration
		if err := json.Unmarshal(b, &back); err != nil || back != d {
			t.Fatalf("%s reads back as %v, %v; want %v", b, back.D(), err, d.D())
		}
	})
}

// FuzzKeyTemplate: any template parses or is refused with a reason; a
// parsed one expands any input to a valid, bounded key or an error.
func FuzzKeyTemplate(f *testing.F) {
	f.Add("warehouse-db", []byte(`null`))
	f.Add("customer-{input.customer}", []byte(`{"customer":"acme"}`))
	f.Add("c-{input.0.customer}", []byte(`[{"customer":"a.b/c"}]`))
	f.Add("{input}-{input.a.b}", []byte(`{"a":{"b":1.5}}`))
	f.Add("x{input", []byte(`1`))
	f.Add("{input.}", []byte(`{}`))
	f.Add("{inputs}", []byte(`{}`))
	f.Fuzz(func(t *testing.T, tmpl string, input []byte) {
		kt, err := events.ParseKeyTemplate(tmpl)
		if err != nil {
			if err.Error() == "" || len(err.Error()) > 4*events.MaxEcho+200 {
				t.Fatalf("error %q is empty or echoes too much", err)
			}
			return
		}
		key, err := kt.Expand(input)
		if err != nil {
			return
		}
		if !events.ValidKey(key) {
			t.Fatalf("template %q, input %q: key %q is not valid", tmpl, input, key)
		}
	})
}

// FuzzCheckRate: any rate and burst are accepted with a positive rate, or
// refused with a reason.
func FuzzCheckRate(f *testing.F) {
	f.Add("20/s", 0)
	f.Add("1/h", 2)
	f.Add("100001/s", 1)
	f.Add("-1/s", 1)
	f.Add("07/m", 1)
	f.Fuzz(func(t *testing.T, rate string, burst int) {
		r, err := events.CheckRate(rate, burst)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if r.N < 1 || r.Per <= 0 || r.PerSecond() > events.MaxRatePerSecond || burst < 0 || burst > events.MaxBurst {
			t.Fatalf("accepted %q burst %d as %+v", rate, burst, r)
		}
	})
}

// FuzzParseByteSize: any text is a size in range or an error, and a size
// written back as bytes reads the same.
func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"512MiB", "1.5GB", "64k", "0", "1048576", " 2 g ", "1e3", "-1", "2048TiB", "1..2M", "NaN", "Inf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := events.ParseByteSize(s)
		if err != nil {
			if !strings.Contains(err.Error(), "size") {
				t.Fatalf("error %q does not say what it read", err)
			}
			return
		}
		if b < 0 || b > events.MaxMemory {
			t.Fatalf("%q read as %d, out of range", s, b)
		}
		var back events.ByteSize
		if err := json.Unmarshal([]byte(strconv.FormatInt(int64(b), 10)), &back); err != nil || back != b {
			t.Fatalf("%d written back reads as %d, %v", b, back, err)
		}
	})
}

// FuzzWireMatchesMsgpack holds the hand-written Task and Result codec to
// msgpack/v5's: for any field values, the bytes are the ones msgpack/v5
// writes, and each side reads what the other wrote to the same value, so
// peers of either kind (an older release, a rolling upgrade) agree.
func FuzzWireMatchesMsgpack(f *testing.F) {
	f.Add("wf-1", "t-1", "s", 3, int64(5e9), []byte(`{"a":1}`), "dep", "gpu", int64(1<<40), 2.5, true)
	f.Add("", "", "", -70000, int64(-1), []byte(nil), "", "", int64(0), 0.0, false)
	f.Add(strings.Repeat("x", 300), "é", "\x00", 1<<20, int64(-1<<40), []byte{}, strings.Repeat("d", 70000), "", int64(-129), -1e300, false)
	// Every field set, every prefix and number at its widest: the bound
	// Encode allocates for.
	wide := strings.Repeat("w", 70000)
	f.Add(wide, wide, wide, math.MinInt64+1, int64(math.MinInt64), []byte(wide), wide, wide, int64(math.MinInt64), 1.5, true)
	f.Fuzz(func(t *testing.T, s1, s2, s3 string, n int, n64 int64, raw []byte, dep, req string, mem int64, cpu float64, flag bool) {
		task := &events.Task{Workflow: s1, ID: s2, Step: s3, Index: n, Chunks: -n, Type: s2, Priority: n % 9, Round: n & 1,
			Input: raw, MaxAttempts: n, Backoff: time.Duration(n64), MaxBackoff: time.Duration(-n64), Timeout: time.Duration(n64 / 3),
			Fallback: s3, Critical: flag, Gen: n / 2, Lease: s1, Key: s2, Limit: n, Rate: s3, Burst: -n, CPUMilli: n64, Memory: mem}
		if dep != "" {
			task.Deps = []events.DepResult{{Task: dep, Step: s1, Status: s2, Data: raw, Error: s3}, {Task: s2}}
		}
		if req != "" {
			task.Requires = []string{req, s1}
		}
		result := &events.Result{Workflow: s1, Task: s2, Step: s3, Index: n, Type: s1, Round: n & 1, Status: s2, Final: flag,
			Data: raw, Error: s3, ErrorKind: s1, Attempts: n, Agent: req, Started: n64, Finished: mem, Gen: n / 3,
			Priority: n % 9, Lease: dep, CapKey: s3}
		if cpu != cpu {
			cpu = 0 // NaN is not equal to itself, whoever read it
		}
		if flag {
			result.Usage = &events.TaskUsage{CPUMS: cpu, ExecCPUMS: -cpu, ExecMaxRSS: mem}
		}
		for _, v := range []any{task, result} {
			want, err := msgpack.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			got, err := events.Encode(v)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%T: Encode\n%x\nmsgpack/v5\n%x", v, got, want)
			}
			if hint := events.SizeHintForTest(v); len(got) > hint {
				t.Fatalf("%T: %d bytes, more than the %d Encode allocates", v, len(got), hint)
			}
		}
		// Reading back: the checks (valid tokens, ranges) are beside the
		// point here, so both sides read into the bare structs.
		var libTask events.Task
		if err := msgpack.Unmarshal(must(events.Encode(task)), &libTask); err != nil {
			t.Fatal(err)
		}
		var libResult events.Result
		if err := msgpack.Unmarshal(must(events.Encode(result)), &libResult); err != nil {
			t.Fatal(err)
		}
		gotTask, gotResult := events.ReadWireForTest(must(msgpack.Marshal(task)), must(msgpack.Marshal(result)))
		if !reflect.DeepEqual(gotTask, &libTask) {
			t.Fatalf("task read differently:\n%+v\nmsgpack/v5:\n%+v", gotTask, &libTask)
		}
		if !reflect.DeepEqual(gotResult, &libResult) {
			t.Fatalf("result read differently:\n%+v\nmsgpack/v5:\n%+v", gotResult, &libResult)
		}
	})
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
