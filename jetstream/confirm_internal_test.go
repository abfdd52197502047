package streams

import (
	"encoding/json"
	"testing"
)

// TestStoredAck_OnlyTheStreamsOwnAnswer: the fast reading of an
// acknowledgement takes the server's usual forms and nothing else.
func TestStoredAck_OnlyTheStreamsOwnAnswer(t *testing.T) {
	for _, tc := range []struct {
		data string
		ok   bool
	}{
		{`{"stream":"RESULTS","seq":1}`, true},
		{`{"stream":"RESULTS","seq":18446744073}`, true},
		{`{"stream":"RESULTS","seq":7,"duplicate":true}`, true},
		{`{"stream":"RESULTS","seq":0}`, false},
		{`{"stream":"RESULTS","seq":02}`, false}, // not JSON: found by FuzzStoredAck
		{`{"stream":"RESULTS","seq":}`, false},
		{`{"stream":"RESULTS2","seq":7}`, false},
		{`{"stream":"OTHER","seq":7}`, false},
		{`{"stream":"RESULTS","seq":7,"domain":"hub"}`, false}, // left to the decoder
		{`{"stream":"RESULTS","seq":7}x`, false},
		{`{"error":{"code":503,"description":"no responders"}}`, false},
		{``, false},
	} {
		if got := storedAck([]byte(tc.data), "RESULTS"); got != tc.ok {
			t.Errorf("storedAck(%s) = %v, want %v", tc.data, got, tc.ok)
		}
	}
}

// FuzzStoredAck: whatever the fast reading takes, the JSON decoder reads
// as a stored acknowledgement of the same stream.
func FuzzStoredAck(f *testing.F) {
	f.Add([]byte(`{"stream":"RESULTS","seq":12,"duplicate":true}`))
	f.Add([]byte(`{"stream":"RESULTS","seq":12}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if !storedAck(data, "RESULTS") {
			return
		}
		var ack struct {
			Stream string `json:"stream"`
			Seq    uint64 `json:"seq"`
		}
		if err := json.Unmarshal(data, &ack); err != nil || ack.Stream != "RESULTS" || ack.Seq == 0 {
			t.Fatalf("fast reading took %q; the decoder: %+v, %v", data, ack, err)
		}
	})
}
