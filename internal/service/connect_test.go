package service_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	"github.com/baton-dev/baton/internal/service"
	"github.com/nats-io/nats.go"
)

// logBuffer is a log destination the test reads while services write.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) count(s string) int {
	return strings.Count(l.String(), s)
}

// String is what was logged so far, read under the writers' lock: the
// connection may still log while the test reads.
func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestConnect_LogsAnOutageOnce stops the server under a connection: it
// logs the disconnect once (not each of its reconnect attempts) and the
// reconnect once, with the server.
func TestConnect_LogsAnOutageOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := natstest.StartIn(t, dir, -1)
	_, port, _ := strings.Cut(srv.Addr().String(), "127.0.0.1:")
	var out logBuffer
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c := service.Common{ConnFlags: service.ConnFlags{Server: srv.ClientURL()}}
	nc, err := c.Connect("test", log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	srv.Shutdown()
	srv.WaitForShutdown()
	natstest.Eventually(t, 30*time.Second, "the disconnect", func() bool { return out.count("disconnected from NATS") > 0 })
	// Let it try a few times (every 250ms) before the server is back.
	natstest.Eventually(t, 30*time.Second, "reconnect attempts", func() bool { return nc.Stats().Reconnects > 0 || !nc.IsConnected() })
	_ = natstest.StartIn(t, dir, atoi(t, port))
	natstest.Eventually(t, 30*time.Second, "the reconnect", func() bool { return out.count("reconnected to NATS") > 0 })
	for what, want := range map[string]int{"connected to NATS": 2, "disconnected from NATS": 1, "reconnected to NATS": 1} {
		if n := out.count(what); n != want { // "connected to" also matches the reconnect
			t.Errorf("%q logged %d times, want %d", what, n, want)
		}
	}
	if !strings.Contains(out.String(), "server=nats://127.0.0.1:"+port) {
		t.Errorf("the reconnect does not name the server:\n%s", out.String())
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' {
			t.Fatalf("port %q", s)
		}
		n = 10*n + int(r-'0')
	}
	return n
}

func TestRedactURLs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://u:secret@h:4222", "nats://u:xxxxx@h:4222"},
		{"nats://a:1@h1:4222,nats://h2:4222", "nats://a:xxxxx@h1:4222,nats://h2:4222"},
	} {
		if got := service.RedactURLs(tc.in); got != tc.want {
			t.Errorf("RedactURLs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// A failed connect does not print the password.
	c := service.Common{ConnFlags: service.ConnFlags{Server: "nats://u:s3cr3t@127.0.0.1:1"}}
	_, err := c.Connect("x", nil)
	if err == nil || strings.Contains(err.Error(), "s3cr3t") || !errors.Is(err, nats.ErrNoServers) {
		t.Fatalf("connect error %v: want one without the password that is still nats.ErrNoServers", err)
	}
}

// TestConnectWait_UntilAServerListens starts a service's connection before
// any server listens, as a compose project starts everything at once: it
// logs that it waits, tries again, and connects once the server is up.
// Told to stop while waiting, it returns ErrStopped; refused credentials
// end it at once.
func TestConnectWait_UntilAServerListens(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := natstest.StartIn(t, dir, -1) // for a free port
	url := srv.ClientURL()
	_, port, _ := strings.Cut(srv.Addr().String(), "127.0.0.1:")
	srv.Shutdown()
	srv.WaitForShutdown()

	var out logBuffer
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c := service.Common{ConnFlags: service.ConnFlags{Server: url}}
	type dialed struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan dialed, 1)
	go func() {
		nc, err := c.ConnectWait(t.Context(), "test", log)
		done <- dialed{nc, err}
	}()
	natstest.Eventually(t, 30*time.Second, "two tries", func() bool { return out.count("waiting for NATS") >= 2 })
	_ = natstest.StartIn(t, dir, atoi(t, port))
	select {
	case d := <-done:
		if d.err != nil {
			t.Fatalf("ConnectWait: %v", d.err)
		}
		d.nc.Close()
	case <-time.After(30 * time.Second):
		t.Fatal("no connection 30 s after the server started")
	}

	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan error, 1)
	go func() {
		nowhere := service.Common{ConnFlags: service.ConnFlags{Server: "nats://127.0.0.1:1"}}
		_, err := nowhere.ConnectWait(ctx, "test", log)
		stopped <- err
	}()
	cancel()
	if err := <-stopped; !errors.Is(err, service.ErrStopped) {
		t.Errorf("stopped while waiting: %v, want ErrStopped", err)
	}

	guarded := natstest.StartWithAuth(t, map[string]string{"u": "right"}, nil)
	wrong := service.Common{ConnFlags: service.ConnFlags{Server: guarded.ClientURL(), User: "u", Password: "wrong"}}
	if _, err := wrong.ConnectWait(t.Context(), "test", log); err == nil || errors.Is(err, nats.ErrNoServers) {
		t.Errorf("refused credentials: %v, want an authorization error at once", err)
	}
}

// silentLink forwards TCP connections to a server until cut; then it
// drops everything both ways and keeps the connections open, as a server
// cut off the network looks to its clients (no reset, no answer).
type silentLink struct {
	ln    net.Listener
	to    string
	cut   atomic.Bool
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newSilentLink(t *testing.T, to string) *silentLink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &silentLink{ln: ln, to: to}
	l.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			l.mu.Lock()
			l.conns = append(l.conns, c, s)
			l.mu.Unlock()
			l.wg.Go(func() { l.pipe(c, s) })
			l.wg.Go(func() { l.pipe(s, c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		l.mu.Lock()
		for _, c := range l.conns {
			c.Close()
		}
		l.mu.Unlock()
		l.wg.Wait()
	})
	return l
}

func (l *silentLink) pipe(from, to net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if err != nil {
			return
		}
		if !l.cut.Load() {
			if _, err := to.Write(buf[:n]); err != nil {
				return
			}
		}
	}
}

// TestConnect_NoticesASilentServer: a service's connection to a server
// that stops answering without closing the connection (cut off the
// network) gives it up within its 3 unanswered pings, 6-8 s, and tries
// another (with 5 s pings it took 15-20 s; nats.go's defaults, minutes).
func TestConnect_NoticesASilentServer(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	link := newSilentLink(t, srv.Addr().String())
	var out logBuffer
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c := service.Common{ConnFlags: service.ConnFlags{Server: "nats://" + link.ln.Addr().String()}}
	nc, err := c.Connect("test", log)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	link.cut.Store(true)
	cut := time.Now()
	natstest.Eventually(t, 12*time.Second, "the connection to the silent server given up", func() bool { return !nc.IsConnected() })
	t.Logf("given up %v after the cut", time.Since(cut).Round(100*time.Millisecond))
	// nats.go calls the disconnect handler on its own goroutine.
	natstest.Eventually(t, 10*time.Second, "the disconnect logged", func() bool { return out.count("disconnected from NATS") >= 1 })
	if out.count("disconnected from NATS") != 1 {
		t.Errorf("the disconnect not logged once:\n%s", out.String())
	}
}
