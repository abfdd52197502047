package events_test

import (
	"strings"
	"testing"
	"unicode/utf8"

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
		{"control request token", func() error {
			_, err := events.ParseControl([]byte(`{"token":"` + huge + `"}`))
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

// TestClip: a text shown where its size must stay bounded is cut between
// two characters, within the bound, and marked.
func TestClip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		n        int
		want     string
	}{
		{"short enough", "report", 6, "report"},
		{"ASCII", "quarterly report", 10, "quarter…"},
		{"cut inside a character", strings.Repeat("é", 10), 8, "éé…"},
		{"emoji", strings.Repeat("\U0001F600", 3), 9, "\U0001F600…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := events.Clip(tc.in, tc.n)
			if got != tc.want || len(got) > tc.n || !utf8.ValidString(got) {
				t.Errorf("Clip(%q, %d) = %q (%d bytes), want %q", tc.in, tc.n, got, len(got), tc.want)
			}
		})
	}
}
