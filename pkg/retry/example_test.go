package retry_test

import (
	"fmt"
	"time"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/retry"
)

// A step with two retries and a fallback type: the first two failures are
// tried again, the third hands the task to the fallback type, whose own
// last failure is final.
func ExampleAfter() {
	t := &events.Task{MaxAttempts: 3, Backoff: time.Second, MaxBackoff: time.Minute, Fallback: "backup"}
	for attempt := 1; attempt <= 3; attempt++ {
		fmt.Println(attempt, retry.After(t, attempt, false).Action)
	}
	t.Round = 1 // the fallback round
	fmt.Println(3, retry.After(t, 3, false).Action)
	// Output:
	// 1 retry
	// 2 retry
	// 3 fallback
	// 3 fail
}
