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
