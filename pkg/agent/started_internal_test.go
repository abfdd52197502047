package agent

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/baton-dev/baton/pkg/events"
)

// TestStarts_GatheredPerWorkflow: the starts noted before a window ends
// go out as one event per workflow, in the order they started; a batch
// that reaches MaxStartedTasks goes at once; what is left goes when run
// ends, and later starts at once.
func TestStarts_GatheredPerWorkflow(t *testing.T) {
	t.Parallel()
	sent := make(chan events.Event, 16)
	s := newStarts(func(e events.Event) { sent <- e })
	at := time.Unix(1000, 0).UTC()
	next := func(what string) events.Event {
		t.Helper()
		select {
		case e := <-sent:
			return e
		case <-time.After(10 * time.Second):
			t.Fatalf("no event: %s", what)
			return events.Event{}
		}
	}
	names := func(e events.Event) string { return fmt.Sprint(e.Workflow, e.StartedTasks()) }

	// Noted before run looks: one window's worth.
	s.add("wf-a", "t1", "agent-1", at)
	s.add("wf-b", "u1", "agent-1", at.Add(time.Millisecond))
	s.add("wf-a", "t2", "agent-1", at.Add(2*time.Millisecond))
	// A full batch goes at once, without waiting for the window.
	for i := range events.MaxStartedTasks {
		s.add("wf-c", fmt.Sprintf("c%d", i), "agent-1", at)
	}
	full := next("a full batch")
	if full.Workflow != "wf-c" || len(full.StartedTasks()) != events.MaxStartedTasks || full.Task != "c0" ||
		full.Tasks[len(full.Tasks)-1] != fmt.Sprintf("c%d", events.MaxStartedTasks-1) {
		t.Fatalf("full batch: %s with %d tasks", full.Workflow, len(full.StartedTasks()))
	}
	select {
	case e := <-sent:
		t.Fatalf("sent %s before its window ended", names(e))
	default:
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.run(ctx) })
	got := []string{names(next("the window's first")), names(next("the window's second"))}
	slices.Sort(got)
	if want := []string{"wf-a[t1 t2]", "wf-b[u1]"}; !slices.Equal(got, want) {
		t.Errorf("window sent %q, want %q", got, want)
	}

	// Left when run ends: sent as it ends.
	s.add("wf-d", "d1", "agent-1", at)
	cancel()
	wg.Wait()
	var rest []string
	for len(sent) > 0 {
		rest = append(rest, names(<-sent))
	}
	// d1 went either with a window that ended first or as run ended.
	if !slices.Equal(rest, []string{"wf-d[d1]"}) {
		t.Errorf("after run: %q, want [wf-d[d1]]", rest)
	}
	s.add("wf-e", "e1", "agent-1", at)
	if e := next("a start after run"); names(e) != "wf-e[e1]" || e.Agent != "agent-1" || !e.Time.Equal(at) || e.Kind != events.EventStarted {
		t.Errorf("after run: %+v", e)
	}
}
