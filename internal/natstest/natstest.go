// Package natstest starts real, embedded JetStream servers for tests: the one
// place tests get a server from.
package natstest

import (
	"context"
	"testing"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/jetstream/embedded"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server is a running embedded server with its store directory.
type Server struct {
	*server.Server
	Dir string
}

// Start runs an embedded JetStream server on a free port with its store in a
// temporary directory; it is shut down when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return StartIn(tb, tb.TempDir(), -1)
}

// StartIn runs a server on dir and port (-1 for a free one), so that a test
// can stop a server and start it again on the same store and address.
func StartIn(tb testing.TB, dir string, port int) *Server {
	tb.Helper()
	return start(tb, embedded.Config{Port: port, StoreDir: dir})
}

// StartWithoutJetStream runs a server that has no JetStream, as a cluster
// still electing its leaders looks to a service; it is shut down when the
// test ends.
func StartWithoutJetStream(tb testing.TB) *Server {
	tb.Helper()
	return start(tb, embedded.Config{Port: -1, StoreDir: tb.TempDir(), NoJetStream: true})
}

// StartWithAuth runs a server that admits only these users (name →
// password) and nkeys (public keys).
func StartWithAuth(tb testing.TB, users map[string]string, nkeys []string) *Server {
	tb.Helper()
	return start(tb, embedded.Config{Port: -1, StoreDir: tb.TempDir(), Users: users, NKeys: nkeys})
}

// StartWithAuthFile runs a server that requires the users of a
// nats-server configuration file (see auth.Write).
func StartWithAuthFile(tb testing.TB, path string) *Server {
	tb.Helper()
	return start(tb, embedded.Config{Port: -1, StoreDir: tb.TempDir(), AuthFile: path})
}

// StartWithMaxPayload runs a server whose messages are at most n bytes (the
// embedded server allows 8 MiB; a nats-server's default is 1 MiB).
func StartWithMaxPayload(tb testing.TB, n int32) *Server {
	tb.Helper()
	return start(tb, embedded.Config{Port: -1, StoreDir: tb.TempDir(), MaxPayload: n})
}

// start runs a server as c says; it is shut down when the test ends.

func start(tb testing.TB, c embedded.Config) *Server {
	tb.Helper()
	ns, err := embedded.Start(c)
	if err != nil {
		tb.Fatalf("start nats-server: %v", err)
	}
	tb.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return &Server{Server: ns, Dir: c.StoreDir}
}

// Connect returns a connection to s that is closed when the test ends.
func Connect(tb testing.TB, s *Server, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := nats.Connect(s.ClientURL(), append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, opts...)...)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// Ensure applies c's streams on s and returns a connection.
func Ensure(tb testing.TB, s *Server, c streams.Config, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, js := Connect(tb, s, opts...)
	ctx, cancel := context.WithTimeout(tb.Context(), 10*time.Second)
	defer cancel()
	if err := streams.Ensure(ctx, js, c); err != nil {
		tb.Fatalf("ensure streams: %v", err)
	}
	return nc, js
}

// Eventually polls cond every 10ms until it holds, failing tb if the
// deadline passes first.
func Eventually(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	if !Poll(within, cond) {
		tb.Fatalf("timed out after %v waiting for %s", within, what)
	}
}

// Poll polls cond every 10ms until it holds or the deadline passes, and
// says whether it held: for a caller whose own checks then say what is
// missing.
func Poll(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
