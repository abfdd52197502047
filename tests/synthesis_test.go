package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/events"
)

// TestSynthesis_BriefExample submits the brief's synthesis,
// {"summary": merge(texts), "confidence": avg(scores)}, as a job of named
// fields, with an expression field, computed fields and a mean interpolated
// for the one document whose agent fails; then checks the final output and
// that a job with a bad expression is refused at submission with its
// position.
func TestSynthesis_BriefExample(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.planner()
	e.aggregator()
	e.agent("reader", 4, map[string]agent.Handler{
		"read": agent.HandlerFunc(func(_ context.Context, t *agent.Task) (any, error) {
			var in []struct {
				Text  string  `json:"text"`
				Score float64 `json:"score"`
			}
			if err := t.Bind(&in); err != nil {
				return nil, err
			}
			if in[0].Text == "" {
				return nil, agent.Permanent(errors.New("nothing to read"))
			}
			return map[string]any{"text": in[0].Text, "score": in[0].Score}, nil
		}),
	})
	job := `{
	  "id": "brief-synthesis",
	  "success_threshold": 0.75,
	  "steps": [{"id": "read", "type": "read", "split": 1, "retries": 0, "input": [
	    {"text": "Revenue grew 12%.", "score": 0.75},
	    {"text": "Costs were flat.", "score": 0.5},
	    {"text": "", "score": 0},
	    {"text": "Churn fell.", "score": 1}
	  ]}],
	  "aggregate": {
	    "fields": {
	      "summary":    {"strategy": "merge", "field": "text", "join": " "},
	      "confidence": {"op": "avg", "field": "score"},
	      "verdict":    {"expr": "fields.confidence >= 0.7 ? \"confident\" : \"tentative\""},
	      "scores":     {"strategy": "transform", "select": {"score": "score"}, "compute": {"pct": "round(item.score * 100)"}}
	    },
	    "fallback": {"interpolate": "mean"}
	  }
	}`
	out := e.final(e.submit([]byte(job)), time.Minute)
	if out.Status != events.OutcomePartial {
		t.Errorf("status %s, want partial (3 of 4 read, threshold 0.75)", out.Status)
	}
	var data, want any
	if err := json.Unmarshal(out.Data, &data); err != nil {
		t.Fatalf("data %s: %v", out.Data, err)
	}
	// read-2 failed; its stand-in has the mean score of the others, 0.75,
	// and no text.
	_ = json.Unmarshal([]byte(`{
	  "summary": "Revenue grew 12%. Costs were flat. Churn fell.",
	  "confidence": 0.75,
	  "verdict": "confident",
	  "scores": [{"score": 0.75, "pct": 75}, {"score": 0.5, "pct": 50}, {"score": 0.75, "pct": 75}, {"score": 1, "pct": 100}]
	}`), &want)
	if fmt.Sprint(data) != fmt.Sprint(want) {
		t.Errorf("data %s\nwant %v", out.Data, want)
	}
	if m := out.Metadata; m.Interpolation != events.InterpolateMean || !slices.Equal(m.Interpolated, []string{"read-2"}) {
		t.Errorf("metadata interpolation %q interpolated %q, want mean and read-2", m.Interpolation, m.Interpolated)
	}
	if !slices.Equal(out.Missing, []string{"read-2"}) || len(out.Errors) != 1 || out.Errors[0].Task != "read-2" || out.Errors[0].Kind != events.KindPermanent {
		t.Errorf("missing %q errors %+v, want read-2 in both", out.Missing, out.Errors)
	}

	// A bad expression is refused at submission, naming the field and the
	// position.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bad := strings.Replace(job, `round(item.score * 100)`, `round(item.score * )`, 1)
	bad = strings.Replace(bad, `"brief-synthesis"`, `"brief-bad"`, 1)
	_, err := e.cl.Submit(ctx, []byte(bad))
	var ve *events.ValidationError
	if !errors.As(err, &ve) || ve.Field != "aggregate.fields.scores.compute.pct" || !strings.HasPrefix(ve.Reason, "line 1, column 20: ") {
		t.Errorf("submit with a bad expression: %v, want a validation error for aggregate.fields.scores.compute.pct at line 1, column 20", err)
	}
}
