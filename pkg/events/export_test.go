package events

// ReadWireForTest reads a Task and a Result with the hand-written reader,
// without the checks DecodeTask and DecodeResult add.
func ReadWireForTest(task, result []byte) (*Task, *Result) {
	var t Task
	if err := decodeWire(task, "task", t.readMsgpack); err != nil {
		panic(err)
	}
	var r Result
	if err := decodeWire(result, "result", r.readMsgpack); err != nil {
		panic(err)
	}
	return &t, &r
}

// SizeHintForTest is what Encode allocates for a Task or a Result.
func SizeHintForTest(v any) int {
	switch m := v.(type) {
	case *Task:
		return m.sizeHint()
	case *Result:
		return m.sizeHint()
	}
	return 0
}
