package events

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Encode writes an internal message (Task or Result) as msgpack.
func Encode(v any) ([]byte, error) {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("events: encode %T: %w", v, err)
	}
	return b, nil
}

// DecodeTask reads a msgpack Task and checks the fields every consumer relies on.
func DecodeTask(data []byte) (*Task, error) {
	var t Task
	if err := unmarshalMsgpack(data, &t); err != nil {
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
	} else if err := unmarshalMsgpack(data, &r); err != nil {
		return nil, err
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	return &r, nil
}

func unmarshalMsgpack(data []byte, v any) error {
	// msgpack/v5 (v5.4.1) sizes a slice by the length an array claims, with
	// no limit (its allocation limit check is inverted), so a few bytes that
	// claim four billion dependencies exhaust memory. Walking the message
	// first proves every claimed element is there, which bounds the
	// allocation by the message's size.
	probe := bytes.NewReader(data)
	if err := walkMsgpack(msgpack.NewDecoder(probe), 0); err != nil {
		return fmt.Errorf("%w: %T: %v", ErrDecode, v, err)
	}
	if probe.Len() > 0 {
		return fmt.Errorf("%w: %T: %d bytes after the message", ErrDecode, v, probe.Len())
	}
	d := msgpack.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields(true)
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: %T: %v", ErrDecode, v, err)
	}
	return nil
}

// maxMsgpackDepth bounds how deeply arrays and maps nest in a message. Ours
// nest three deep (task, deps, dependency); msgpack/v5 recurses once per
// level, even in Skip, so a few megabytes of nested array headers would
// overflow the goroutine stack, a fatal error that recover cannot catch.
const maxMsgpackDepth = 32

// walkMsgpack reads one msgpack value, checking that every element an array
// or map claims is there and that nesting stays within maxMsgpackDepth.
func walkMsgpack(d *msgpack.Decoder, depth int) error {
	c, err := d.PeekCode()
	if err != nil {
		return err
	}
	var n int
	switch {
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		n, err = d.DecodeArrayLen()
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		n, err = d.DecodeMapLen()
		n *= 2 // a key and a value each
	default:
		return d.Skip()
	}
	if err != nil {
		return err
	}
	if n > 0 && depth >= maxMsgpackDepth {
		return fmt.Errorf("arrays and maps nested more than %d deep", maxMsgpackDepth)
	}
	for i := 0; i < n; i++ {
		if err := walkMsgpack(d, depth+1); err != nil {
			return err
		}
	}
	return nil
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
