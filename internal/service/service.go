// Package service holds what every baton main shares: common flags and
// environment variables, logging, the NATS connection, run-group actors, and
// the composition of all services in one process that `baton up` runs.
package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/baton-dev/baton/internal/web"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/retry"
	"github.com/nats-io/nats.go"
	"github.com/oklog/run"
)

// Version is baton's version, printed by the services and put in the registry.
const Version = "0.1.0"

// DefaultURL is where services connect when neither --server, NATS_URL nor
// a context say: nats.go's default.
const DefaultURL = nats.DefaultURL

// Common are the flags every service takes. Environment variables give the
// defaults: NATS_URL, BATON_PREFIX, BATON_LOG (text|json), BATON_LOG_LEVEL.
type Common struct {
	ConnFlags
	// HTTP is where to serve /metrics (and, for baton up and the planner,
	// the dashboard); empty: nowhere.
	HTTP string
	// HTTPHosts are the names, comma separated, the dashboard answers to
	// besides IP addresses and localhost.
	HTTPHosts string
	// HTTPAuth, "user:password", protects the dashboard with basic auth.
	HTTPAuth string
	Streams  streams.Config
	LogJSON  bool
	LogLevel string
	// CPUProfile is where to write a CPU profile of the whole run
	// (StartProfile); empty: none.
	CPUProfile string
}

// Register adds the common flags to fs.
func (c *Common) Register(fs *flag.FlagSet) {
	c.ConnFlags.register(fs)
	fs.StringVar(&c.Streams.Prefix, "prefix", env("BATON_PREFIX", "baton"), "subject prefix (env BATON_PREFIX)")
	fs.IntVar(&c.Streams.Replicas, "replicas", 1, "stream replicas: 3 on a cluster")
	fs.DurationVar(&c.Streams.AckWait, "ack-wait", streams.DefaultAckWait, "how long a silent agent keeps a task before it is redelivered")
	fs.DurationVar(&c.Streams.AgentTTL, "agent-ttl", streams.DefaultAgentTTL, "how long an agent stays registered after its last heartbeat")
	fs.DurationVar(&c.Streams.PermitTTL, "permit-ttl", streams.DefaultPermitTTL, "how long a concurrency permit outlives its holder's last renewal: a dead agent's permits come back within it (set by the planner, which creates the bucket)")
	fs.Int64Var(&c.Streams.MaxBytes, "max-bytes", streams.DefaultMaxBytes, "bytes all streams may hold together (jobs, tasks and results refuse new messages when full; events, outputs and dead letters drop their oldest); an eighth of it with memory storage")
	fs.BoolVar(&c.LogJSON, "log-json", env("BATON_LOG", "text") == "json", "log JSON lines instead of text (env BATON_LOG=json)")
	fs.StringVar(&c.LogLevel, "log-level", env("BATON_LOG_LEVEL", "info"), "debug, info, warn or error (env BATON_LOG_LEVEL)")
	fs.StringVar(&c.HTTPAuth, "http-auth", env("BATON_HTTP_AUTH", ""), "user:password the dashboard asks for (HTTP basic auth); required to serve it beyond loopback (env BATON_HTTP_AUTH)")
	fs.StringVar(&c.HTTPHosts, "http-hosts", env("BATON_HTTP_HOSTS", ""), "host names the dashboard answers to besides IP addresses and localhost, comma separated (env BATON_HTTP_HOSTS)")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file, for go tool pprof (written when the service stops)")
	fs.StringVar(&c.HTTP, "http", env("BATON_HTTP", ""), "serve /metrics, /healthz, /readyz (and the dashboard, for the planner) on this address, e.g. 127.0.0.1:8080 (env BATON_HTTP)")
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// WebConfig is the web server's configuration for these flags.
func (c *Common) WebConfig(dashboard bool, log *slog.Logger) web.Config {
	return web.Config{Streams: c.Streams, Dashboard: dashboard, Hosts: SplitList(c.HTTPHosts), Auth: c.HTTPAuth, Logger: log}
}

// Logger returns the structured logger the flags ask for, writing to w.
func (c *Common) Logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Connect dials the configured server, reconnecting forever. With a
// logger it logs each disconnect once (not every reconnect attempt), each
// reconnect with the server it reached, and the close. Passwords and tokens,
// the flags' and the context's, never appear in its logs or errors. A
// context that cannot be read or used is an error wrapping ErrContext.
func (c *Common) Connect(name string, log *slog.Logger) (*nats.Conn, error) {
	flagOpts, err := c.ConnFlags.Options()
	if err != nil {
		return nil, err
	}
	var set contextSettings
	opts := append([]nats.Option{set.option, nats.Name(name), nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond), nats.RetryOnFailedConnect(false),
		// A server cut off the network drops packets instead of closing
		// the connection: ping every 2 s and give up on it after 3
		// unanswered pings, 6-8 s (nats.go's defaults take 4 minutes to
		// notice; 5 s pings took 15-20 s, which the tasks its agents held
		// and the results its planner had not read waited out).
		nats.PingInterval(2 * time.Second), nats.MaxPingsOutstanding(3)}, flagOpts...)
	if log != nil {
		log = log.With("conn", name)
		if c.Context != "" {
			log = log.With("context", c.Context)
		}
		opts = append(opts,
			nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
				if nc.IsClosed() {
					return // closing, not losing the server: ClosedHandler says so
				}
				log.Warn("disconnected from NATS; reconnecting", "err", err)
			}),
			nats.ReconnectHandler(func(nc *nats.Conn) {
				log.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted())
			}),
			nats.ClosedHandler(func(*nats.Conn) { log.Info("NATS connection closed") }),
			// Permission violations (a role without a permission it needs)
			// and slow-consumer drops would otherwise pass unseen.
			nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
				if sub != nil {
					log.Error("NATS error", "subject", sub.Subject, "err", err)
					return
				}
				log.Error("NATS error", "err", err)
			}),
		)
	}
	nc, err := c.ConnFlags.dial(opts)
	switch {
	case err != nil && !set.read:
		return nil, fmt.Errorf("%w %s: %w", ErrContext, c.Context, err)
	case err != nil:
		servers := c.ConnFlags.servers(&set)
		msg := redact(err.Error(), servers)
		for _, secret := range append(set.secrets, c.Password) {
			if secret != "" {
				msg = strings.ReplaceAll(msg, secret, "xxxxx")
			}
		}
		to := RedactURLs(servers)
		if c.Context != "" {
			to += " (context " + c.Context + ")"
		}
		return nil, &redactedError{msg: "connect to " + to + ": " + msg, err: err}
	}
	if log != nil {
		log.Info("connected to NATS", "server", nc.ConnectedUrlRedacted())
	}
	return nc, nil
}

// redactedError says what err says without the passwords, and still
// matches err with errors.Is (nats.ErrNoServers, timeouts).
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// RedactURLs returns a comma separated list of server URLs with every
// password replaced by "xxxxx".
func RedactURLs(servers string) string {
	parts := strings.Split(servers, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// redact removes from msg every password the server URLs carry.
func redact(msg, servers string) string {
	for _, p := range strings.Split(servers, ",") {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok && pw != "" {
				msg = strings.ReplaceAll(msg, pw, "xxxxx")
			}
		}
	}
	return msg
}

// ParseFlags parses args into fs, returning flag.ErrHelp untouched.
func ParseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	return fs.Parse(args)
}

// AddContext adds an actor that runs fn with a context the group cancels
// when it interrupts. fn must return once its context is done.
func AddContext(g *run.Group, ctx context.Context, fn func(context.Context) error) {
	ctx, cancel := context.WithCancel(ctx)
	g.Add(func() error { return fn(ctx) }, func(error) { cancel() })
}

// RunGroup adds the signal handler (SIGINT, SIGTERM or ctx's end) to g, runs
// it, and reports a clean stop as nil.
func RunGroup(ctx context.Context, g *run.Group) error {
	g.Add(run.SignalHandler(ctx, os.Interrupt, sigterm))
	err := g.Run()
	if errors.Is(err, run.ErrSignal) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// ErrStopped is ConnectWait's error when the service was told to stop
// (SIGINT, SIGTERM, its context) before it could connect.
var ErrStopped = errors.New("stopped before NATS could be reached")

// ConnectWait is Connect for a long-running service: while no server can be
// reached (a cluster still starting, as `docker compose up` starts
// everything at once) it tries again, 100 ms doubling to 2 s between tries,
// logging each, until it connects or ctx ends or SIGINT or SIGTERM comes
// (ErrStopped). Any other error (credentials refused, TLS, a bad context)
// ends it at once: waiting would not mend it.
func (c *Common) ConnectWait(ctx context.Context, name string, log *slog.Logger) (*nats.Conn, error) {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, sigterm)
	defer stop()
	var nc *nats.Conn
	err := retry.Do(ctx, log.With("conn", name), "waiting for NATS: no server reachable yet", 0, func() (err error) {
		nc, err = c.Connect(name, log)
		if err != nil && !errors.Is(err, nats.ErrNoServers) {
			return retry.Stop(err)
		}
		return err
	})
	if err != nil && ctx.Err() != nil {
		return nil, ErrStopped
	}
	return nc, err
}

// Exit ends a service's main: silently for nil, for -h (flag.ErrHelp,
// after the usage was printed) and for a stop before it connected
// (ErrStopped), else with the error on stderr and status 1.
func Exit(name string, err error) {
	if err == nil || errors.Is(err, flag.ErrHelp) || errors.Is(err, ErrStopped) {
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, name+":", err)
	os.Exit(1)
}

// SplitList splits a comma separated flag value, dropping empty items.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
