package aggregator

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/baton-dev/baton/pkg/events"
)

// TestEncodeOutput_Fits: a final output larger than a message may be loses
// its data, then halves of its lists, until it fits, and its first error
// says so; a partial one is refused whole (sendPartials splits it); one
// that fits is as it was.
func TestEncodeOutput_Fits(t *testing.T) {
	t.Parallel()
	big := func(errs, missing int) events.Output {
		out := events.Output{Workflow: "wf", Kind: events.OutputFinal, Status: events.OutcomePartial,
			Data:     json.RawMessage(`"` + strings.Repeat("x", 50_000) + `"`),
			Metadata: &events.Metadata{Agents: []string{"agent-1", "agent-2"}}}
		for i := range errs {
			out.Errors = append(out.Errors, events.TaskError{Task: fmt.Sprintf("t-%d", i), Kind: events.KindError, Message: strings.Repeat("e", 200)})
		}
		for i := range missing {
			out.Missing = append(out.Missing, fmt.Sprintf("t-%d", i))
		}
		return out
	}
	for _, tc := range []struct {
		name             string
		out              events.Output
		max              int
		wantData         bool
		wantErrs, wantMs int // at least, beside the too_large error
	}{
		{name: "fits as it is", out: big(3, 3), max: 1 << 20, wantData: true, wantErrs: 3, wantMs: 3},
		{name: "data left out", out: big(3, 3), max: 10_000, wantErrs: 3, wantMs: 3},
		{name: "lists cut too", out: big(1000, 1000), max: 20_000, wantErrs: 1, wantMs: 1},
		{name: "everything cut", out: big(1000, 1000), max: 1_200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := encodeOutput(tc.out, tc.max)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > tc.max {
				t.Fatalf("%d bytes, more than %d", len(b), tc.max)
			}
			var got events.Output
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if got.Status != tc.out.Status || got.Workflow != "wf" {
				t.Errorf("status %s of %s, want %s of wf", got.Status, got.Workflow, tc.out.Status)
			}
			if tc.wantData {
				if string(got.Data) != string(tc.out.Data) || len(got.Errors) != len(tc.out.Errors) {
					t.Errorf("an output that fits was changed")
				}
				return
			}
			if (got.Data != nil && string(got.Data) != "null") || len(got.Errors) == 0 || got.Errors[0].Kind != events.KindTooLarge || !strings.Contains(got.Errors[0].Message, "data is left out") {
				t.Fatalf("data %.20s, %d errors: want no data and a too_large error first", got.Data, len(got.Errors))
			}
			if len(got.Errors)-1 < tc.wantErrs || len(got.Missing) < tc.wantMs {
				t.Errorf("%d errors and %d missing kept, want at least %d and %d", len(got.Errors)-1, len(got.Missing), tc.wantErrs, tc.wantMs)
			}
			if cut := len(tc.out.Errors) - (len(got.Errors) - 1); cut > 0 && !strings.Contains(got.Errors[0].Message, fmt.Sprintf("%d errors", cut)) {
				t.Errorf("message %q does not count the %d errors left out", got.Errors[0].Message, cut)
			}
		})
	}
	partial := big(0, 0)
	partial.Kind = events.OutputPartial
	if _, err := encodeOutput(partial, 10_000); err != errPartialTooLarge {
		t.Errorf("a partial output too large: %v, want errPartialTooLarge", err)
	}
}

// TestFitPartial: a partial output too large holds fewer results, halving
// until it fits; a result whose data alone is too much is listed without
// it; one too much even so is refused, not tried for ever.
func TestFitPartial(t *testing.T) {
	t.Parallel()
	entry := func(task string, size int) events.TaskOutput {
		return events.TaskOutput{Task: task, Status: events.StateCompleted, Data: json.RawMessage(`"` + strings.Repeat("x", size) + `"`)}
	}
	encode := func(results []events.TaskOutput, max int) func(n int) ([]byte, error) {
		return func(n int) ([]byte, error) {
			return encodeOutput(events.Output{Workflow: "wf", Kind: events.OutputPartial, Results: results[:n]}, max)
		}
	}
	var many []events.TaskOutput
	for i := range 10 {
		many = append(many, entry(fmt.Sprintf("t-%d", i), 1000))
	}
	n, b, err := fitPartial(many, 8, encode(many, 2500))
	if err != nil || n != 2 || len(b) > 2500 {
		t.Errorf("10 results of 1000 bytes in 2500: %d of them in %d bytes (%v), want 2", n, len(b), err)
	}
	one := []events.TaskOutput{entry("big", 5000), entry("t-1", 10)}
	n, b, err = fitPartial(one, 8, encode(one, 2500))
	if err != nil || n != 1 || !one[0].DataTooLarge || one[0].Data != nil || !strings.Contains(string(b), `"data_too_large":true`) {
		t.Errorf("a result of 5000 bytes in 2500: %d results, %s (%v), want it listed without data", n, b, err)
	}
	long := []events.TaskOutput{{Task: strings.Repeat("t", 3000), Status: events.StateCompleted}}
	if _, _, err := fitPartial(long, 8, encode(long, 2500)); err != errPartialTooLarge {
		t.Errorf("a result too large without data: %v, want errPartialTooLarge", err)
	}
}
