package agent

import (
	"context"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// TestDeliveriesOf_AckSubjects: the delivery count of both forms of
// acknowledgement subject, and 1 for anything else.
func TestDeliveriesOf_AckSubjects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		reply string
		want  uint64
	}{
		{"$JS.ACK.TASKS.noop_3.7.120.98.1700000000000000000.4", 7},                    // v1: 9 tokens
		{"$JS.ACK._.ACCHASH.TASKS.noop_3.2.120.98.1700000000000000000.4.Rand0m", 2},   // v2: 12 tokens
		{"$JS.ACK.hub.ACCHASH.TASKS.noop_3.31.120.98.1700000000000000000.4", 31},      // v2 without its last token
		{"$JS.ACK.hub.ACCHASH.TASKS.noop_3.5.120.98.1700000000000000000.4.r.more", 5}, // a token more, as the jetstream package allows
		{"$JS.ACK.TASKS.noop_3.0.120.98.1700000000000000000.4", 1},                    // no delivery counted
		{"$JS.ACK.TASKS.noop_3.x7.120.98.1700000000000000000.4", 1},                   // not a number
		{"$JS.ACK.TASKS.noop_3.-7.120.98.1700000000000000000.4", 1},                   // not a count
		{"$JS.ACK.TASKS.noop_3.99999999999999999999.120.98.1700000000000000000.4", 1}, // beyond any count
		{"$JS.ACK.TASKS.noop_3.7.120.98.1700000000000000000", 1},                      // 8 tokens
		{"$JS.ACK.TASKS.noop_3.7.120.98.1700000000000000000.4.x", 1},                  // 10 tokens
		{"_INBOX.abc.7.120.98.1700000000000000000.4.a.b", 1},                          // not an acknowledgement
		{"$JS.ACKX.TASKS.noop_3.7.120.98.1700000000000000000.4", 1},                   // nor this
		{"", 1},
	}
	for _, tt := range tests {
		if got := deliveriesOf(tt.reply); got != tt.want {
			t.Errorf("deliveriesOf(%q) = %d, want %d", tt.reply, got, tt.want)
		}
	}
}

// TestDeliveriesOf_AsTheServerCounts: on real deliveries, the count is
// the one the jetstream package's metadata gives, as a message is
// delivered again and again.
func TestDeliveriesOf_AsTheServerCounts(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "D", Subjects: []string{"d.>"}}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateConsumer(ctx, "D", jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "d.x", []byte("task")); err != nil {
		t.Fatal(err)
	}
	for want := uint64(1); want <= 3; want++ {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		md, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if got := deliveriesOf(m.Reply()); got != md.NumDelivered || got != want {
			t.Fatalf("delivery %d: deliveriesOf(%q) = %d, metadata says %d", want, m.Reply(), got, md.NumDelivered)
		}
		if err := m.Nak(); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzDeliveriesOf: any reply subject gives a count of at least 1 and
// never a panic; a well-formed one gives its count back.
func FuzzDeliveriesOf(f *testing.F) {
	f.Add("$JS.ACK.TASKS.noop_3.7.120.98.1700000000000000000.4", uint32(7))
	f.Add("$JS.ACK._.ACCHASH.TASKS.noop_3.2.120.98.1700000000000000000.4.Rand0m", uint32(2))
	f.Add("", uint32(1))
	f.Fuzz(func(t *testing.T, reply string, n uint32) {
		if got := deliveriesOf(reply); got < 1 || got > math.MaxInt32 {
			t.Fatalf("deliveriesOf(%q) = %d", reply, got)
		}
		if n == 0 || n > math.MaxInt32 {
			return
		}
		for _, s := range []string{
			"$JS.ACK.S.C." + strconv.FormatUint(uint64(n), 10) + ".1.1.1.0",
			"$JS.ACK.D.H.S.C." + strconv.FormatUint(uint64(n), 10) + ".1.1.1.0.T",
		} {
			if got := deliveriesOf(s); got != uint64(n) {
				t.Fatalf("deliveriesOf(%q) = %d, want %d", s, got, n)
			}
		}
	})
}
