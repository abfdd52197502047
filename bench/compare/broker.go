package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/baton-dev/baton/internal/benchkit"
)

// broker is a nats-server or redis-server process of one measurement, on
// a free loopback port, its files in a temporary directory.
type broker struct {
	name string
	addr string // host:port
	dir  string
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	out  *os.File      // its output, for an error message
}

// startNATS starts bin as a nats-server with JetStream on file storage,
// configured as baton's deploy/nats.conf on one node.
func startNATS(ctx context.Context, bin string) (*broker, error) {
	return startBroker(ctx, "nats-server", bin, func(dir string, port int) ([]string, error) {
		conf := filepath.Join(dir, "nats.conf")
		return []string{"-c", conf}, os.WriteFile(conf, benchkit.NATSConfig(dir, port), 0o644)
	})
}

// startRedis starts bin as a redis-server with its defaults (snapshots
// as Redis saves by default, no append-only file), its files in its own
// directory.
func startRedis(ctx context.Context, bin string) (*broker, error) {
	return startBroker(ctx, "redis-server", bin, func(dir string, port int) ([]string, error) {
		return []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir}, nil
	})
}

// startBroker runs bin with the arguments args gives for its directory
// and port, and waits until the port takes connections.
func startBroker(ctx context.Context, name, bin string, args func(dir string, port int) ([]string, error)) (_ *broker, err error) {
	dir, err := os.MkdirTemp("", "baton-compare-")
	if err != nil {
		return nil, err
	}
	b := &broker{name: name, dir: dir, done: make(chan struct{})}
	defer func() {
		if err != nil {
			b.stop()
		}
	}()
	port, err := benchkit.FreePort()
	if err != nil {
		return nil, err
	}
	b.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	argv, err := args(dir, port)
	if err != nil {
		return nil, err
	}
	if b.out, err = os.Create(filepath.Join(dir, "output")); err != nil {
		return nil, err
	}
	b.cmd = exec.Command(bin, argv...)
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	if err := b.cmd.Start(); err != nil {
		close(b.done)
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() {
		_ = b.cmd.Wait()
		close(b.done)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.addr, time.Second)
		if err == nil {
			_ = c.Close()
			return b, nil
		}
		select {
		case <-b.done:
			return nil, fmt.Errorf("%s exited: %v%s", name, b.cmd.ProcessState, b.output())
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s does not listen on %s: %w%s", name, b.addr, err, b.output())
		}
	}
}

// pid is the broker's process id.
func (b *broker) pid() int { return b.cmd.Process.Pid }

// exited says, with its last output, whether the broker has exited.
func (b *broker) exited() error {
	select {
	case <-b.done:
		return fmt.Errorf("%s exited: %v%s", b.name, b.cmd.ProcessState, b.output())
	default:
		return nil
	}
}

// output is the end of what the broker printed, for an error message.
func (b *broker) output() string {
	data, err := os.ReadFile(filepath.Join(b.dir, "output"))
	if err != nil || len(data) == 0 {
		return ""
	}
	return "; its last output:\n" + string(data[max(0, len(data)-2000):])
}

// stop terminates the broker, kills it after 10 s, and removes its
// directory.
func (b *broker) stop() {
	if b.cmd != nil && b.cmd.Process != nil {
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(10 * time.Second):
			_ = b.cmd.Process.Kill()
			<-b.done
		}
	}
	if b.out != nil {
		_ = b.out.Close()
	}
	_ = os.RemoveAll(b.dir)
}
