package streams_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/nats-io/nats.go/jetstream"
)

func TestFollow_ReplayThenLive(t *testing.T) {
	t.Parallel()
	_, js := natstest.Connect(t, natstest.Start(t))
	ctx := t.Context()
	// Each case gets a stream of its own holding 5 messages, on s<k>.0 and
	// s<k>.1 alternately.
	stream := func(k int) string {
		name := fmt.Sprintf("S%d", k)
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{fmt.Sprintf("s%d.>", k)}, Storage: jetstream.MemoryStorage}); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if _, err := js.Publish(ctx, fmt.Sprintf("s%d.%d", k, i%2), []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		return name
	}
	k := 0
	for _, tc := range []struct {
		name    string
		fc      streams.FollowConfig
		backlog uint64
		first   byte
	}{
		{name: "from a sequence", fc: streams.FollowConfig{FromSeq: 2}, backlog: 4, first: 1},
		{name: "filtered", fc: streams.FollowConfig{Filter: ".0", FromSeq: 1}, backlog: 3, first: 0},
		{name: "from a time", fc: streams.FollowConfig{FromTime: time.Now().Add(-time.Hour)}, backlog: 5, first: 0},
		{name: "new only", fc: streams.FollowConfig{}, backlog: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k++
			fc := tc.fc
			fc.Stream = stream(k)
			live := fmt.Sprintf("s%d.0", k)
			if fc.Filter != "" {
				fc.Filter = fmt.Sprintf("s%d", k) + fc.Filter
			}
			f, err := streams.Follow(ctx, js, fc)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Stop()
			defer f.Stop() // safe twice
			if f.Backlog != tc.backlog {
				t.Fatalf("backlog %d, want %d", f.Backlog, tc.backlog)
			}
			for n := uint64(1); n <= tc.backlog; n++ {
				m := next(t, f)
				if n == 1 && m.Data()[0] != tc.first {
					t.Fatalf("first message %d, want %d", m.Data()[0], tc.first)
				}
				if streams.CaughtUp(m) != (n == tc.backlog) {
					t.Fatalf("message %d of %d: caught up %v", n, tc.backlog, streams.CaughtUp(m))
				}
			}
			// Then live: a new message matching every filter above.
			if _, err := js.Publish(ctx, live, []byte{99}); err != nil {
				t.Fatal(err)
			}
			if m := next(t, f); m.Data()[0] != 99 || !streams.CaughtUp(m) {
				t.Fatalf("live message %v", m.Data())
			}
		})
	}
}

func next(t *testing.T, f *streams.Follower) jetstream.Msg {
	t.Helper()
	select {
	case m := <-f.C:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
		return nil
	}
}

func TestFollower_Drain(t *testing.T) {
	t.Parallel()
	_, js := natstest.Connect(t, natstest.Start(t))
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "D", Subjects: []string{"d.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	// A message the filter leaves out comes last: Drain must not wait for it.
	for i := range 300 {
		if _, err := js.Publish(ctx, "d.in", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, "d.out", nil); err != nil {
		t.Fatal(err)
	}
	f, err := streams.Follow(ctx, js, streams.FollowConfig{Stream: "D", Filter: "d.in", FromSeq: 1, Buffer: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	got := 0
	if err := f.Drain(ctx, 10*time.Second, func(jetstream.Msg) { got++ }); err != nil || got != 300 {
		t.Fatalf("drain handled %d, %v; want 300", got, err)
	}
	// Nothing left: a second drain returns at once with nothing.
	if err := f.Drain(ctx, 10*time.Second, func(jetstream.Msg) { got++ }); err != nil || got != 300 {
		t.Fatalf("second drain handled %d more, %v", got-300, err)
	}
}

func TestWorkContext_OutlivesItsParentByTheGrace(t *testing.T) {
	t.Parallel()
	parent, stop := context.WithCancel(t.Context())
	work, cancel := streams.WorkContext(parent, 200*time.Millisecond)
	defer cancel()
	stop()
	if work.Err() != nil {
		t.Fatal("work ended with its parent")
	}
	select {
	case <-work.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("work did not end after the grace")
	}
	_, cancel2 := streams.WorkContext(t.Context(), time.Hour)
	cancel2() // ends at once, and stops waiting for the parent
}

// TestFollower_RecreatesAStalledConsumer silences the follower's consumer
// on the server (paused for an hour: it sends nothing, and nats.go sees
// nothing wrong), as a consumer left behind by a node loss was seen to do.
// The watchdog notices the stream holding messages it does not deliver and
// recreates the consumer: the rest arrive, in order, each once.
func TestFollower_RecreatesAStalledConsumer(t *testing.T) {
	t.Parallel()
	_, js := natstest.Connect(t, natstest.Start(t))
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "STALL", Subjects: []string{"stall.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	publish := func(from, to int) {
		for i := from; i <= to; i++ {
			if _, err := js.Publish(ctx, "stall.x", []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(1, 3)
	f, err := streams.Follow(ctx, js, streams.FollowConfig{Stream: "STALL", FromSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	next := func(want uint64, within time.Duration) {
		t.Helper()
		select {
		case m := <-f.C:
			meta, _ := m.Metadata()
			if meta.Sequence.Stream != want {
				t.Fatalf("got sequence %d, want %d", meta.Sequence.Stream, want)
			}
		case <-time.After(within):
			t.Fatalf("no message %d within %v", want, within)
		}
	}
	for seq := uint64(1); seq <= 3; seq++ {
		next(seq, 10*time.Second)
	}
	st, err := js.Stream(ctx, "STALL")
	if err != nil {
		t.Fatal(err)
	}
	names := st.ListConsumers(ctx)
	paused := 0
	for c := range names.Info() {
		if _, err := js.PauseConsumer(ctx, "STALL", c.Name, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		paused++
	}
	if paused != 1 {
		t.Fatalf("paused %d consumers, want the follower's one", paused)
	}
	publish(4, 6)
	for seq := uint64(4); seq <= 6; seq++ {
		next(seq, 4*streams.StallCheck)
	}
	select {
	case m := <-f.C:
		meta, _ := m.Metadata()
		t.Fatalf("an extra message, sequence %d", meta.Sequence.Stream)
	case <-time.After(streams.StallCheck):
	}
	if n := f.Restarts(); n != 1 {
		t.Errorf("%d restarts, want 1", n)
	}
}

// TestFollower_FilteredWatchdogHeedsItsFilter: a follower of one subject
// is not taken as stalled while only other subjects of the stream grow (a
// client following one workflow's outputs); when its own consumer goes
// silent with a message of its subject waiting, it is recreated.
func TestFollower_FilteredWatchdogHeedsItsFilter(t *testing.T) {
	t.Parallel()
	_, js := natstest.Connect(t, natstest.Start(t))
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "QUIET", Subjects: []string{"quiet.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	f, err := streams.Follow(ctx, js, streams.FollowConfig{Stream: "QUIET", Filter: "quiet.mine.>"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	publish := func(subject string) {
		if _, err := js.Publish(ctx, subject, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Others' messages for three watchdog periods: never a restart.
	tick := time.NewTicker(streams.StallCheck / 4)
	defer tick.Stop()
	for end := time.Now().Add(3*streams.StallCheck + streams.StallCheck/2); time.Now().Before(end); <-tick.C {
		publish("quiet.other")
	}
	if n := f.Restarts(); n != 0 {
		t.Fatalf("%d restarts while only other subjects grew, want 0", n)
	}
	select {
	case m := <-f.C:
		t.Fatalf("delivered %s, which the filter excludes", m.Subject())
	default:
	}

	st, err := js.Stream(ctx, "QUIET")
	if err != nil {
		t.Fatal(err)
	}
	for c := range st.ListConsumers(ctx).Info() {
		if _, err := js.PauseConsumer(ctx, "QUIET", c.Name, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	publish("quiet.mine.a")
	select {
	case m := <-f.C:
		if m.Subject() != "quiet.mine.a" {
			t.Fatalf("got %s", m.Subject())
		}
	case <-time.After(4 * streams.StallCheck):
		t.Fatalf("quiet.mine.a not delivered within %v of its consumer going silent", 4*streams.StallCheck)
	}
	if n := f.Restarts(); n != 1 {
		t.Errorf("%d restarts, want 1", n)
	}
}
