package events

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrDecode wraps every failure to decode a wire message.
var ErrDecode = errors.New("events: cannot decode message")

// ErrInvalidJob is wrapped by every *ValidationError.
var ErrInvalidJob = errors.New("invalid job")

// ValidationError says which field of a job is wrong and why. It is what a
// rejected submission gets back, as a reply and as a "rejected" event.
type ValidationError struct {
	// Field is a path into the job, such as "steps[2].after[0]"; empty for
	// the whole document.
	Field string `json:"field,omitempty" msgpack:"field,omitempty"`
	// Reason says what is wrong, in words a user can act on.
	Reason string `json:"reason" msgpack:"reason"`
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("invalid job: %s", e.Reason)
	}
	return fmt.Sprintf("invalid job: %s: %s", e.Field, e.Reason)
}

// Unwrap lets errors.Is(err, ErrInvalidJob) hold.
func (e *ValidationError) Unwrap() error { return ErrInvalidJob }

func invalid(field, format string, args ...any) *ValidationError {
	for i, a := range args {
		if str, ok := a.(string); ok {
			args[i] = Short(str)
		}
	}
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// MaxEcho bounds how much of a value an error message repeats: an error
// never carries a megabyte field back to whoever sent it.
const MaxEcho = 64

// Short is s, or its first MaxEcho bytes and how long it was: what an
// error may repeat of a value someone sent.
func Short(s string) string {
	if len(s) <= MaxEcho {
		return s
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:cutAt(s, MaxEcho)], len(s))
}

// Clip is s, or its first bytes and "…" in at most n bytes (n ≥ 4), cut
// between two characters: how a text someone wrote is shown where its
// length must stay bounded (status, the dashboard's feed).
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:cutAt(s, n-len("…"))] + "…"
}

// cutAt is the largest index at most n that starts a character of s.
func cutAt(s string, n int) int {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return n
}
