package events_test

import (
	"testing"

	"github.com/baton-dev/baton/pkg/events"
)

func TestOutcome(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                        string
		completed, cancelled, total int
		threshold                   float64
		critical                    bool
		want                        string
		wantRate                    float64
	}{
		{name: "all completed", completed: 10, total: 10, threshold: 1, want: events.OutcomeSuccess, wantRate: 1},
		{name: "all completed, low threshold", completed: 10, total: 10, threshold: 0.5, want: events.OutcomeSuccess, wantRate: 1},
		{name: "at the threshold", completed: 8, total: 10, threshold: 0.8, want: events.OutcomePartial, wantRate: 0.8},
		{name: "above the threshold", completed: 9, total: 10, threshold: 0.8, want: events.OutcomePartial, wantRate: 0.9},
		{name: "below the threshold", completed: 8, total: 10, threshold: 0.9, want: events.OutcomeFailed, wantRate: 0.8},
		{name: "default threshold, one missing", completed: 9, total: 10, threshold: 1, want: events.OutcomeFailed, wantRate: 0.9},
		{name: "two thirds at two thirds", completed: 2, total: 3, threshold: 2.0 / 3, want: events.OutcomePartial, wantRate: 2.0 / 3},
		{name: "two thirds just below", completed: 2, total: 3, threshold: 0.667, want: events.OutcomeFailed, wantRate: 2.0 / 3},
		// 0.1*3 in floating point: the rate 0.3 must still reach it.
		{name: "rounding error in the threshold", completed: 3, total: 10, threshold: 0.30000000000000004, want: events.OutcomePartial, wantRate: 0.3},
		{name: "cancelled tasks are not completed", completed: 3, cancelled: 1, total: 4, threshold: 0.75, want: events.OutcomePartial, wantRate: 0.75},
		{name: "zero threshold, nothing completed", completed: 0, total: 5, threshold: 0, want: events.OutcomePartial, wantRate: 0},
		{name: "critical failure beats the threshold", completed: 9, total: 10, threshold: 0.5, critical: true, want: events.OutcomeFailed, wantRate: 0.9},
		{name: "critical failure with zero threshold", completed: 1, total: 2, threshold: 0, critical: true, want: events.OutcomeFailed, wantRate: 0.5},
		{name: "no tasks", completed: 0, total: 0, threshold: 1, want: events.OutcomeSuccess, wantRate: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := events.Counts{Total: tc.total, Completed: tc.completed, Cancelled: tc.cancelled, Failed: tc.total - tc.completed - tc.cancelled}
			got, rate := events.Outcome(c, tc.threshold, tc.critical)
			if got != tc.want || rate != tc.wantRate {
				t.Errorf("Outcome(%+v, %v, %v) = %s, %v; want %s, %v", c, tc.threshold, tc.critical, got, rate, tc.want, tc.wantRate)
			}
		})
	}
}
