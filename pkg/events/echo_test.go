package events_test

import (
	"strings"
	"testing"

	"github.com/baton-dev/baton/pkg/events"
)

// TestErrors_EchoABoundedPrefix: an error about a huge value repeats at
// most MaxEcho bytes of it, so a reply carrying the error stays small
// whatever was sent.
func TestErrors_EchoABoundedPrefix(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("é", 400_000) // 800 KB, multi-byte: the cut must stay valid UTF-8
	for _, tc := range []struct {
		name string
		err  func() error
	}{
		{"job step id", func() error {
			_, err := events.ParseJob([]byte(`{"steps":[{"id":"`+huge+`","type":"x"}]}`), events.Limits{MaxBytes: 2 << 20})
			return err
		}},
		{"job duration", func() error {
			_, err := events.ParseJob([]byte(`{"steps":[{"id":"a","type":"x","timeout":"`+huge+`"}]}`), events.Limits{MaxBytes: 2 << 20})
			return err
		}},
		{"control request id", func() error {
			_, err := events.ParseControl([]byte(`{"workflow":"` + huge + `"}`))
			return err
		}},
		{"control request type", func() error {
			_, err := events.ParseControl([]byte(`{"type":"` + huge + `"}`))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.err()
			if err == nil {
				t.Fatal("accepted")
			}
			if msg := err.Error(); len(msg) > 400 || !strings.Contains(msg, "bytes)") {
				t.Fatalf("error of %d bytes, want a short one saying how long the value was: %.200s", len(msg), msg)
			}
		})
	}
}
