package events

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"strings"
	"sync"
)

// ErrForged is wrapped by the error for a message whose subject does not
// match its body: anyone on the bus can publish on any subject, so the
// subject a consumer filtered on must be the one the body implies.
var ErrForged = errors.New("forged message")

// DecodeResultMsg decodes a result received on subject and checks that the
// subject is the one its body names: "<prefix>.results.<wf>.<task>".
func (s Subjects) DecodeResultMsg(subject, contentType string, data []byte) (*Result, error) {
	r, err := DecodeResult(contentType, data)
	if err != nil {
		return nil, err
	}
	if want := s.Result(r.Workflow, r.Task); subject != want {
		return nil, fmt.Errorf("%w: result for %s/%s on subject %q", ErrForged, r.Workflow, r.Task, Short(subject))
	}
	return r, nil
}

// CheckTaskMsg checks that a task received on subject from the lane of
// laneType is the one its body names, on its own type's lane.
func (s Subjects) CheckTaskMsg(subject, laneType string, t *Task) error {
	if t.Type != laneType {
		return fmt.Errorf("%w: task %s/%s of type %q on the lane of %q", ErrForged, t.Workflow, t.ID, Short(t.Type), laneType)
	}
	if len(t.Requires) > MaxCapabilities {
		return fmt.Errorf("%w: task %s/%s requires %d capabilities, more than any lane serves", ErrForged, t.Workflow, t.ID, len(t.Requires))
	}
	if want := s.TaskOf(t); subject != want {
		return fmt.Errorf("%w: task %s/%s on subject %q", ErrForged, t.Workflow, t.ID, Short(subject))
	}
	return nil
}

// refusalKey groups refusals by kind (forged or undecodable) and by the
// subject's first three tokens.
func refusalKey(subject string, err error) string {
	kind := "undecodable"
	if errors.Is(err, ErrForged) {
		kind = "forged"
	}
	parts := strings.SplitN(subject, ".", 4)
	return kind + " " + strings.Join(parts[:min(3, len(parts))], ".")
}

// Refusals counts refused messages by kind (forged or undecodable) and by
// where they came from (the subject's first three tokens), so that a flood
// is logged and reported a handful of times, not once per message. Safe
// for concurrent use.
type Refusals struct {
	mu sync.Mutex
	n  map[string]uint64
}

// Log counts the refusal of a message received on subject for err, and
// logs it as what when Note says to; it returns Note's answer.
func (r *Refusals) Log(log *slog.Logger, what, subject string, err error) (report bool, count uint64) {
	report, count = r.Note(subject, err)
	if report {
		log.Warn(what, "subject", subject, "refused", count, "err", err)
	}
	return report, count
}

// Note counts one refusal of a message received on subject for err and
// reports whether to say so now: the 1st, 2nd, 4th, 8th … of each kind and
// source.
func (r *Refusals) Note(subject string, err error) (report bool, count uint64) {
	key := refusalKey(subject, err)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]uint64{}
	}
	if len(r.n) > 10_000 { // bounded: a flood of distinct keys forgets old ones
		clear(r.n)
	}
	r.n[key]++
	c := r.n[key]
	return bits.OnesCount64(c) == 1, c
}
