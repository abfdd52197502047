package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/builtin"
	"github.com/baton-dev/baton/pkg/events"
)

// TestPipeline_NatsCLI submits a job of 11 tasks over three types with
// dependencies using the stock nats CLI, to a planner, an aggregator and one
// agent per type, each its own OS process, and checks the final output
// against values computed here.
func TestPipeline_NatsCLI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, streams.Config{})
	e.start("planner", "planner")
	e.start("aggregator", "aggregator")
	for _, typ := range []string{"research", "data", "write"} {
		e.start("agent-"+typ, "agent", "--types", typ, "--id", "agent-"+typ, "--concurrency", "3")
	}

	vocab := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"}
	var words []string
	wantCounts := map[string]int{}
	for i := range 50 {
		w := vocab[(i*i+3*i)%len(vocab)]
		words = append(words, w)
		wantCounts[w]++
	}
	lists := [][]float64{{3, 1, 4}, {1, 5, 9, 2}, {6, 5}, {3, 5, 8, 9}, {7, 9, 3, 2, 3}}
	var count int
	var sum float64
	lo, hi := lists[0][0], lists[0][0]
	for _, l := range lists {
		for _, v := range l {
			count++
			sum += v
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	job := map[string]any{
		"id": "e2e-nats-cli", "name": "three types",
		"steps": []map[string]any{
			{"id": "words", "type": "research", "split": 10, "input": strings.Join(words, " ")},
			{"id": "numbers", "type": "data", "split": 1, "input": lists},
			{"id": "summary", "type": "write", "after": []string{"words", "numbers"}, "input": "E2E", "critical": true},
		},
	}
	body, _ := json.Marshal(job)

	pub := exec.Command("go", "tool", "nats", "--server", e.url(), "pub", "-J", e.cfg.Subjects().Submit())
	pub.Stdin = bytes.NewReader(body)
	if out, err := pub.CombinedOutput(); err != nil {
		t.Fatalf("go tool nats pub: %v\n%s", err, out)
	}

	out := e.final("e2e-nats-cli", 2*time.Minute)
	if out.Status != events.OutcomeSuccess {
		t.Fatalf("status %q, errors %+v", out.Status, out.Errors)
	}
	if got := out.Metadata.Tasks; got.Total != 11 || got.Completed != 11 {
		t.Fatalf("tasks %+v, want 11 completed", got)
	}
	var summaries []builtin.Summary
	if err := json.Unmarshal(out.Data, &summaries); err != nil || len(summaries) != 1 {
		t.Fatalf("data %s: want one summary (%v)", out.Data, err)
	}
	s := summaries[0]
	if s.Sources != 10 || s.Words != len(words) || len(s.Missing) != 0 {
		t.Errorf("summary sources %d words %d missing %v; want 10, %d, none", s.Sources, s.Words, s.Missing, len(words))
	}
	if s.Stats == nil || s.Stats.Count != count || s.Stats.Sum != sum || s.Stats.Min != lo || s.Stats.Max != hi {
		t.Errorf("stats %+v; want count %d sum %v min %v max %v", s.Stats, count, sum, lo, hi)
	}
	var want []builtin.Keyword
	for w, c := range wantCounts {
		want = append(want, builtin.Keyword{Word: w, Count: c})
	}
	sort.Slice(want, func(i, j int) bool {
		if want[i].Count != want[j].Count {
			return want[i].Count > want[j].Count
		}
		return want[i].Word < want[j].Word
	})
	if fmt.Sprint(s.Keywords) != fmt.Sprint(want) {
		t.Errorf("keywords %v, want %v", s.Keywords, want)
	}
	if got := out.Metadata.Agents; fmt.Sprint(got) != "[agent-data agent-research agent-write]" {
		t.Errorf("agents used %v", got)
	}
	finals, _ := e.results("e2e-nats-cli")
	if len(finals) != 11 {
		t.Errorf("final results for %d tasks, want 11", len(finals))
	}
	for task, n := range finals {
		if n != 1 {
			t.Errorf("task %s has %d final results", task, n)
		}
	}
}
