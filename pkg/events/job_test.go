package events_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/baton-dev/baton/pkg/events"
)

// TestParseJob_Rejects covers every way a job is refused: the field named
// and the reason given.
func TestParseJob_Rejects(t *testing.T) {
	t.Parallel()
	step := `{"id":"a","type":"x"}`
	job := func(steps ...string) string { return `{"steps":[` + strings.Join(steps, ",") + `]}` }
	for _, tc := range []struct {
		name, doc, field, says string
	}{
		{"too big", `{"steps":[{"id":"a","type":"x","input":"` + strings.Repeat("x", 2000) + `"}]}`, "", "more than the limit of 1000"},
		{"empty", `  `, "", "empty document"},
		{"malformed", `{"steps":[`, "", "ends early"},
		{"syntax", `{"steps":[}`, "", "malformed JSON at byte"},
		{"wrong type", `{"steps":{}}`, "steps", "want"},
		{"unknown field", `{"steps":[],"colour":1}`, "colour", "unknown field"},
		{"unknown step field", job(`{"id":"a","type":"x","retry":1}`), "steps[0].retry", "unknown field"},
		{"trailing data", `{"steps":[]} x`, "", ""},
		{"bad id", `{"id":"a.b","steps":[` + step + `]}`, "id", "letters"},
		{"no steps", `{"steps":[]}`, "steps", "at least one step"},
		{"negative max_parallel", `{"max_parallel":-1,"steps":[` + step + `]}`, "max_parallel", "negative"},
		{"threshold", `{"success_threshold":1.5,"steps":[` + step + `]}`, "success_threshold", "between 0 and 1"},
		{"empty step", job(`{}`), "steps[0].id", "missing"},
		{"bad step id", job(`{"id":"a b","type":"x"}`), "steps[0].id", "letters"},
		{"no type", job(`{"id":"a"}`), "steps[0].type", "missing"},
		{"bad type", job(`{"id":"a","type":"x.y"}`), "steps[0].type", "letters"},
		{"priority", job(`{"id":"a","type":"x","priority":6}`), "steps[0].priority", "out of range"},
		{"retries", job(`{"id":"a","type":"x","retries":101}`), "steps[0].retries", "out of range"},
		{"negative timeout", job(`{"id":"a","type":"x","timeout":-5}`), "steps[0]", "negative"},
		{"bad duration", job(`{"id":"a","type":"x","backoff":"soon"}`), "steps[0]", "duration"},
		{"bad fallback", job(`{"id":"a","type":"x","fallback":"y z"}`), "steps[0].fallback", "letters"},
		{"fallback to itself", job(`{"id":"a","type":"x","fallback":"x"}`), "steps[0].fallback", "another type"},
		{"split and decompose", job(`{"id":"a","type":"x","split":1,"decompose":"d","input":[1]}`), "steps[0].decompose", "not both"},
		{"negative split", job(`{"id":"a","type":"x","split":-1}`), "steps[0].split", "negative"},
		{"split_by", job(`{"id":"a","type":"x","split":1,"split_by":"pages","input":"t"}`), "steps[0].split_by", "words"},
		{"split a number", job(`{"id":"a","type":"x","split":1,"input":5}`), "steps[0].split", "list or a text"},
		{"duplicate id", job(step, step), "steps[1].id", "used by another step"},
		{"dangling dependency", job(`{"id":"a","type":"x","after":["ghost"]}`), "steps[0].after[0]", `no step is called "ghost"`},
		{"waits for itself", job(`{"id":"a","type":"x","after":["a"]}`), "steps[0].after[0]", "waits for itself"},
		{"cycle", job(`{"id":"a","type":"x","after":["c"]}`, `{"id":"b","type":"x","after":["a"]}`, `{"id":"c","type":"x","after":["b"]}`), "steps", "dependency cycle"},
		{"aggregate step", `{"steps":[` + step + `],"aggregate":{"steps":["zz"]}}`, "aggregate.steps[0]", "no step"},
		{"reduce without op", `{"steps":[` + step + `],"aggregate":{"strategy":"reduce","field":"n"}}`, "aggregate.op", "missing"},
		{"reduce bad op", `{"steps":[` + step + `],"aggregate":{"strategy":"reduce","op":"median","field":"n"}}`, "aggregate.op", "median"},
		{"reduce without field", `{"steps":[` + step + `],"aggregate":{"strategy":"reduce","op":"sum"}}`, "aggregate.field", "missing"},
		{"transform without select", `{"steps":[` + step + `],"aggregate":{"strategy":"transform"}}`, "aggregate.select", "missing"},
		{"strategy", `{"steps":[` + step + `],"aggregate":{"strategy":"magic"}}`, "aggregate.strategy", "magic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := events.ParseJob([]byte(tc.doc), events.Limits{MaxBytes: 1000})
			var ve *events.ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, events.ErrInvalidJob) {
				t.Fatalf("error %v, want a ValidationError", err)
			}
			if ve.Field != tc.field || !strings.Contains(ve.Reason, tc.says) {
				t.Errorf("field %q reason %q; want field %q and a reason with %q", ve.Field, ve.Reason, tc.field, tc.says)
			}
		})
	}
}

func TestParseJob_Examples(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file  string
		valid bool
	}{{"report", true}, {"parallel", true}, {"invalid", false}} {
		b, err := os.ReadFile("../../examples/" + tc.file + ".json")
		if err != nil {
			t.Fatal(err)
		}
		job, err := events.ParseJob(b, events.Limits{})
		if (err == nil) != tc.valid {
			t.Errorf("%s: %v", tc.file, err)
		}
		if tc.valid && len(job.Steps) == 0 {
			t.Errorf("%s: no steps", tc.file)
		}
	}
}
