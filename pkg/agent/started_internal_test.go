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

// TestStarts_FirstAtOnceThenGathered: the first start of a window goes out
// at once; the starts after it are gathered, one event per workflow, until
// the window ends; a batch that reaches MaxStartedTasks goes at once; what
// is left goes when run ends, and later starts at once.
func TestStarts_FirstAtOnceThenGathered(t *testing.T) {
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
	nothingYet := func(when string) {
		t.Helper()
		select {
		case e := <-sent:
			t.Fatalf("sent %s %s", names(e), when)
		default:
		}
	}

	// Noted before run looks, so within one window: the first at once.
	s.add("wf-a", "t1", "agent-1", at)
	if e := next("the window's first start"); names(e) != "wf-a[t1]" || e.Agent != "agent-1" || !e.Time.Equal(at) || e.Kind != events.EventStarted {
		t.Fatalf("first start: %+v", e)
	}
	s.add("wf-b", "u1", "agent-1", at.Add(time.Millisecond))
	s.add("wf-a", "t2", "agent-1", at.Add(2*time.Millisecond))
	s.add("wf-a", "t3", "agent-1", at.Add(3*time.Millisecond))
	nothingYet("before its window ended")
	// A full batch goes at once, without waiting for the window.
	for i := range events.MaxStartedTasks {
		s.add("wf-c", fmt.Sprintf("c%d", i), "agent-1", at)
	}
	full := next("a full batch")
	if full.Workflow != "wf-c" || len(full.StartedTasks()) != events.MaxStartedTasks || full.Task != "c0" ||
		full.Tasks[len(full.Tasks)-1] != fmt.Sprintf("c%d", events.MaxStartedTasks-1) {
		t.Fatalf("full batch: %s with %d tasks", full.Workflow, len(full.StartedTasks()))
	}
	nothingYet("before its window ended")

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.run(ctx) })
	var got []string
	for _, e := range []events.Event{next("the window's first batch"), next("the window's second batch")} {
		// A batch's time is its latest start (the monitor compares it
		// with the agent's registry entries).
		got = append(got, fmt.Sprintf("%s at +%v", names(e), e.Time.Sub(at)))
	}
	slices.Sort(got)
	if want := []string{"wf-a[t2 t3] at +3ms", "wf-b[u1] at +1ms"}; !slices.Equal(got, want) {
		t.Errorf("window sent %q, want %q", got, want)
	}

	// The window is over: the next start goes out at once again, and the
	// one after it waits for its window or for run's end.
	s.add("wf-d", "d1", "agent-1", at)
	if e := next("a new window's first start"); names(e) != "wf-d[d1]" {
		t.Errorf("new window's first: %s", names(e))
	}
	s.add("wf-d", "d2", "agent-1", at)
	cancel()
	wg.Wait()
	var rest []string
	for len(sent) > 0 {
		rest = append(rest, names(<-sent))
	}
	// d2 went either with its window's end or as run ended.
	if !slices.Equal(rest, []string{"wf-d[d2]"}) {
		t.Errorf("after run: %q, want [wf-d[d2]]", rest)
	}
	s.add("wf-e", "e1", "agent-1", at)
	s.add("wf-e", "e2", "agent-1", at)
	if a, b := names(next("a start after run")), names(next("another")); a != "wf-e[e1]" || b != "wf-e[e2]" {
		t.Errorf("after run: %s, %s; want each at once", a, b)
	}
}
