package agent

import (
	"errors"
	"fmt"
	"time"
)

// ErrPanic is wrapped by the error a panicking handler is turned into.
var ErrPanic = errors.New("handler panicked")

// ErrNoHandlers is returned by Run when no task type was registered.
var ErrNoHandlers = errors.New("agent: no handlers registered")

// ErrConfig is wrapped by every Config.Validate error.
var ErrConfig = errors.New("agent: invalid config")

// PermanentError marks a failure that retrying cannot fix.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so the task fails at once, without retries.
func Permanent(err error) error { return &PermanentError{Err: err} }

// RetryAfterError asks for the task to be tried again after Delay.
type RetryAfterError struct {
	Delay time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("retry after %v: %v", e.Delay, e.Err)
}
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter wraps err so the task is handed back for d. It still counts as
// an attempt.
func RetryAfter(d time.Duration, err error) error { return &RetryAfterError{Delay: d, Err: err} }
