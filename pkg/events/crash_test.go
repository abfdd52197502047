package events_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/baton-dev/baton/pkg/events"
)

func TestParseCrashDrill(t *testing.T) {
	t.Parallel()
	if err := events.ParseCrashDrill([]byte(`{"agent":"agent-3"}`), "agent-3"); err != nil {
		t.Fatalf("a drill for agent-3: %v", err)
	}
	for _, tc := range []struct{ name, body, says string }{
		{"another agent", `{"agent":"agent-1"}`, `for agent "agent-1" sent to agent agent-3`},
		{"no agent", `{}`, `for agent ""`},
		{"empty", ``, "crash drill"},
		{"malformed", `{"agent":`, "malformed JSON"},
		{"unknown field", `{"agent":"agent-3","now":true}`, `unknown field "now"`},
		{"trailing data", `{"agent":"agent-3"} {}`, "after the JSON"},
		{"not a string", `{"agent":3}`, "agent: want string"},
		{"huge", `{"agent":"` + strings.Repeat("a", 1<<20) + `"}`, "bytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := events.ParseCrashDrill([]byte(tc.body), "agent-3")
			if !errors.Is(err, events.ErrBadRequest) {
				t.Fatalf("got %v, want an error wrapping ErrBadRequest", err)
			}
			if !strings.Contains(err.Error(), tc.says) || len(err.Error()) > 400 {
				t.Errorf("error %.300q does not say %q in a few words", err, tc.says)
			}
		})
	}
}

// FuzzParseCrashDrill: a drill is accepted only if it is exactly the
// object naming the agent; anything else is a short ErrBadRequest.
func FuzzParseCrashDrill(f *testing.F) {
	for _, s := range []string{`{"agent":"agent-3"}`, `{"agent":"agent-1"}`, `{}`, ``, `{"agent":"agent-3","x":1}`, ` {"agent" : "agent-3"} `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := events.ParseCrashDrill(data, "agent-3")
		if err != nil {
			if !errors.Is(err, events.ErrBadRequest) || len(err.Error()) > 600 {
				t.Fatalf("error %.600q is not a short ErrBadRequest", err)
			}
			return
		}
		if !strings.Contains(string(data), "agent") {
			t.Fatalf("accepted %q", data)
		}
	})
}
