package streams

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerConfig configures the embedded nats-server.
type ServerConfig struct {
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

// StartServer starts an embedded nats-server with JetStream and waits until
// it accepts connections. The caller shuts it down with Shutdown and waits
// with WaitForShutdown.
func StartServer(c ServerConfig) (*server.Server, error) {
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
		HTTPPort:   c.HTTPPort,
		HTTPHost:   c.Host,
	}
	if c.HTTPPort == 0 {
		opts.HTTPPort = 0
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
