package embedded

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Config configures the embedded nats-server.
type Config struct {
	Host     string // default 127.0.0.1
	Port     int    // default 4222; -1 picks a free port
	StoreDir string // JetStream file storage; required
	// MaxPayload bounds one message; default 8 MiB, so that a task can carry
	// its dependencies' results.
	MaxPayload int32
	// HTTPPort, when above zero, serves the nats-server monitoring endpoints.
	HTTPPort int
	Debug    bool // log the server's own lines to stderr
}

// DefaultMaxPayload is the embedded server's message size limit.
const DefaultMaxPayload = 8 << 20

// ErrServer is wrapped by every embedded server start failure.
var ErrServer = errors.New("embedded nats-server")

// Start starts an embedded nats-server with JetStream and waits until it
// accepts connections. The caller shuts it down with Shutdown and waits
// with WaitForShutdown.
func Start(c Config) (*server.Server, error) {
	if c.StoreDir == "" {
		return nil, fmt.Errorf("%w: a store directory is required", ErrServer)
	}
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	if c.Port == 0 {
		c.Port = 4222
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	opts := &server.Options{
		ServerName: "baton",
		Host:       c.Host,
		Port:       c.Port,
		JetStream:  true,
		StoreDir:   c.StoreDir,
		MaxPayload: c.MaxPayload,
		NoSigs:     true,
		NoLog:      !c.Debug,
		HTTPPort:   max(c.HTTPPort, 0),
		HTTPHost:   c.Host,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrServer, err)
	}
	if c.Debug {
		ns.ConfigureLogger()
	}
	ns.Start()
	if !ns.ReadyForConnections(15 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("%w: not ready to accept connections on %s:%d within 15s", ErrServer, c.Host, c.Port)
	}
	return ns, nil
}

// Node is a running embedded server with an in-process connection.
type Node struct {
	Server *server.Server
	Conn   *nats.Conn
}

// StartNode starts the embedded nats-server and connects to it in process.
// Close shuts both down.
func StartNode(c Config) (*Node, error) {
	ns, err := Start(c)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.Name("baton-up"), nats.MaxReconnects(-1))
	if err != nil {
		ns.Shutdown()
		return nil, fmt.Errorf("connect in process: %w", err)
	}
	return &Node{Server: ns, Conn: nc}, nil
}

// Close flushes and closes the connection and shuts the server down. The
// owner calls it after every service on the connection has stopped, so
// that they can drain against the server.
func (n *Node) Close() {
	_ = n.Conn.Flush()
	n.Conn.Close()
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
}
