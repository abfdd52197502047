package control_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/baton-dev/baton/pkg/control"
	"github.com/baton-dev/baton/pkg/events"
)

func TestSemver(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"1.2.3", "1.2.3"}, {"v0.1.0", "0.1.0"}, {"", "0.0.0"}, {"1.2", "0.0.0"}, {"1.2.3.4", "0.0.0"},
		{"1..3", "0.0.0"}, {"1.2.x", "0.0.0"}, {"v", "0.0.0"}, {"(devel)", "0.0.0"}, {"10.20.30", "10.20.30"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			if got := control.Semver(tc.in); got != tc.want {
				t.Fatalf("Semver(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestRequest_Rejects(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{"workflow":`, `{"colour": 1}`, `[1]`, `{"workflow": "a b"}`} {
		_, err := control.Request([]byte(body))
		var ce *events.ControlError
		if !errors.As(err, &ce) || ce.Code != 400 || !errors.Is(err, events.ErrBadRequest) {
			t.Errorf("body %s: %v, want a 400 control error", body, err)
		}
	}
}

// A handler's error keeps its code, and errors.Is tells its kind.
func ExampleErrorf() {
	err := control.Errorf(409, "workflow %s has finished", "wf-1")
	fmt.Println(err, errors.Is(err, events.ErrConflict), errors.Is(err, events.ErrNotFound))
	// Output: workflow wf-1 has finished true false
}
