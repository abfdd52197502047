package events_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/vmihailenco/msgpack/v5"
)

func mustMsgpack(v any) []byte {
	b, err := msgpack.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzDecodeTask: any bytes either decode to a task that encodes and
// decodes to itself, or give an error wrapping ErrDecode; never a panic.
func FuzzDecodeTask(f *testing.F) {
	good, _ := events.Encode(sampleTask())
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0x80})
	f.Add(mustMsgpack(map[string]any{"wf": "w", "id": "i", "type": "t", "prio": 1, "attempts": 1}))
	f.Fuzz(func(t *testing.T, data []byte) {
		task, err := events.DecodeTask(data)
		if err != nil {
			if !errors.Is(err, events.ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			return
		}
		again, err := events.Encode(task)
		if err != nil {
			t.Fatalf("a decoded task does not encode: %v", err)
		}
		back, err := events.DecodeTask(again)
		if err != nil || !reflect.DeepEqual(back, task) {
			t.Fatalf("round trip: %+v, %v; want %+v", back, err, task)
		}
	})
}

// FuzzDecodeResult: the same for results, msgpack and JSON.
func FuzzDecodeResult(f *testing.F) {
	good, _ := events.Encode(sampleResult())
	js, _ := json.Marshal(sampleResult())
	f.Add(good, false)
	f.Add(js, true)
	f.Add([]byte(`{"workflow":"w","task":"t","status":"completed","data":{"a":[1,2]}}`), true)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, data []byte, isJSON bool) {
		ct := events.ContentMsgpack
		if isJSON {
			ct = events.ContentJSON
		}
		r, err := events.DecodeResult(ct, data)
		if err != nil {
			if !errors.Is(err, events.ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			return
		}
		again, err := events.Encode(r)
		if err != nil {
			t.Fatalf("a decoded result does not encode: %v", err)
		}
		back, err := events.DecodeResult(events.ContentMsgpack, again)
		if err != nil || !reflect.DeepEqual(back, r) {
			t.Fatalf("round trip: %+v, %v; want %+v", back, err, r)
		}
	})
}

// FuzzParseJob: any document is a valid job or a *ValidationError; a valid
// job written back as JSON parses to the same job.
func FuzzParseJob(f *testing.F) {
	files, _ := filepath.Glob("../../examples/*.json")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"steps":[{"id":"a","type":"x","after":["a"]}]}`))
	f.Add([]byte(`{"steps":[{"id":"a","type":"x","split":2,"input":[1,2,3]},{"id":"b","type":"y","after":["a"],"retries":1,"backoff":"1s","timeout":100}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		job, err := events.ParseJob(data, events.Limits{})
		if err != nil {
			var ve *events.ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, events.ErrInvalidJob) || ve.Reason == "" {
				t.Fatalf("error %v is not a ValidationError with a reason", err)
			}
			return
		}
		again, err := json.Marshal(job)
		if err != nil {
			t.Fatalf("a valid job does not encode: %v", err)
		}
		back, err := events.ParseJob(again, events.Limits{})
		if err != nil {
			t.Fatalf("a valid job written back is rejected: %v\n%s", err, again)
		}
		b1, _ := json.Marshal(back)
		if string(b1) != string(again) {
			t.Fatalf("round trip changed the job:\n%s\n%s", again, b1)
		}
	})
}

// FuzzParseControl: any body is a request or an ErrBadRequest.
func FuzzParseControl(f *testing.F) {
	f.Add([]byte(`{"workflow":"wf-1","now":true}`))
	f.Add([]byte(`{"type":"research","priority":2,"until":"10m"}`))
	f.Add([]byte(`{"tasks":["a","b"],"release_dependents":true}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := events.ParseControl(data)
		if err != nil {
			if !errors.Is(err, events.ErrBadRequest) {
				t.Fatalf("error %v does not wrap ErrBadRequest", err)
			}
			return
		}
		if r.Workflow != "" && !events.ValidToken(r.Workflow) {
			t.Fatalf("accepted workflow id %q", r.Workflow)
		}
	})
}
