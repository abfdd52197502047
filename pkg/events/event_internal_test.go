package events

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzEventEncode: the hand-written encoding of an event is byte for byte
// what encoding/json writes, whatever its strings hold.
func FuzzEventEncode(f *testing.F) {
	f.Add("wf-1", "started", "t-0001", "", "agent-1", "", int64(1764126000123456789), "")
	f.Add("wf-1", "started", "t-0001", "t-0002,t-0003", "agent-1", "", int64(1764126000123456789), "")
	f.Add("wf", "started", "t", `a,"b",<c>`, "a", "", int64(1), "")
	f.Add("wf", "failed", "t", "", "a", `boom <&> "quoted" \ é`, int64(0), "")
	f.Add("wf", "warning", "", "", "", "m", int64(-62135596800000000), `{"k":[1,2]}`)
	f.Fuzz(func(t *testing.T, wf, kind, task, tasks, agent, message string, nanos int64, detail string) {
		e := Event{Workflow: wf, Kind: kind, Task: task, Agent: agent, Message: message, Time: time.Unix(0, nanos).UTC()}
		if tasks != "" {
			e.Tasks = strings.Split(tasks, ",") // a batch of starts
		}
		if detail != "" {
			e.Detail = json.RawMessage(detail)
		}
		want, wantErr := json.Marshal(e)
		got, err := e.encode()
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("errors differ: %v, json: %v", err, wantErr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("encode:\n%s\njson.Marshal:\n%s", got, want)
		}
	})
}
