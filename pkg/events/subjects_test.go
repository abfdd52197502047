package events_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/baton-dev/baton/pkg/events"
)

func TestValidToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   string
		want bool
	}{
		{"one letter", "a", true},
		{"every allowed character", "AZaz09_-", true},
		{"typical id", "wf-1_X", true},
		{"64 characters", strings.Repeat("a", 64), true},
		{"empty", "", false},
		{"65 characters", strings.Repeat("a", 65), false},
		{"dot splits a subject", "a.b", false},
		{"space", "a b", false},
		{"star wildcard", "a*", false},
		{"greater-than wildcard", "a>", false},
		{"slash", "a/b", false},
		{"non-ASCII", "é", false},
		{"NUL", "a\x00", false},
		{"newline", "a\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := events.ValidToken(tc.in); got != tc.want {
				t.Errorf("ValidToken(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

// TestSubjects_Builders checks every builder with the default prefix (the
// zero value) and with a custom one.
func TestSubjects_Builders(t *testing.T) {
	t.Parallel()
	builders := []struct {
		name  string
		build func(events.Subjects) string
		want  string // after the prefix
	}{
		{"Submit", func(s events.Subjects) string { return s.Submit() }, ".jobs.submit"},
		{"Jobs", func(s events.Subjects) string { return s.Jobs() }, ".jobs.>"},
		{"Task", func(s events.Subjects) string { return s.Task("research", 2, "wf-1", "t-1") }, ".tasks.research.2.wf-1.t-1"},
		{"Lane", func(s events.Subjects) string { return s.Lane("research", 2) }, ".tasks.research.2.>"},
		{"QueuedTasks", func(s events.Subjects) string { return s.QueuedTasks("wf-1", "t-1") }, ".tasks.*.*.wf-1.t-1"},
		{"QueuedTasks of every workflow", func(s events.Subjects) string { return s.QueuedTasks("*", "*") }, ".tasks.*.*.*.*"},
		{"Tasks", func(s events.Subjects) string { return s.Tasks() }, ".tasks.>"},
		{"Result", func(s events.Subjects) string { return s.Result("wf-1", "t-1") }, ".results.wf-1.t-1"},
		{"Results", func(s events.Subjects) string { return s.Results() }, ".results.>"},
		{"Results of a workflow", func(s events.Subjects) string { return s.Results("wf-1") }, ".results.wf-1.>"},
		{"Output partial", func(s events.Subjects) string { return s.Output("wf-1", events.OutputPartial) }, ".outputs.wf-1.partial"},
		{"Output final", func(s events.Subjects) string { return s.Output("wf-1", events.OutputFinal) }, ".outputs.wf-1.final"},
		{"Outputs", func(s events.Subjects) string { return s.Outputs() }, ".outputs.>"},
		{"Event", func(s events.Subjects) string { return s.Event("wf-1", events.EventRejected) }, ".events.wf-1.rejected"},
		{"Events", func(s events.Subjects) string { return s.Events() }, ".events.>"},
		{"Control", func(s events.Subjects) string { return s.Control(events.VerbPause) }, ".control.pause"},
		{"AgentControl", func(s events.Subjects) string { return s.AgentControl() }, ".agents.control"},
		{"AgentInfo", func(s events.Subjects) string { return s.AgentInfo("agent-1") }, ".agents.agent-1.info"},
		{"Dead", func(s events.Subjects) string { return s.Dead("wf-1", "t-1") }, ".dead.wf-1.t-1"},
		{"DeadLetters", func(s events.Subjects) string { return s.DeadLetters() }, ".dead.>"},
		{"Wake", func(s events.Subjects) string { return s.Wake("research", 1) }, ".wake.research.1"},
		{"WakeAll", func(s events.Subjects) string { return s.WakeAll("research") }, ".wake.research.*"},
	}
	for _, prefix := range []struct {
		name     string
		subjects events.Subjects
		want     string
	}{
		{"default prefix", events.Subjects{}, events.DefaultPrefix},
		{"custom prefix", events.Subjects{Prefix: "acme"}, "acme"},
	} {
		for _, b := range builders {
			t.Run(prefix.name+"/"+b.name, func(t *testing.T) {
				t.Parallel()
				if got, want := b.build(prefix.subjects), prefix.want+b.want; got != want {
					t.Errorf("got %q, want %q", got, want)
				}
			})
		}
	}
}

// TestSubjects_Filters checks that each stream's filter covers the subjects
// written to that stream, and no other stream's.
func TestSubjects_Filters(t *testing.T) {
	t.Parallel()
	s := events.Subjects{Prefix: "acme"}
	streams := map[string]string{
		"jobs": s.Jobs(), "tasks": s.Tasks(), "results": s.Results(), "outputs": s.Outputs(),
		"events": s.Events(), "dead": s.DeadLetters(),
	}
	for _, tc := range []struct {
		name, subject, stream string
		also                  []string // narrower filters that must match too
	}{
		{"submit", s.Submit(), "jobs", nil},
		{"task", s.Task("x", 3, "wf", "t"), "tasks", []string{s.Lane("x", 3), s.QueuedTasks("wf", "t"), s.QueuedTasks("*", "*")}},
		{"result", s.Result("wf", "t"), "results", []string{s.Results("wf")}},
		{"output", s.Output("wf", events.OutputFinal), "outputs", nil},
		{"event", s.Event("wf", events.EventCreated), "events", nil},
		{"dead letter", s.Dead("wf", "t"), "dead", nil},
		{"wake", s.Wake("x", 3), "", []string{s.WakeAll("x")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for name, filter := range streams {
				if got, want := subjectMatches(filter, tc.subject), name == tc.stream; got != want {
					t.Errorf("stream %s (%s) matches %s: %v, want %v", name, filter, tc.subject, got, want)
				}
			}
			for _, filter := range tc.also {
				if !subjectMatches(filter, tc.subject) {
					t.Errorf("%s does not match %s", filter, tc.subject)
				}
			}
		})
	}
}

// subjectMatches applies NATS wildcard rules: "*" is one token, a final ">"
// one or more.
func subjectMatches(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		switch {
		case tok == ">":
			return i == len(f)-1 && len(s) > i
		case i >= len(s):
			return false
		case tok != "*" && tok != s[i]:
			return false
		}
	}
	return len(f) == len(s)
}

func TestMsgID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		parts []any
		want  string
	}{
		{"none", nil, ""},
		{"one", []any{"wf"}, "wf"},
		{"mixed", []any{"wf", "t", "r0", 1}, "wf.t.r0.1"},
		{"numbers and durations", []any{int64(-3), uint8(7), time.Second}, "-3.7.1s"},
		{"empty parts keep their place", []any{"a", "", "b"}, "a..b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := events.MsgID(tc.parts...); got != tc.want {
				t.Errorf("MsgID(%v) = %q, want %q", tc.parts, got, tc.want)
			}
		})
	}
}

// TestHeaders pins the header names and content types: peers in other
// languages match them by string.
func TestHeaders(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ got, want string }{
		{events.HeaderWorkflow, "Baton-Workflow"},
		{events.HeaderTask, "Baton-Task"},
		{events.HeaderReplyTo, "Baton-Reply-To"},
		{events.HeaderContentType, "Content-Type"},
		{events.HeaderMsgID, "Nats-Msg-Id"},
		{events.ContentJSON, "application/json"},
		{events.ContentMsgpack, "application/msgpack"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			t.Parallel()
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

// TestPriorities checks that the list of levels runs from the most urgent to
// the least, one apart, between the named bounds.
func TestPriorities(t *testing.T) {
	t.Parallel()
	p := events.Priorities
	if len(p) == 0 || p[0] != events.PriorityHighest || p[len(p)-1] != events.PriorityLowest {
		t.Fatalf("Priorities = %v, want %d..%d", p, events.PriorityHighest, events.PriorityLowest)
	}
	for i := 1; i < len(p); i++ {
		if p[i] != p[i-1]+1 {
			t.Errorf("Priorities = %v: not consecutive", p)
		}
	}
	if events.PriorityDefault < events.PriorityHighest || events.PriorityDefault > events.PriorityLowest {
		t.Errorf("PriorityDefault %d out of range", events.PriorityDefault)
	}
}

// FuzzMsgID: ids are what fmt.Sprint of each part, joined by dots, gives.
func FuzzMsgID(f *testing.F) {
	f.Add("wf", 3, uint64(7), 1.5)
	f.Fuzz(func(t *testing.T, s string, i int, u uint64, x float64) {
		parts := []any{s, i, u, x, time.Duration(i)}
		want := ""
		for k, p := range parts {
			if k > 0 {
				want += "."
			}
			want += fmt.Sprint(p)
		}
		if got := events.MsgID(parts...); got != want {
			t.Fatalf("MsgID(%v) = %q, want %q", parts, got, want)
		}
	})
}
