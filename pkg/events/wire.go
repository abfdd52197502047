package events

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Task and Result, the two messages every task moves, are written and read
// by hand here rather than by msgpack/v5's reflection, which cost a tenth
// of all CPU per task (three decodes and two encodes). The bytes are the
// ones msgpack/v5 writes for the same struct (a map of the non-empty
// fields, in declaration order, ints compact, int64s as 9 bytes): the wire
// format is unchanged (testdata/*.msgpack.golden), and older peers read it.
//
// The reader takes what msgpack/v5 accepts for these fields, except floats
// for integers. It bounds every length by the bytes left, and knows every
// field: there is no generic skip, so a hostile message can neither claim a
// huge allocation nor nest deeply.

// --- writing ---

func appendMapLen(b []byte, n int) []byte {
	if n < 16 {
		return append(b, 0x80|byte(n))
	}
	return append(b, 0xde, byte(n>>8), byte(n))
}

func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xdc, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

func appendStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xda, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

// appendBin writes bytes as msgpack/v5 does: nil as nil, else bin.
func appendBin(b []byte, v []byte) []byte {
	if v == nil {
		return append(b, 0xc0)
	}
	n := len(v)
	switch {
	case n <= math.MaxUint8:
		b = append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xc5, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(n))
	}
	return append(b, v...)
}

// appendInt writes an int compactly (msgpack/v5's EncodeInt).
func appendInt(b []byte, n int64) []byte {
	if n >= 0 {
		switch {
		case n <= math.MaxInt8:
			return append(b, byte(n))
		case n <= math.MaxUint8:
			return append(b, 0xcc, byte(n))
		case n <= math.MaxUint16:
			return append(b, 0xcd, byte(n>>8), byte(n))
		case n <= math.MaxUint32:
			return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(n))
		}
		return binary.BigEndian.AppendUint64(append(b, 0xcf), uint64(n))
	}
	switch {
	case n >= -32:
		return append(b, byte(n))
	case n >= math.MinInt8:
		return append(b, 0xd0, byte(n))
	case n >= math.MinInt16:
		return append(b, 0xd1, byte(n>>8), byte(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(n))
	}
	return appendInt64(b, n)
}

// appendInt64 writes an int64 in 9 bytes, as msgpack/v5 writes int64 fields.
func appendInt64(b []byte, n int64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(n))
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xc3)
	}
	return append(b, 0xc2)
}

func appendFloat(b []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(f))
}

// count is how many of the fields are present (not empty).
func count(present ...bool) int {
	n := 0
	for _, p := range present {
		if p {
			n++
		}
	}
	return n
}

// sizeHint bounds t's encoding, so that Encode allocates once: its field
// names, numbers and length prefixes take at most 320 bytes (all fields
// set, every number and prefix at its widest), a dependency's 54; the rest
// are its strings.
func (t *Task) sizeHint() int {
	n := 352 + len(t.Workflow) + len(t.ID) + len(t.Step) + len(t.Type) + len(t.Input) + len(t.Fallback) +
		len(t.Lease) + len(t.Key) + len(t.Rate)
	for i := range t.Deps {
		d := &t.Deps[i]
		n += 64 + len(d.Task) + len(d.Step) + len(d.Status) + len(d.Data) + len(d.Error)
	}
	for _, r := range t.Requires {
		n += 5 + len(r)
	}
	return n
}

// sizeHint is as Task's: a result's names, numbers and prefixes take at
// most 293 bytes.
func (r *Result) sizeHint() int {
	return 320 + len(r.Workflow) + len(r.Task) + len(r.Step) + len(r.Type) + len(r.Status) + len(r.Data) +
		len(r.Error) + len(r.ErrorKind) + len(r.Agent) + len(r.Lease) + len(r.CapKey)
}

// appendMsgpack writes t.
func (t *Task) appendMsgpack(b []byte) []byte {
	b = appendMapLen(b, 13+count(len(t.Deps) > 0, t.Fallback != "", t.Critical, t.Gen != 0, t.Lease != "", t.Key != "",
		t.Limit != 0, t.Rate != "", t.Burst != 0, len(t.Requires) > 0, t.CPUMilli != 0, t.Memory != 0))
	b = appendStr(appendStr(b, "wf"), t.Workflow)
	b = appendStr(appendStr(b, "id"), t.ID)
	b = appendStr(appendStr(b, "step"), t.Step)
	b = appendInt(appendStr(b, "idx"), int64(t.Index))
	b = appendInt(appendStr(b, "n"), int64(t.Chunks))
	b = appendStr(appendStr(b, "type"), t.Type)
	b = appendInt(appendStr(b, "prio"), int64(t.Priority))
	b = appendInt(appendStr(b, "round"), int64(t.Round))
	b = appendBin(appendStr(b, "input"), t.Input)
	if len(t.Deps) > 0 {
		b = appendArrayLen(appendStr(b, "deps"), len(t.Deps))
		for i := range t.Deps {
			b = t.Deps[i].appendMsgpack(b)
		}
	}
	b = appendInt(appendStr(b, "attempts"), int64(t.MaxAttempts))
	b = appendInt64(appendStr(b, "backoff"), int64(t.Backoff))
	b = appendInt64(appendStr(b, "max_backoff"), int64(t.MaxBackoff))
	b = appendInt64(appendStr(b, "timeout"), int64(t.Timeout))
	if t.Fallback != "" {
		b = appendStr(appendStr(b, "fallback"), t.Fallback)
	}
	if t.Critical {
		b = appendBool(appendStr(b, "critical"), true)
	}
	if t.Gen != 0 {
		b = appendInt(appendStr(b, "gen"), int64(t.Gen))
	}
	if t.Lease != "" {
		b = appendStr(appendStr(b, "lease"), t.Lease)
	}
	if t.Key != "" {
		b = appendStr(appendStr(b, "key"), t.Key)
	}
	if t.Limit != 0 {
		b = appendInt(appendStr(b, "limit"), int64(t.Limit))
	}
	if t.Rate != "" {
		b = appendStr(appendStr(b, "rate"), t.Rate)
	}
	if t.Burst != 0 {
		b = appendInt(appendStr(b, "burst"), int64(t.Burst))
	}
	if len(t.Requires) > 0 {
		b = appendArrayLen(appendStr(b, "req"), len(t.Requires))
		for _, r := range t.Requires {
			b = appendStr(b, r)
		}
	}
	if t.CPUMilli != 0 {
		b = appendInt64(appendStr(b, "cpu_m"), t.CPUMilli)
	}
	if t.Memory != 0 {
		b = appendInt64(appendStr(b, "mem"), t.Memory)
	}
	return b
}

func (d *DepResult) appendMsgpack(b []byte) []byte {
	b = appendMapLen(b, 3+count(len(d.Data) > 0, d.Error != ""))
	b = appendStr(appendStr(b, "task"), d.Task)
	b = appendStr(appendStr(b, "step"), d.Step)
	b = appendStr(appendStr(b, "status"), d.Status)
	if len(d.Data) > 0 {
		b = appendBin(appendStr(b, "data"), d.Data)
	}
	if d.Error != "" {
		b = appendStr(appendStr(b, "error"), d.Error)
	}
	return b
}

// appendMsgpack writes r.
func (r *Result) appendMsgpack(b []byte) []byte {
	b = appendMapLen(b, 9+count(len(r.Data) > 0, r.Error != "", r.ErrorKind != "", r.Agent != "", r.Started != 0,
		r.Finished != 0, r.Gen != 0, r.Priority != 0, r.Lease != "", r.Usage != nil, r.CapKey != ""))
	b = appendStr(appendStr(b, "wf"), r.Workflow)
	b = appendStr(appendStr(b, "task"), r.Task)
	b = appendStr(appendStr(b, "step"), r.Step)
	b = appendInt(appendStr(b, "idx"), int64(r.Index))
	b = appendStr(appendStr(b, "type"), r.Type)
	b = appendInt(appendStr(b, "round"), int64(r.Round))
	b = appendStr(appendStr(b, "status"), r.Status)
	b = appendBool(appendStr(b, "final"), r.Final)
	if len(r.Data) > 0 {
		b = appendBin(appendStr(b, "data"), r.Data)
	}
	if r.Error != "" {
		b = appendStr(appendStr(b, "error"), r.Error)
	}
	if r.ErrorKind != "" {
		b = appendStr(appendStr(b, "kind"), r.ErrorKind)
	}
	b = appendInt(appendStr(b, "attempts"), int64(r.Attempts))
	if r.Agent != "" {
		b = appendStr(appendStr(b, "agent"), r.Agent)
	}
	if r.Started != 0 {
		b = appendInt64(appendStr(b, "started"), r.Started)
	}
	if r.Finished != 0 {
		b = appendInt64(appendStr(b, "finished"), r.Finished)
	}
	if r.Gen != 0 {
		b = appendInt(appendStr(b, "gen"), int64(r.Gen))
	}
	if r.Priority != 0 {
		b = appendInt(appendStr(b, "prio"), int64(r.Priority))
	}
	if r.Lease != "" {
		b = appendStr(appendStr(b, "lease"), r.Lease)
	}
	if r.Usage != nil {
		u := r.Usage
		b = appendMapLen(appendStr(b, "usage"), 1+count(u.ExecCPUMS != 0, u.ExecMaxRSS != 0))
		b = appendFloat(appendStr(b, "cpu_ms"), u.CPUMS)
		if u.ExecCPUMS != 0 {
			b = appendFloat(appendStr(b, "exec_cpu_ms"), u.ExecCPUMS)
		}
		if u.ExecMaxRSS != 0 {
			b = appendInt64(appendStr(b, "exec_rss"), u.ExecMaxRSS)
		}
	}
	if r.CapKey != "" {
		b = appendStr(appendStr(b, "ckey"), r.CapKey)
	}
	return b
}

// --- reading ---

var errShort = errors.New("unexpected end of message")

type wire struct {
	b []byte
	i int
}

func (w *wire) next() (byte, error) {
	if w.i >= len(w.b) {
		return 0, errShort
	}
	c := w.b[w.i]
	w.i++
	return c, nil
}

func (w *wire) take(n int) ([]byte, error) {
	if n < 0 || n > len(w.b)-w.i {
		return nil, errShort
	}
	p := w.b[w.i : w.i+n]
	w.i += n
	return p, nil
}

func (w *wire) uint(size int) (uint64, error) {
	p, err := w.take(size)
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range p {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// length reads the size that follows a str, bin, array or map code.
func (w *wire) length(size int) (int, error) {
	v, err := w.uint(size)
	if err != nil {
		return 0, err
	}
	if v > uint64(len(w.b)-w.i) {
		return 0, errShort // more than the message holds
	}
	return int(v), nil
}

// mapLen reads a map header; nil is an empty map.
func (w *wire) mapLen() (int, error) {
	c, err := w.next()
	if err != nil {
		return 0, err
	}
	switch {
	case c&0xf0 == 0x80:
		return int(c & 0x0f), nil
	case c == 0xde:
		return w.length(2)
	case c == 0xdf:
		return w.length(4)
	case c == 0xc0:
		return 0, nil
	}
	return 0, fmt.Errorf("msgpack: want a map, got code %#x", c)
}

// arrayLen reads an array header; nil is -1 (a nil slice).
func (w *wire) arrayLen() (int, error) {
	c, err := w.next()
	if err != nil {
		return 0, err
	}
	switch {
	case c&0xf0 == 0x90:
		return int(c & 0x0f), nil
	case c == 0xdc:
		return w.length(2)
	case c == 0xdd:
		return w.length(4)
	case c == 0xc0:
		return -1, nil
	}
	return 0, fmt.Errorf("msgpack: want an array, got code %#x", c)
}

// raw reads a str or bin's bytes (aliasing the message); nil is nil.
func (w *wire) raw() ([]byte, bool, error) {
	c, err := w.next()
	if err != nil {
		return nil, false, err
	}
	var n int
	switch {
	case c&0xe0 == 0xa0:
		n = int(c & 0x1f)
	case c == 0xd9 || c == 0xc4:
		n, err = w.length(1)
	case c == 0xda || c == 0xc5:
		n, err = w.length(2)
	case c == 0xdb || c == 0xc6:
		n, err = w.length(4)
	case c == 0xc0:
		return nil, true, nil
	default:
		return nil, false, fmt.Errorf("msgpack: want a string, got code %#x", c)
	}
	if err != nil {
		return nil, false, err
	}
	p, err := w.take(n)
	return p, false, err
}

func (w *wire) str() (string, error) {
	p, _, err := w.raw()
	return string(p), err
}

// bytes reads bytes into a copy of their own; nil stays nil.
func (w *wire) bytes() ([]byte, error) {
	p, isNil, err := w.raw()
	if err != nil || isNil {
		return nil, err
	}
	return append(make([]byte, 0, len(p)), p...), nil
}

func (w *wire) int() (int64, error) {
	c, err := w.next()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c == 0xc0:
		return 0, nil
	case c == 0xcc || c == 0xcd || c == 0xce || c == 0xcf:
		v, err := w.uint(1 << (c - 0xcc))
		if c == 0xcf && v > math.MaxInt64 {
			return 0, fmt.Errorf("msgpack: %d overflows int64", v)
		}
		return int64(v), err
	case c == 0xd0:
		v, err := w.uint(1)
		return int64(int8(v)), err
	case c == 0xd1:
		v, err := w.uint(2)
		return int64(int16(v)), err
	case c == 0xd2:
		v, err := w.uint(4)
		return int64(int32(v)), err
	case c == 0xd3:
		v, err := w.uint(8)
		return int64(v), err
	}
	return 0, fmt.Errorf("msgpack: want an integer, got code %#x", c)
}

// small reads an int field (Go int: 64 bits here, as on every platform
// baton builds for).
func (w *wire) small() (int, error) {
	v, err := w.int()
	return int(v), err
}

func (w *wire) bool() (bool, error) {
	c, err := w.next()
	switch {
	case err != nil:
		return false, err
	case c == 0xc2 || c == 0xc0:
		return false, nil
	case c == 0xc3:
		return true, nil
	}
	return false, fmt.Errorf("msgpack: want a bool, got code %#x", c)
}

func (w *wire) float() (float64, error) {
	c, err := w.next()
	switch {
	case err != nil:
		return 0, err
	case c == 0xcb:
		v, err := w.uint(8)
		return math.Float64frombits(v), err
	case c == 0xca:
		v, err := w.uint(4)
		return float64(math.Float32frombits(uint32(v))), err
	}
	w.i-- // an integer is a float too
	v, err := w.int()
	return float64(v), err
}

// fields reads a map of fields, calling field for each key.
func (w *wire) fields(field func(key []byte) error) error {
	n, err := w.mapLen()
	if err != nil {
		return err
	}
	for range n {
		key, _, err := w.raw()
		if err != nil {
			return err
		}
		if err := field(key); err != nil {
			return err
		}
	}
	return nil
}

func unknownField(key []byte) error {
	return fmt.Errorf("msgpack: unknown field %q", Short(string(key)))
}

// decodeWire reads one message with read, refusing bytes after it.
func decodeWire(data []byte, what string, read func(w *wire) error) error {
	w := &wire{b: data}
	if err := read(w); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrDecode, what, err)
	}
	if left := len(w.b) - w.i; left > 0 {
		return fmt.Errorf("%w: %s: %d bytes after the message", ErrDecode, what, left)
	}
	return nil
}

func (t *Task) readMsgpack(w *wire) error {
	return w.fields(func(key []byte) (err error) {
		switch string(key) {
		case "wf":
			t.Workflow, err = w.str()
		case "id":
			t.ID, err = w.str()
		case "step":
			t.Step, err = w.str()
		case "idx":
			t.Index, err = w.small()
		case "n":
			t.Chunks, err = w.small()
		case "type":
			t.Type, err = w.str()
		case "prio":
			t.Priority, err = w.small()
		case "round":
			t.Round, err = w.small()
		case "input":
			t.Input, err = w.bytes()
		case "deps":
			var n int
			if n, err = w.arrayLen(); err != nil || n < 0 {
				t.Deps = nil
				return err
			}
			// Grown as read, not sized by the claim: what is allocated is
			// what the message holds.
			t.Deps = make([]DepResult, 0, min(n, 64))
			for range n {
				var d DepResult
				if err := d.readMsgpack(w); err != nil {
					return err
				}
				t.Deps = append(t.Deps, d)
			}
		case "attempts":
			t.MaxAttempts, err = w.small()
		case "backoff":
			var v int64
			v, err = w.int()
			t.Backoff = time.Duration(v)
		case "max_backoff":
			var v int64
			v, err = w.int()
			t.MaxBackoff = time.Duration(v)
		case "timeout":
			var v int64
			v, err = w.int()
			t.Timeout = time.Duration(v)
		case "fallback":
			t.Fallback, err = w.str()
		case "critical":
			t.Critical, err = w.bool()
		case "gen":
			t.Gen, err = w.small()
		case "lease":
			t.Lease, err = w.str()
		case "key":
			t.Key, err = w.str()
		case "limit":
			t.Limit, err = w.small()
		case "rate":
			t.Rate, err = w.str()
		case "burst":
			t.Burst, err = w.small()
		case "req":
			var n int
			if n, err = w.arrayLen(); err != nil || n < 0 {
				t.Requires = nil
				return err
			}
			t.Requires = make([]string, 0, min(n, MaxCapabilities))
			for range n {
				var c string
				if c, err = w.str(); err != nil {
					return err
				}
				t.Requires = append(t.Requires, c)
			}
		case "cpu_m":
			t.CPUMilli, err = w.int()
		case "mem":
			t.Memory, err = w.int()
		default:
			return unknownField(key)
		}
		return err
	})
}

func (d *DepResult) readMsgpack(w *wire) error {
	return w.fields(func(key []byte) (err error) {
		switch string(key) {
		case "task":
			d.Task, err = w.str()
		case "step":
			d.Step, err = w.str()
		case "status":
			d.Status, err = w.str()
		case "data":
			d.Data, err = w.bytes()
		case "error":
			d.Error, err = w.str()
		default:
			return unknownField(key)
		}
		return err
	})
}

func (r *Result) readMsgpack(w *wire) error {
	return w.fields(func(key []byte) (err error) {
		switch string(key) {
		case "wf":
			r.Workflow, err = w.str()
		case "task":
			r.Task, err = w.str()
		case "step":
			r.Step, err = w.str()
		case "idx":
			r.Index, err = w.small()
		case "type":
			r.Type, err = w.str()
		case "round":
			r.Round, err = w.small()
		case "status":
			r.Status, err = w.str()
		case "final":
			r.Final, err = w.bool()
		case "data":
			r.Data, err = w.bytes()
		case "error":
			r.Error, err = w.str()
		case "kind":
			r.ErrorKind, err = w.str()
		case "attempts":
			r.Attempts, err = w.small()
		case "agent":
			r.Agent, err = w.str()
		case "started":
			r.Started, err = w.int()
		case "finished":
			r.Finished, err = w.int()
		case "gen":
			r.Gen, err = w.small()
		case "prio":
			r.Priority, err = w.small()
		case "lease":
			r.Lease, err = w.str()
		case "usage":
			if w.i < len(w.b) && w.b[w.i] == 0xc0 {
				w.i++
				r.Usage = nil
				return nil
			}
			u := &TaskUsage{}
			r.Usage = u
			return w.fields(func(key []byte) (err error) {
				switch string(key) {
				case "cpu_ms":
					u.CPUMS, err = w.float()
				case "exec_cpu_ms":
					u.ExecCPUMS, err = w.float()
				case "exec_rss":
					u.ExecMaxRSS, err = w.int()
				default:
					return unknownField(key)
				}
				return err
			})
		case "ckey":
			r.CapKey, err = w.str()
		default:
			return unknownField(key)
		}
		return err
	})
}
