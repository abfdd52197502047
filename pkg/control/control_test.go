package control_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	"github.com/baton-dev/baton/pkg/control"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go/micro"
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

// TestStart_ReplyTooLarge: a reply the server's max payload cannot carry is
// answered with an error saying so, not left unsent for the requester to
// wait out; a reply with headers carries them.
func TestStart_ReplyTooLarge(t *testing.T) {
	t.Parallel()
	srv := natstest.StartWithMaxPayload(t, 64<<10)
	nc, _ := natstest.Connect(t, srv)
	subj := events.Subjects{Prefix: "ctltest"}
	svc, err := control.Start(t.Context(), nc, control.Service{Name: "ctltest", Version: "1.0.0", Subjects: subj,
		Handlers: map[string]control.HandlerFunc{
			"big": func(context.Context, []byte) (any, error) { return strings.Repeat("x", 100<<10), nil },
			"paged": func(context.Context, []byte) (any, error) {
				return control.Reply{Body: []int{1, 2}, Header: map[string]string{events.HeaderOmitted: "3"}}, nil
			},
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	m, err := nc.Request(subj.Control("big"), nil, 10*time.Second)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	if code := m.Header.Get(micro.ErrorCodeHeader); code != "500" || !strings.Contains(string(m.Data), "max payload") {
		t.Errorf("code %q, body %s; want a 500 that names the max payload", code, m.Data)
	}
	m, err = nc.Request(subj.Control("paged"), nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "[1,2]" || m.Header.Get(events.HeaderOmitted) != "3" {
		t.Errorf("reply %s with headers %v", m.Data, m.Header)
	}
}
