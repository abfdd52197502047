package events

import (
	"encoding/json"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Encode writes an internal message as msgpack: a Task or Result by hand
// (wire.go), anything else with msgpack/v5.
func Encode(v any) ([]byte, error) {
	switch m := v.(type) {
	case *Task:
		return m.appendMsgpack(make([]byte, 0, m.sizeHint())), nil
	case *Result:
		return m.appendMsgpack(make([]byte, 0, m.sizeHint())), nil
	}
	b, err := msgpack.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("events: encode %T: %w", v, err)
	}
	return b, nil
}

// DecodeTask reads a msgpack Task and checks the fields every consumer relies on.
func DecodeTask(data []byte) (*Task, error) {
	var t Task
	if err := decodeWire(data, "*events.Task", t.readMsgpack); err != nil {
		return nil, err
	}
	if err := t.check(); err != nil {
		return nil, err
	}
	return &t, nil
}

// DecodeResult reads a Result: msgpack by default, JSON when contentType is
// ContentJSON (so agents written in any language can answer in JSON).
func DecodeResult(contentType string, data []byte) (*Result, error) {
	var r Result
	if contentType == ContentJSON {
		if err := strictJSON(data, &r); err != nil {
			return nil, fmt.Errorf("%w: result: %v", ErrDecode, err)
		}
	} else if err := decodeWire(data, "*events.Result", r.readMsgpack); err != nil {
		return nil, err
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	return &r, nil
}

func (t *Task) check() error {
	switch {
	case !ValidToken(t.Workflow):
		return fmt.Errorf("%w: task: workflow id %q is not a valid token", ErrDecode, Short(t.Workflow))
	case !ValidToken(t.ID):
		return fmt.Errorf("%w: task: id %q is not a valid token", ErrDecode, Short(t.ID))
	case !ValidToken(t.Type):
		return fmt.Errorf("%w: task: type %q is not a valid token", ErrDecode, Short(t.Type))
	case t.Priority < PriorityHighest || t.Priority > PriorityLowest:
		return fmt.Errorf("%w: task: priority %d out of range %d..%d", ErrDecode, t.Priority, PriorityHighest, PriorityLowest)
	case t.MaxAttempts < 1:
		return fmt.Errorf("%w: task: max attempts %d must be at least 1", ErrDecode, t.MaxAttempts)
	case t.Backoff < 0 || t.MaxBackoff < 0 || t.Timeout < 0:
		return fmt.Errorf("%w: task: negative backoff or timeout", ErrDecode)
	case len(t.Input) > 0 && !json.Valid(t.Input):
		return fmt.Errorf("%w: task: input is not valid JSON", ErrDecode)
	}
	if err := t.CheckSync(); err != nil {
		return fmt.Errorf("%w: task: %v", ErrDecode, err)
	}
	return nil
}

func (r *Result) check() error {
	switch {
	case !ValidToken(r.Workflow):
		return fmt.Errorf("%w: result: workflow id %q is not a valid token", ErrDecode, Short(r.Workflow))
	case !ValidToken(r.Task):
		return fmt.Errorf("%w: result: task id %q is not a valid token", ErrDecode, Short(r.Task))
	case r.Type != "" && !ValidToken(r.Type):
		return fmt.Errorf("%w: result: type %q is not a valid token", ErrDecode, Short(r.Type))
	case r.Status != StateCompleted && r.Status != StateFailed && r.Status != StateCancelled:
		return fmt.Errorf("%w: result: status %q is not completed, failed or cancelled", ErrDecode, Short(r.Status))
	case len(r.Data) > 0 && !json.Valid(r.Data):
		return fmt.Errorf("%w: result: data is not valid JSON", ErrDecode)
	}
	return nil
}
