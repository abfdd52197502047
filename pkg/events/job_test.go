package events_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/baton-dev/baton/examples"
	"github.com/baton-dev/baton/pkg/events"
)

// requireInvalid checks that err is a *ValidationError (and so wraps
// ErrInvalidJob) naming field, with a reason that says want.
func requireInvalid(tb testing.TB, err error, field, want string) {
	tb.Helper()
	var ve *events.ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, events.ErrInvalidJob) {
		tb.Fatalf("error %v, want a *ValidationError", err)
	}
	if ve.Field != field {
		tb.Errorf("field %q, want %q (reason %q)", ve.Field, field, ve.Reason)
	}
	if ve.Reason == "" || !strings.Contains(ve.Reason, want) {
		tb.Errorf("reason %q does not say %q", ve.Reason, want)
	}
	if !strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), ve.Reason) {
		tb.Errorf("message %q leaves out the field or the reason", err)
	}
}

// manyFields is n named fields (or computed fields) for limit tests.
func manyFields(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, fmt.Sprintf(`"f%d":"1"`, i))
	}
	return strings.Join(parts, ",")
}

// TestParseJob_Rejects covers every way ParseJob refuses a job: the field it
// names and the reason it gives.
func TestParseJob_Rejects(t *testing.T) {
	t.Parallel()
	const step = `{"id":"a","type":"x"}`
	job := func(steps ...string) string { return `{"steps":[` + strings.Join(steps, ",") + `]}` }
	withAggregate := func(agg string) string { return `{"steps":[` + step + `],"aggregate":` + agg + `}` }
	for _, tc := range []struct {
		name, doc   string
		limits      events.Limits
		field, says string
	}{
		// Size and shape of the document.
		{name: "over the byte limit", doc: job(`{"id":"a","type":"x","input":"` + strings.Repeat("x", 2000) + `"}`),
			limits: events.Limits{MaxBytes: 1000}, says: "more than the limit of 1000"},
		{name: "over the default byte limit", doc: job(`{"id":"a","type":"x","input":"` + strings.Repeat("x", 1<<20) + `"}`),
			says: "more than the limit of 1048576"},
		{name: "name over its limit", doc: `{"name":"` + strings.Repeat("n", 900_000) + `","steps":[` + step + `]}`,
			field: "name", says: "900000 bytes, more than the limit of 256"},
		{name: "empty document", doc: ``, says: "empty document"},
		{name: "blank document", doc: " \n\t", says: "empty document"},

		// Malformed JSON.
		{name: "ends early", doc: `{"steps":[`, says: "document ends early"},
		{name: "syntax error", doc: `{"steps":[}`, says: "malformed JSON at byte 11"},
		{name: "not JSON", doc: `steps: []`, says: "malformed JSON at byte 1"},
		{name: "trailing data", doc: job(step) + ` x`, says: "unexpected data after the JSON object"},
		{name: "two documents", doc: job(step) + job(step), says: "unexpected data after the JSON object"},

		// Wrong JSON types.
		{name: "array instead of object", doc: `[]`, says: "want a JSON object, got JSON array"},
		{name: "steps not a list", doc: `{"steps":{}}`, field: "steps", says: "got JSON object"},
		{name: "id not a string", doc: `{"id":5,"steps":[` + step + `]}`, field: "id", says: "want string, got JSON number"},
		{name: "max_parallel not an integer", doc: `{"max_parallel":1.5,"steps":[` + step + `]}`, field: "max_parallel", says: "want int"},
		{name: "threshold not a number", doc: `{"success_threshold":"high","steps":[` + step + `]}`, field: "success_threshold", says: "want float64"},
		{name: "step not an object", doc: job(step, `1`), field: "steps[1]", says: "want a JSON object, got JSON number"},
		{name: "split not a number", doc: job(`{"id":"a","type":"x","split":"2"}`), field: "steps[0].split", says: "want int, got JSON string"},
		{name: "retries not a number", doc: job(`{"id":"a","type":"x","retries":"2"}`), field: "steps[0].retries", says: "want int"},
		{name: "after not a list", doc: job(`{"id":"a","type":"x","after":"b"}`), field: "steps[0].after", says: "want []string"},
		{name: "after holds a number", doc: job(`{"id":"a","type":"x","after":[1]}`), field: "steps[0].after", says: "want string"},
		{name: "aggregate not an object", doc: withAggregate(`[]`), field: "aggregate", says: "want a JSON object, got JSON array"},
		{name: "aggregate op not a string", doc: withAggregate(`{"op":1}`), field: "aggregate.op", says: "want string"},
		{name: "aggregate select value not a string", doc: withAggregate(`{"select":{"a":1}}`), field: "aggregate.select", says: "want string"},

		// How it finishes.
		{name: "collect unknown", doc: `{"collect":"eventually","steps":[` + step + `]}`, field: "collect", says: `"eventually": want stream, batch, hybrid`},
		{name: "collect not a string", doc: `{"collect":1,"steps":[` + step + `]}`, field: "collect", says: "want string"},
		{name: "stop_when empty", doc: `{"stop_when":{},"steps":[` + step + `]}`, field: "stop_when", says: "empty"},
		{name: "stop_when both forms", doc: `{"stop_when":{"completed":1,"threshold":true},"steps":[` + step + `]}`, field: "stop_when", says: "not both"},
		{name: "stop_when negative", doc: `{"stop_when":{"completed":-1},"steps":[` + step + `]}`, field: "stop_when.completed", says: "at least 1"},
		{name: "stop_when unknown form", doc: `{"stop_when":{"first":2},"steps":[` + step + `]}`, field: "stop_when.first", says: "unknown field"},
		{name: "stop_when not an object", doc: `{"stop_when":3,"steps":[` + step + `]}`, field: "stop_when", says: "want a JSON object"},
		{name: "retry rounds over the bound", doc: `{"on_threshold_missed":{"retry_failed":11},"steps":[` + step + `]}`, field: "on_threshold_missed.retry_failed", says: "out of range 0..10"},
		{name: "retry rounds negative", doc: `{"on_threshold_missed":{"retry_failed":-1},"steps":[` + step + `]}`, field: "on_threshold_missed.retry_failed", says: "out of range"},
		{name: "policy that does nothing", doc: `{"on_threshold_missed":{},"steps":[` + step + `]}`, field: "on_threshold_missed", says: "does nothing"},
		{name: "escalate unknown field", doc: `{"on_threshold_missed":{"escalate":{"email":"a@b"}},"steps":[` + step + `]}`, field: "on_threshold_missed.escalate.email", says: "unknown field"},
		{name: "webhook not http", doc: `{"on_threshold_missed":{"escalate":{"webhook":"file:///etc/passwd"}},"steps":[` + step + `]}`, field: "on_threshold_missed.escalate.webhook", says: "only http and https"},
		{name: "webhook without host", doc: `{"on_threshold_missed":{"escalate":{"webhook":"https:///x"}},"steps":[` + step + `]}`, field: "on_threshold_missed.escalate.webhook", says: "no host"},
		{name: "webhook with a password", doc: `{"on_threshold_missed":{"escalate":{"webhook":"https://u:p@h.example/"}},"steps":[` + step + `]}`, field: "on_threshold_missed.escalate.webhook", says: "user information"},
		{name: "webhook too long", doc: `{"on_threshold_missed":{"escalate":{"webhook":"https://h.example/` + strings.Repeat("a", 3000) + `"}},"steps":[` + step + `]}`, field: "on_threshold_missed.escalate.webhook", says: "longer than 2048"},

		// Durations.
		{name: "duration not a duration", doc: job(`{"id":"a","type":"x","backoff":"soon"}`), field: "steps[0]", says: `duration "soon"`},
		{name: "duration a boolean", doc: job(`{"id":"a","type":"x","timeout":true}`), field: "steps[0]", says: "number of milliseconds"},
		{name: "duration overflows", doc: job(`{"id":"a","type":"x","timeout":1e13}`), field: "steps[0]", says: "out of range"},
		{name: "duration overflows negative", doc: job(`{"id":"a","type":"x","timeout":-1e13}`), field: "steps[0]", says: "out of range"},

		// Unknown fields, named with the object they are in.
		{name: "unknown top-level field", doc: `{"steps":[` + step + `],"colour":1}`, field: "colour", says: `unknown field "colour"`},
		{name: "unknown step field", doc: job(step, `{"id":"b","type":"x","retry":1}`), field: "steps[1].retry", says: `unknown field "retry"`},
		{name: "unknown aggregate field", doc: withAggregate(`{"strategy":"merge","colour":1}`), field: "aggregate.colour", says: `unknown field "colour"`},

		// The job.
		{name: "bad job id", doc: `{"id":"a.b","steps":[` + step + `]}`, field: "id", says: `"a.b": use 1-64 letters`},
		{name: "job id too long", doc: `{"id":"` + strings.Repeat("a", 65) + `","steps":[` + step + `]}`, field: "id", says: "1-64"},
		{name: "no steps", doc: `{"steps":[]}`, field: "steps", says: "at least one step"},
		{name: "steps missing", doc: `{"name":"x"}`, field: "steps", says: "at least one step"},
		{name: "steps null", doc: `{"steps":null}`, field: "steps", says: "at least one step"},
		{name: "negative max_parallel", doc: `{"max_parallel":-1,"steps":[` + step + `]}`, field: "max_parallel", says: "must not be negative"},
		{name: "threshold above 1", doc: `{"success_threshold":1.5,"steps":[` + step + `]}`, field: "success_threshold", says: "1.5 is not between 0 and 1"},
		{name: "threshold below 0", doc: `{"success_threshold":-0.1,"steps":[` + step + `]}`, field: "success_threshold", says: "not between 0 and 1"},

		// Steps.
		{name: "empty step", doc: job(`{}`), field: "steps[0].id", says: "missing: every step needs an id"},
		{name: "empty step after a good one", doc: job(step, `{}`), field: "steps[1].id", says: "missing"},
		{name: "bad step id", doc: job(`{"id":"a b","type":"x"}`), field: "steps[0].id", says: `"a b": use 1-64 letters`},
		{name: "no type", doc: job(`{"id":"a"}`), field: "steps[0].type", says: `missing: say which agent type runs step "a"`},
		{name: "bad type", doc: job(`{"id":"a","type":"x.y"}`), field: "steps[0].type", says: `"x.y": use 1-64 letters`},
		{name: "wildcard type", doc: job(`{"id":"a","type":">"}`), field: "steps[0].type", says: `">"`},
		{name: "priority above 5", doc: job(`{"id":"a","type":"x","priority":6}`), field: "steps[0].priority", says: "6 is out of range 1 (first) to 5 (last)"},
		{name: "negative priority", doc: job(`{"id":"a","type":"x","priority":-1}`), field: "steps[0].priority", says: "out of range"},
		{name: "retries above the maximum", doc: job(`{"id":"a","type":"x","retries":101}`), field: "steps[0].retries", says: "101 is out of range 0..100"},
		{name: "negative retries", doc: job(`{"id":"a","type":"x","retries":-1}`), field: "steps[0].retries", says: "out of range"},

		// Synchronisation points: concurrency keys, locks, rates.
		{name: "concurrency not an object", doc: job(`{"id":"a","type":"x","concurrency":"db"}`), field: "steps[0].concurrency", says: "want a JSON object"},
		{name: "concurrency unknown field", doc: job(`{"id":"a","type":"x","concurrency":{"key":"db","limit":1,"max":2}}`), field: "steps[0].concurrency.max", says: "unknown field"},
		{name: "concurrency without a key", doc: job(`{"id":"a","type":"x","concurrency":{"limit":3}}`), field: "steps[0].concurrency.key", says: "missing: name the key"},
		{name: "concurrency without a limit", doc: job(`{"id":"a","type":"x","concurrency":{"key":"db"}}`), field: "steps[0].concurrency.limit", says: "missing"},
		{name: "concurrency limit too high", doc: job(`{"id":"a","type":"x","concurrency":{"key":"db","limit":257}}`), field: "steps[0].concurrency.limit", says: "257 is out of range 1..256"},
		{name: "concurrency limit negative", doc: job(`{"id":"a","type":"x","concurrency":{"key":"db","limit":-1}}`), field: "steps[0].concurrency.limit", says: "out of range"},
		{name: "key with a dot", doc: job(`{"id":"a","type":"x","concurrency":{"key":"db.main","limit":1}}`), field: "steps[0].concurrency.key", says: "use letters, digits"},
		{name: "key with a wildcard", doc: job(`{"id":"a","type":"x","concurrency":{"key":"db>","limit":1}}`), field: "steps[0].concurrency.key", says: "use letters, digits"},
		{name: "key too long", doc: job(`{"id":"a","type":"x","concurrency":{"key":"` + strings.Repeat("k", 129) + `","limit":1}}`), field: "steps[0].concurrency.key", says: "129 bytes, more than the limit of 128"},
		{name: "key placeholder unclosed", doc: job(`{"id":"a","type":"x","concurrency":{"key":"c-{input.customer","limit":1}}`), field: "steps[0].concurrency.key", says: "without its '}'"},
		{name: "key placeholder not input", doc: job(`{"id":"a","type":"x","concurrency":{"key":"c-{env.HOME}","limit":1}}`), field: "steps[0].concurrency.key", says: "{input} or {input.field}"},
		{name: "key placeholder empty field", doc: job(`{"id":"a","type":"x","concurrency":{"key":"c-{input..a}","limit":1}}`), field: "steps[0].concurrency.key", says: "empty or malformed field"},
		{name: "key too many placeholders", doc: job(`{"id":"a","type":"x","concurrency":{"key":"{input}{input}{input}{input}{input}","limit":1}}`), field: "steps[0].concurrency.key", says: "more than 4 placeholders"},
		{name: "rate not a string", doc: job(`{"id":"a","type":"x","rate":20}`), field: "steps[0].rate", says: "want string"},
		{name: "rate without unit", doc: job(`{"id":"a","type":"x","rate":"20"}`), field: "steps[0].rate", says: "want a form like"},
		{name: "rate bad unit", doc: job(`{"id":"a","type":"x","rate":"20/d"}`), field: "steps[0].rate", says: "unit must be s, m or h"},
		{name: "rate zero", doc: job(`{"id":"a","type":"x","rate":"0/s"}`), field: "steps[0].rate", says: "whole number from 1"},
		{name: "rate fraction", doc: job(`{"id":"a","type":"x","rate":"1.5/s"}`), field: "steps[0].rate", says: "whole number from 1"},
		{name: "rate too fast", doc: job(`{"id":"a","type":"x","rate":"100001/s"}`), field: "steps[0].rate", says: "more than 100000 per second"},
		{name: "burst without rate", doc: job(`{"id":"a","type":"x","burst":5}`), field: "steps[0].burst", says: "a burst needs a rate"},
		{name: "burst too large", doc: job(`{"id":"a","type":"x","rate":"10/s","burst":10001}`), field: "steps[0].burst", says: "out of range 1..10000"},
		{name: "burst refills too slowly", doc: job(`{"id":"a","type":"x","rate":"1/h","burst":2}`), field: "steps[0].burst", says: "more than 1h0m0s"},
		{name: "negative backoff", doc: job(`{"id":"a","type":"x","backoff":"-1s"}`), field: "steps[0]", says: "must not be negative"},
		{name: "negative max_backoff", doc: job(`{"id":"a","type":"x","max_backoff":-1}`), field: "steps[0]", says: "must not be negative"},
		{name: "negative timeout", doc: job(`{"id":"a","type":"x","timeout":-5}`), field: "steps[0]", says: "must not be negative"},
		{name: "bad fallback", doc: job(`{"id":"a","type":"x","fallback":"y z"}`), field: "steps[0].fallback", says: `"y z": use 1-64 letters`},
		{name: "fallback to its own type", doc: job(`{"id":"a","type":"x","fallback":"x"}`), field: "steps[0].fallback", says: "a fallback must be another type"},
		{name: "split and decompose", doc: job(`{"id":"a","type":"x","split":1,"decompose":"d","input":[1]}`), field: "steps[0].decompose", says: "either split or decompose, not both"},
		{name: "bad decomposer", doc: job(`{"id":"a","type":"x","decompose":"by page"}`), field: "steps[0].decompose", says: `"by page": use 1-64 letters`},
		{name: "negative split", doc: job(`{"id":"a","type":"x","split":-1}`), field: "steps[0].split", says: "must not be negative"},
		{name: "bad split_by", doc: job(`{"id":"a","type":"x","split":1,"split_by":"pages","input":"t"}`), field: "steps[0].split_by", says: `"pages": want "words", "lines" or "range"`},
		{name: "range of a list", doc: job(`{"id":"a","type":"x","split":1,"split_by":"range","input":[1,2]}`), field: "steps[0].input", says: `splits {"from": A, "count": N}`},
		{name: "range without a size", doc: job(`{"id":"a","type":"x","split_by":"range","input":{"count":5}}`), field: "steps[0].split", says: `needs a chunk size`},
		{name: "split a number", doc: job(`{"id":"a","type":"x","split":1,"input":5}`), field: "steps[0].split", says: "can only split a list or a text input"},
		{name: "split an object", doc: job(`{"id":"a","type":"x","split":1,"input":{"a":1}}`), field: "steps[0].split", says: "list or a text"},
		{name: "split no input", doc: job(`{"id":"a","type":"x","split":3}`), field: "steps[0].split", says: "list or a text"},
		{name: "duplicate step ids", doc: job(step, `{"id":"b","type":"y"}`, step), field: "steps[2].id", says: `"a" is used by another step`},

		// Capabilities and resources.
		{name: "requires not a list", doc: job(`{"id":"a","type":"x","requires":"gpu"}`), field: "steps[0].requires", says: "want []string"},
		{name: "requires an empty name", doc: job(`{"id":"a","type":"x","requires":[""]}`), field: "steps[0].requires[0]", says: `"": use 1-64 letters`},
		{name: "requires a wildcard", doc: job(`{"id":"a","type":"x","requires":["gpu",">"]}`), field: "steps[0].requires[1]", says: `">": use 1-64`},
		{name: "requires a space", doc: job(`{"id":"a","type":"x","requires":["g pu"]}`), field: "steps[0].requires[0]", says: `"g pu"`},
		{name: "requires a long name", doc: job(`{"id":"a","type":"x","requires":["` + strings.Repeat("g", 65) + `"]}`), field: "steps[0].requires[0]", says: "use 1-64"},
		{name: "requires twice", doc: job(`{"id":"a","type":"x","requires":["gpu","ssd","gpu"]}`), field: "steps[0].requires[2]", says: `"gpu" is listed twice`},
		{name: "requires too many", doc: job(`{"id":"a","type":"x","requires":["a","b","c","d","e"]}`), field: "steps[0].requires", says: "5 capabilities, more than the limit of 4"},
		{name: "requires a megabyte", doc: job(`{"id":"a","type":"x","requires":["` + strings.Repeat("g", 900_000) + `"]}`), field: "steps[0].requires[0]", says: "use 1-64"},
		{name: "resources not an object", doc: job(`{"id":"a","type":"x","resources":2}`), field: "steps[0].resources", says: "want a JSON object"},
		{name: "resources unknown field", doc: job(`{"id":"a","type":"x","resources":{"gpus":1}}`), field: "steps[0].resources.gpus", says: `unknown field "gpus"`},
		{name: "negative cpus", doc: job(`{"id":"a","type":"x","resources":{"cpus":-1}}`), field: "steps[0].resources.cpus", says: "-1 is out of range 0..4096"},
		{name: "too many cpus", doc: job(`{"id":"a","type":"x","resources":{"cpus":1e9}}`), field: "steps[0].resources.cpus", says: "out of range"},
		{name: "cpus below a millicore", doc: job(`{"id":"a","type":"x","resources":{"cpus":0.0001}}`), field: "steps[0].resources.cpus", says: "below the smallest unit"},
		{name: "cpus a string", doc: job(`{"id":"a","type":"x","resources":{"cpus":"2"}}`), field: "steps[0].resources.cpus", says: "want float64"},
		{name: "memory a bad unit", doc: job(`{"id":"a","type":"x","resources":{"memory":"2 parsecs"}}`), field: "steps[0].resources", says: `size "2 parsecs"`},
		{name: "memory empty", doc: job(`{"id":"a","type":"x","resources":{"memory":""}}`), field: "steps[0].resources", says: `size ""`},
		{name: "memory negative", doc: job(`{"id":"a","type":"x","resources":{"memory":-1}}`), field: "steps[0].resources", says: "out of range 0..1PiB"},
		{name: "memory over a pebibyte", doc: job(`{"id":"a","type":"x","resources":{"memory":"2048TiB"}}`), field: "steps[0].resources", says: "more than 1PiB"},
		{name: "memory a boolean", doc: job(`{"id":"a","type":"x","resources":{"memory":true}}`), field: "steps[0].resources", says: "want a number of bytes"},

		// Dependencies.
		{name: "dangling dependency", doc: job(step, `{"id":"b","type":"x","after":["a","ghost"]}`), field: "steps[1].after[1]", says: `no step is called "ghost"`},
		{name: "waits for itself", doc: job(`{"id":"a","type":"x","after":["a"]}`), field: "steps[0].after[0]", says: `step "a" waits for itself`},
		{name: "two-step cycle", doc: job(`{"id":"a","type":"x","after":["b"]}`, `{"id":"b","type":"x","after":["a"]}`), field: "steps", says: "dependency cycle: a → b → a"},
		{name: "three-step cycle", doc: job(`{"id":"a","type":"x","after":["c"]}`, `{"id":"b","type":"x","after":["a"]}`, `{"id":"c","type":"x","after":["b"]}`),
			field: "steps", says: "dependency cycle: a → c → b → a"},
		{name: "cycle behind a good step", doc: job(step, `{"id":"b","type":"x","after":["a","c"]}`, `{"id":"c","type":"x","after":["b"]}`),
			field: "steps", says: "dependency cycle: b → c → b"},

		// Aggregation.
		{name: "aggregate names no step", doc: withAggregate(`{"steps":["a","zz"]}`), field: "aggregate.steps[1]", says: `no step is called "zz"`},
		{name: "reduce without op", doc: withAggregate(`{"strategy":"reduce","field":"n"}`), field: "aggregate.op", says: "missing: reduce needs one of sum, avg, min, max, count"},
		{name: "reduce with a bad op", doc: withAggregate(`{"strategy":"reduce","op":"median","field":"n"}`), field: "aggregate.op", says: `"median": want one of`},
		{name: "reduce without field", doc: withAggregate(`{"strategy":"reduce","op":"sum"}`), field: "aggregate.field", says: "missing: which field to sum"},
		{name: "transform without select", doc: withAggregate(`{"strategy":"transform"}`), field: "aggregate.select", says: "missing: transform needs"},
		{name: "unknown strategy", doc: withAggregate(`{"strategy":"magic"}`), field: "aggregate.strategy", says: `"magic": want merge, reduce or transform`},

		// Synthesis: named fields, computed fields, interpolation.
		{name: "fields not an object", doc: withAggregate(`{"fields":[]}`), field: "aggregate.fields", says: "got JSON array"},
		{name: "fields empty", doc: withAggregate(`{"fields":{}}`), field: "aggregate.fields", says: "empty: name at least one field"},
		{name: "too many fields", doc: withAggregate(`{"fields":{` + manyFields(33) + `}}`), field: "aggregate.fields", says: "33 fields, more than the limit of 32"},
		{name: "bad field name", doc: withAggregate(`{"fields":{"a b":{"field":"x"}}}`), field: "aggregate.fields", says: `"a b": a field name uses 1-64 letters`},
		{name: "field not an object", doc: withAggregate(`{"fields":{"a":"text"}}`), field: "aggregate.fields.a", says: "want a JSON object, got JSON string"},
		{name: "unknown key in a field", doc: withAggregate(`{"fields":{"a":{"colour":1}}}`), field: "aggregate.fields.a.colour", says: `unknown field "colour"`},
		{name: "field op not a string", doc: withAggregate(`{"fields":{"a":{"op":1}}}`), field: "aggregate.fields.a.op", says: "want string, got JSON number"},
		{name: "field with a bad op", doc: withAggregate(`{"fields":{"a":{"op":"median","field":"x"}}}`), field: "aggregate.fields.a.op", says: `"median": want one of sum, avg`},
		{name: "reduce field without op", doc: withAggregate(`{"fields":{"a":{"strategy":"reduce","field":"x"}}}`), field: "aggregate.fields.a.op", says: "missing: reduce needs one of"},
		{name: "op with another strategy", doc: withAggregate(`{"fields":{"a":{"strategy":"merge","op":"sum","field":"x"}}}`), field: "aggregate.fields.a.op", says: `an op makes a reduce field, but strategy is "merge"`},
		{name: "reduce field without field", doc: withAggregate(`{"fields":{"a":{"op":"avg"}}}`), field: "aggregate.fields.a.field", says: "missing: which field to avg"},
		{name: "reduce field that sorts", doc: withAggregate(`{"fields":{"a":{"op":"sum","field":"x","sort_by":"y"}}}`), field: "aggregate.fields.a", says: "a reduce field takes only op and field"},
		{name: "field with a bad strategy", doc: withAggregate(`{"fields":{"a":{"strategy":"magic"}}}`), field: "aggregate.fields.a.strategy", says: `"magic": want merge, reduce or transform`},
		{name: "merge field with compute", doc: withAggregate(`{"fields":{"a":{"compute":{"b":"1"}}}}`), field: "aggregate.fields.a.strategy", says: `select and compute need strategy "transform"`},
		{name: "transform field without select", doc: withAggregate(`{"fields":{"a":{"strategy":"transform"}}}`), field: "aggregate.fields.a.select", says: "missing: transform needs select"},
		{name: "join too long", doc: withAggregate(`{"fields":{"a":{"field":"t","join":"` + strings.Repeat("-", 300) + `"}}}`), field: "aggregate.fields.a.join", says: "300 bytes, more than the limit of 256"},
		{name: "expression field with more", doc: withAggregate(`{"fields":{"a":{"expr":"1","op":"sum"}}}`), field: "aggregate.fields.a.expr", says: "an expression field takes nothing else"},
		{name: "expression field syntax", doc: withAggregate(`{"fields":{"a":{"expr":"len(items) +"}}}`), field: "aggregate.fields.a.expr", says: "line 1, column 12: unexpected token EOF"},
		{name: "expression field sees no item", doc: withAggregate(`{"fields":{"a":{"expr":"item.score"}}}`), field: "aggregate.fields.a.expr", says: "line 1, column 1: unknown name item"},
		{name: "compute syntax", doc: withAggregate(`{"strategy":"transform","compute":{"pct":"item.score * * 100"}}`), field: "aggregate.compute.pct", says: "line 1, column 14: unexpected token Operator(\"*\")"},
		{name: "compute unknown name", doc: withAggregate(`{"strategy":"transform","compute":{"pct":"item.score *\n  scale"}}`), field: "aggregate.compute.pct", says: "line 2, column 3: unknown name scale"},
		{name: "compute function not allowed", doc: withAggregate(`{"strategy":"transform","compute":{"t":"upper(item.text)"}}`), field: "aggregate.compute.t", says: "line 1, column 1: unknown name upper"},
		{name: "compute sees no items", doc: withAggregate(`{"strategy":"transform","compute":{"n":"len(items)"}}`), field: "aggregate.compute.n", says: "unknown name items"},
		{name: "compute empty", doc: withAggregate(`{"strategy":"transform","compute":{"n":" "}}`), field: "aggregate.compute.n", says: "empty expression"},
		{name: "compute too long", doc: withAggregate(`{"strategy":"transform","compute":{"n":"` + strings.Repeat("1+", 600) + `1"}}`), field: "aggregate.compute.n", says: "1201 bytes, more than the limit of 1024"},
		{name: "compute too many nodes", doc: withAggregate(`{"strategy":"transform","compute":{"n":"` + strings.Repeat("1+", 300) + `1"}}`), field: "aggregate.compute.n", says: "exceeds maximum allowed nodes"},
		{name: "compute not a string", doc: withAggregate(`{"strategy":"transform","compute":{"n":1}}`), field: "aggregate.compute", says: "want string, got JSON number"},
		{name: "compute unnamed", doc: withAggregate(`{"strategy":"transform","compute":{"":"1"}}`), field: "aggregate.compute", says: `"": a computed field's name has 1-64 bytes`},
		{name: "too many computed fields", doc: withAggregate(`{"strategy":"transform","compute":{` + manyFields(33) + `}}`), field: "aggregate.compute", says: "33 fields, more than the limit of 32"},
		{name: "compute in a named field", doc: withAggregate(`{"fields":{"a":{"strategy":"transform","compute":{"b":"nope"}}}}`), field: "aggregate.fields.a.compute.b", says: "unknown name nope"},
		{name: "unknown interpolation", doc: withAggregate(`{"fallback":{"interpolate":"linear"}}`), field: "aggregate.fallback.interpolate", says: `"linear": want "mean", "median" or "previous"`},
		{name: "interpolation not a text", doc: withAggregate(`{"fallback":{"interpolate":5}}`), field: "aggregate.fallback.interpolate", says: `5: want "mean"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := events.ParseJob([]byte(tc.doc), tc.limits)
			if got != nil {
				t.Errorf("got a job %+v", got)
			}
			requireInvalid(t, err, tc.field, tc.says)
		})
	}
}

// TestJob_Validate covers what only a job built in Go can get wrong (JSON
// that ParseJob decoded is always valid JSON).
func TestJob_Validate(t *testing.T) {
	t.Parallel()
	steps := func() []events.Step { return []events.Step{{ID: "a", Type: "x"}} }
	for _, tc := range []struct {
		name        string
		job         events.Job
		field, says string
	}{
		{"input not JSON", events.Job{Steps: []events.Step{{ID: "a", Type: "x", Input: json.RawMessage(`{oops`)}}}, "steps[0].input", "not valid JSON"},
		{"aggregate fallback not JSON", events.Job{Steps: steps(), Aggregate: events.Aggregate{Fallback: json.RawMessage(`nope`)}}, "aggregate.fallback", "not valid JSON"},
		{"negative backoff", events.Job{Steps: []events.Step{{ID: "a", Type: "x", Backoff: events.Duration(-time.Second)}}}, "steps[0]", "must not be negative"},
		{"split a list with a space first", events.Job{Steps: []events.Step{{ID: "a", Type: "x", Split: 1, Input: json.RawMessage(` 7`)}}}, "steps[0].split", "list or a text"},
		{"no steps", events.Job{}, "steps", "at least one step"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			requireInvalid(t, tc.job.Validate(), tc.field, tc.says)
		})
	}
	t.Run("sample", func(t *testing.T) {
		t.Parallel()
		if err := sampleJob().Validate(); err != nil {
			t.Error(err)
		}
	})
}

func TestParseJob_Accepts(t *testing.T) {
	t.Parallel()
	const step = `{"id":"a","type":"x"}`
	for _, tc := range []struct {
		name, doc string
		limits    events.Limits
		want      *events.Job
	}{
		{name: "minimal", doc: `{"steps":[` + step + `]}`,
			want: &events.Job{Steps: []events.Step{{ID: "a", Type: "x"}}}},
		{name: "surrounded by blanks", doc: "\n {\"steps\":[" + step + "]} \n",
			want: &events.Job{Steps: []events.Step{{ID: "a", Type: "x"}}}},
		{name: "exactly at the byte limit", doc: `{"steps":[` + step + `]}`, limits: events.Limits{MaxBytes: len(`{"steps":[` + step + `]}`)},
			want: &events.Job{Steps: []events.Step{{ID: "a", Type: "x"}}}},
		{name: "durations as strings and milliseconds", doc: `{"steps":[{"id":"a","type":"x","backoff":"250ms","max_backoff":1500,"timeout":"1m30s"}]}`,
			want: &events.Job{Steps: []events.Step{{ID: "a", Type: "x", Backoff: events.Duration(250 * time.Millisecond),
				MaxBackoff: events.Duration(1500 * time.Millisecond), Timeout: events.Duration(90 * time.Second)}}}},
		{name: "null duration and aggregate", doc: `{"steps":[{"id":"a","type":"x","timeout":null}],"aggregate":null}`,
			want: &events.Job{Steps: []events.Step{{ID: "a", Type: "x"}}}},
		{name: "edges of the ranges", doc: `{"success_threshold":0,"max_parallel":0,"steps":[{"id":"a","type":"x","priority":5,"retries":0},{"id":"b","type":"x","priority":1,"retries":100}]}`,
			want: &events.Job{SuccessThreshold: ptr(0.0), Steps: []events.Step{{ID: "a", Type: "x", Priority: 5, Retries: ptr(0)}, {ID: "b", Type: "x", Priority: 1, Retries: ptr(100)}}}},
		{name: "split text by words", doc: `{"steps":[{"id":"a","type":"x","split":2,"split_by":"words","input":"one two three"}]}`,
			want: &events.Job{Steps: []events.Step{{ID: "a", Type: "x", Split: 2, SplitBy: "words", Input: json.RawMessage(`"one two three"`)}}}},
		{name: "diamond", doc: `{"steps":[{"id":"a","type":"x"},{"id":"b","type":"x","after":["a"]},{"id":"c","type":"x","after":["a"]},{"id":"d","type":"x","after":["b","c"]}]}`,
			want: &events.Job{Steps: []events.Step{{ID: "a", Type: "x"}, {ID: "b", Type: "x", After: []string{"a"}}, {ID: "c", Type: "x", After: []string{"a"}}, {ID: "d", Type: "x", After: []string{"b", "c"}}}}},
		{name: "count without a field", doc: `{"steps":[` + step + `],"aggregate":{"strategy":"reduce","op":"count"}}`,
			want: &events.Job{Steps: []events.Step{{ID: "a", Type: "x"}}, Aggregate: events.Aggregate{Strategy: events.StrategyReduce, Op: "count"}}},
		{name: "transform", doc: `{"steps":[` + step + `],"aggregate":{"strategy":"transform","select":{"t":"title"}}}`,
			want: &events.Job{Steps: []events.Step{{ID: "a", Type: "x"}}, Aggregate: events.Aggregate{Strategy: events.StrategyTransform, Select: map[string]string{"t": "title"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := events.ParseJob([]byte(tc.doc), tc.limits)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parsed %+v\nwant   %+v", got, tc.want)
			}
		})
	}
}

func TestParseJob_Examples(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		check func(*testing.T, *events.Job, error)
	}{
		{"report", func(t *testing.T, job *events.Job, err error) {
			if err != nil {
				t.Fatal(err)
			}
			if job.Name != "quarterly-report" || len(job.Steps) != 3 || job.Threshold() != 0.8 {
				t.Errorf("parsed %+v", job)
			}
			if s := job.Steps[2]; s.ID != "summary" || !s.Critical || !reflect.DeepEqual(s.After, []string{"research", "metrics"}) {
				t.Errorf("summary step %+v", s)
			}
		}},
		{"parallel", func(t *testing.T, job *events.Job, err error) {
			if err != nil {
				t.Fatal(err)
			}
			want := events.Aggregate{Strategy: events.StrategyReduce, Op: "sum", Field: "slept_ms"}
			if len(job.Steps) != 1 || job.Steps[0].Split != 1 || !reflect.DeepEqual(job.Aggregate, want) {
				t.Errorf("parsed %+v", job)
			}
		}},
		{"invalid", func(t *testing.T, job *events.Job, err error) {
			if job != nil {
				t.Errorf("got a job %+v", job)
			}
			requireInvalid(t, err, "steps", "dependency cycle: a → b → a")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := examples.Job(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			job, err := events.ParseJob(b, events.Limits{})
			tc.check(t, job, err)
		})
	}
}

func TestJob_Threshold(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		set  *float64
		want float64
	}{
		{"default", nil, 1},
		{"zero", ptr(0.0), 0},
		{"set", ptr(0.8), 0.8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := events.Job{SuccessThreshold: tc.set}
			if got := j.Threshold(); got != tc.want {
				t.Errorf("Threshold() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLimits_WithDefaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		in, want events.Limits
	}{
		{"zero", events.Limits{}, events.Limits{MaxBytes: events.DefaultMaxJobBytes, MaxTasks: events.DefaultMaxTasks}},
		{"negative", events.Limits{MaxBytes: -1, MaxTasks: -1}, events.Limits{MaxBytes: events.DefaultMaxJobBytes, MaxTasks: events.DefaultMaxTasks}},
		{"set", events.Limits{MaxBytes: 10, MaxTasks: 20}, events.Limits{MaxBytes: 10, MaxTasks: 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.in.WithDefaults(); got != tc.want {
				t.Errorf("WithDefaults() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDuration_UnmarshalJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     time.Duration
		says     string // in the error; empty for none
	}{
		{name: "string", in: `"250ms"`, want: 250 * time.Millisecond},
		{name: "compound string", in: `"1m30s"`, want: 90 * time.Second},
		{name: "milliseconds", in: `1500`, want: 1500 * time.Millisecond},
		{name: "fractional milliseconds", in: `1.5`, want: 1500 * time.Microsecond},
		{name: "negative milliseconds", in: `-5`, want: -5 * time.Millisecond}, // Validate refuses it
		{name: "null leaves it alone", in: `null`, want: 7},
		{name: "a year of milliseconds", in: `31536000000`, want: 365 * 24 * time.Hour},
		{name: "not a duration", in: `"soon"`, says: `duration "soon": want a form like "250ms" or "2s"`},
		{name: "empty string", in: `""`, says: `duration ""`},
		{name: "boolean", in: `true`, says: "a number of milliseconds"},
		{name: "object", in: `{}`, says: "a number of milliseconds"},
		{name: "too long", in: `1e13`, says: "out of range"},
		{name: "too negative", in: `-1e300`, says: "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := events.Duration(7)
			err := json.Unmarshal([]byte(tc.in), &d)
			switch {
			case tc.says != "":
				if err == nil || !strings.Contains(err.Error(), tc.says) {
					t.Errorf("error %v, want one saying %q", err, tc.says)
				}
			case err != nil:
				t.Error(err)
			case d.D() != tc.want:
				t.Errorf("got %v, want %v", d.D(), tc.want)
			}
		})
	}
}

func TestDuration_MarshalJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   time.Duration
		want string
	}{
		{"zero", 0, `"0s"`},
		{"fraction", 1500 * time.Millisecond, `"1.5s"`},
		{"minutes", 90 * time.Second, `"1m30s"`},
		{"negative", -time.Millisecond, `"-1ms"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(events.Duration(tc.in))
			if err != nil || string(b) != tc.want {
				t.Fatalf("got %s, %v; want %s", b, err, tc.want)
			}
			var back events.Duration
			if err := json.Unmarshal(b, &back); err != nil || back.D() != tc.in {
				t.Errorf("read back %v, %v", back.D(), err)
			}
		})
	}
}

func TestValidationError_Error(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  *events.ValidationError
		want string
	}{
		{"whole document", &events.ValidationError{Reason: "empty document"}, "invalid job: empty document"},
		{"field", &events.ValidationError{Field: "steps[0].id", Reason: "missing"}, "invalid job: steps[0].id: missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
			if !errors.Is(tc.err, events.ErrInvalidJob) {
				t.Error("does not wrap ErrInvalidJob")
			}
		})
	}
}
