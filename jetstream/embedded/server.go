package embedded

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
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
	// NoJetStream starts a plain server, for tests of services waiting for
	// a JetStream that is not there (yet).
	NoJetStream bool
	// Users (name → password) and NKeys (public user keys) require clients
	// to authenticate; none: no authentication.
	Users map[string]string
	NKeys []string
	// AuthFile, if set, is a nats-server configuration file whose users
	// (nkeys, passwords and their permissions) the server requires, such
	// as the one auth.Write generates. Listen address, storage and limits
	// stay Config's.
	AuthFile string
	// TLSCert and TLSKey, if set, make the server require TLS of every
	// client (in-process connections excepted).
	TLSCert, TLSKey string
	// ClientOptions are added to StartNode's in-process connection: its
	// credentials when the server requires them.
	ClientOptions []nats.Option
}

// DefaultMaxPayload is the embedded server's message size limit.
const DefaultMaxPayload = 8 << 20

// ErrServer is wrapped by every embedded server start failure.
var ErrServer = errors.New("embedded nats-server")

// ErrInUse is wrapped by StartNode's error when another process already
// runs a server on the same store directory.
var ErrInUse = errors.New("store directory in use")

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
	if c.Port > 0 {
		// The server only logs a listen failure and then never gets ready:
		// find out at once, and say why.
		l, err := net.Listen("tcp", net.JoinHostPort(c.Host, strconv.Itoa(c.Port)))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrServer, err)
		}
		_ = l.Close()
	}
	opts := &server.Options{
		ServerName: "baton",
		Host:       c.Host,
		Port:       c.Port,
		JetStream:  !c.NoJetStream,
		StoreDir:   c.StoreDir,
		MaxPayload: c.MaxPayload,
		NoSigs:     true,
		NoLog:      !c.Debug,
		HTTPPort:   max(c.HTTPPort, 0),
		HTTPHost:   c.Host,
	}
	if c.TLSCert != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: c.TLSCert, KeyFile: c.TLSKey})
		if err != nil {
			return nil, fmt.Errorf("%w: TLS: %v", ErrServer, err)
		}
		opts.TLSConfig, opts.TLS, opts.TLSTimeout = tc, true, 2
	}
	if c.AuthFile != "" {
		fo, err := server.ProcessConfigFile(c.AuthFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrServer, err)
		}
		opts.Users, opts.Nkeys = fo.Users, fo.Nkeys
	}
	for name, pw := range c.Users {
		opts.Users = append(opts.Users, &server.User{Username: name, Password: pw})
	}
	for _, pub := range c.NKeys {
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: pub})
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

// Node is a running embedded server with an in-process connection, which
// holds a lock on its store directory until Close.
type Node struct {
	Server *server.Server
	Conn   *nats.Conn
	lock   *os.File
}

// LockFile is the file in the store directory that a running node locks.
const LockFile = "baton.lock"

// StartNode locks the store directory (a second node on the same directory
// fails at once with ErrInUse instead of sharing the store), starts the
// embedded nats-server and connects to it in process. Close shuts both
// down and releases the lock.
func StartNode(c Config) (*Node, error) {
	lock, err := lockStore(c.StoreDir)
	if err != nil {
		return nil, err
	}
	ns, err := Start(c)
	if err != nil {
		_ = lock.Close()
		return nil, err
	}
	nc, err := nats.Connect("", append([]nats.Option{nats.InProcessServer(ns), nats.Name("baton-up"), nats.MaxReconnects(-1)}, c.ClientOptions...)...)
	if err != nil {
		ns.Shutdown()
		_ = lock.Close()
		return nil, fmt.Errorf("connect in process: %w", err)
	}
	return &Node{Server: ns, Conn: nc, lock: lock}, nil
}

// lockStore creates dir if needed and locks its LockFile.
func lockStore(dir string) (*os.File, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: a store directory is required", ErrServer)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrServer, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrServer, err)
	}
	if err := lockFile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("%w: %w: %s is used by another baton (%v)", ErrServer, ErrInUse, dir, err)
	}
	return f, nil
}

// Close flushes and closes the connection and shuts the server down. The
// owner calls it after every service on the connection has stopped, so
// that they can drain against the server.
func (n *Node) Close() {
	_ = n.Conn.Flush()
	n.Conn.Close()
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
	_ = n.lock.Close()
}
