package cli

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/baton-dev/baton/internal/service"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/jetstream/auth"
	"github.com/baton-dev/baton/jetstream/embedded"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go"
	"github.com/oklog/run"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// upFlags are the flags of `baton up`; demo and bench take the subset that
// applies to a throwaway embedded run.
type upFlags struct {
	service.Common
	data        string
	listen      string
	agents      int
	concurrency int
	exec        string
	url         string
	auth        bool
	tls         bool
	limits      events.Limits // the planner's (--max-tasks; bench --large sets it)
	// webhook and webhookHosts configure the planner's escalation webhook.
	webhook      string
	webhookHosts listFlag
}

// registerServer adds the embedded server's flags; data "" means a
// temporary directory (see startEmbeddedRun).
func (f *upFlags) registerServer(fs *pflag.FlagSet, data, listen string) {
	usage := "directory for JetStream's files"
	if data == "" {
		usage += " (default: a temporary directory, removed at the end)"
	}
	fs.StringVar(&f.data, "data", data, usage)
	fs.StringVar(&f.listen, "listen", listen, "address the embedded nats-server listens on (port 0: any free port)")
}

// registerAgents adds the built-in agents' flags.
func (f *upFlags) registerAgents(fs *pflag.FlagSet, concurrency int) {
	fs.IntVar(&f.agents, "agents", 4, "built-in agents to run")
	fs.IntVar(&f.concurrency, "concurrency", concurrency, "slots per agent")
}

// registerLog adds the logging flags; level is the default level.
func (f *upFlags) registerLog(fs *pflag.FlagSet, level string) {
	fs.BoolVar(&f.LogJSON, "log-json", envOr("BATON_LOG", "text") == "json", "log JSON lines instead of text (env BATON_LOG=json)")
	fs.StringVar(&f.LogLevel, "log-level", envOr("BATON_LOG_LEVEL", level), "debug, info, warn or error (env BATON_LOG_LEVEL)")
}

// registerStreams adds the stream tuning flags.
func registerStreams(fs *pflag.FlagSet, c *streams.Config) {
	fs.IntVar(&c.Replicas, "replicas", 1, "stream replicas: 3 on a cluster")
	fs.DurationVar(&c.AckWait, "ack-wait", streams.DefaultAckWait, "how long a silent agent keeps a task before it is redelivered")
	fs.DurationVar(&c.AgentTTL, "agent-ttl", streams.DefaultAgentTTL, "how long an agent stays registered after its last heartbeat")
	fs.DurationVar(&c.PermitTTL, "permit-ttl", streams.DefaultPermitTTL, "how long a concurrency permit outlives its holder's last renewal: a dead agent's permits come back within it (set by the planner, which creates the bucket)")
	fs.Int64Var(&c.MaxBytes, "max-bytes", streams.DefaultMaxBytes, "bytes all streams may hold together (jobs, tasks and results refuse new messages when full; events, outputs and dead letters drop their oldest); an eighth of it with memory storage")
}

// setConn copies the connection flags in.
func (f *upFlags) setConn(c *conn) {
	f.ConnFlags, f.Streams.Prefix = c.flags, c.prefix
}

func (f *upFlags) serverConfig() (embedded.Config, error) {
	host, portS, err := net.SplitHostPort(f.listen)
	if err != nil {
		return embedded.Config{}, usagef("--listen %q: %w", f.listen, err)
	}
	port, err := strconv.Atoi(portS)
	if err != nil {
		return embedded.Config{}, usagef("--listen %q: bad port", f.listen)
	}
	if port == 0 {
		port = -1
	}
	return embedded.Config{Host: host, Port: port, StoreDir: f.data}, nil
}

func (f *upFlags) system() *service.System {
	s := &service.System{Streams: f.Streams, Agents: f.agents, Concurrency: f.concurrency, Limits: f.limits}
	s.Builtin.Exec = strings.Fields(f.exec)
	s.Builtin.URL = f.url
	s.Webhook, s.WebhookHosts = f.webhook, f.webhookHosts.items
	return s
}

func newUpCmd(c *conn) *cobra.Command {
	var f upFlags
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run everything in one process on an embedded nats-server",
		Long: `Start an embedded nats-server with JetStream (files in --data), ensure the
streams, and run the planner, the aggregator, --agents built-in agents and
the dashboard with /metrics on --http, until Ctrl-C or SIGTERM; running
tasks finish first. The exec and http task types run only when --exec or
--url configure them. --server and --context are not used: the server is
the embedded one, on --listen.`,
		Example: `  baton up
  baton up --auth    # every client needs a role's nkey from baton-data/auth
  baton up --auth --tls   # and TLS: clients add --tls-ca baton-data/tls/ca.pem
  baton up --listen 127.0.0.1:0 --data /tmp/baton --agents 8 --concurrency 16
  baton up --exec 'python3 handler.py' --http ''`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.setConn(c)
			return up(cmd, &f)
		},
	}
	fs := cmd.Flags()
	f.registerServer(fs, "baton-data", "127.0.0.1:4222")
	f.registerAgents(fs, 4)
	fs.IntVar(&f.limits.MaxTasks, "max-tasks", events.DefaultMaxTasks, fmt.Sprintf("most tasks one job may split into (up to %d; each open task costs the planner about 50 bytes)", events.MaxTasksCeiling))
	fs.StringVar(&f.exec, "exec", "", "command for the exec type (program and arguments, no shell); enables exec")
	fs.StringVar(&f.url, "url", "", "URL for the http type; enables http")
	fs.StringVar(&f.webhook, "webhook", envOr("BATON_WEBHOOK", ""), "http(s) URL the planner POSTs escalations to (env BATON_WEBHOOK)")
	fs.Var(&f.webhookHosts, "webhook-allow", "hosts (host or host:port) a job's own escalation webhook may name; default none (repeat, or comma separated)")
	fs.BoolVar(&f.auth, "auth", false, "admit only baton's roles: write an nkey per role and the server's authorization into <data>/auth (kept across restarts)")
	fs.BoolVar(&f.tls, "tls", false, "require TLS of every client: a private CA and a server certificate for --listen's host, written once into <data>/tls (clients verify with --tls-ca <data>/tls/ca.pem)")
	fs.StringVar(&f.HTTPAuth, "http-auth", envOr("BATON_HTTP_AUTH", ""), "user:password the dashboard asks for (HTTP basic auth); required to serve it beyond loopback (env BATON_HTTP_AUTH)")
	fs.StringVar(&f.HTTPHosts, "http-hosts", envOr("BATON_HTTP_HOSTS", ""), "host names the dashboard answers to besides IP addresses and localhost, comma separated (env BATON_HTTP_HOSTS)")
	fs.StringVar(&f.HTTP, "http", envOr("BATON_HTTP", "127.0.0.1:8080"), "serve the dashboard and /metrics on this address (\"\": not at all) (env BATON_HTTP)")
	registerStreams(fs, &f.Streams)
	f.registerLog(fs, "info")
	return cmd
}

func up(cmd *cobra.Command, f *upFlags) error {
	ctx, stdout, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
	sc, err := f.serverConfig()
	if err != nil {
		return err
	}
	sys := f.system()
	var authDir string
	if f.auth {
		authDir = filepath.Join(f.data, "auth")
		roles := auth.Standard(f.Streams, map[string][]string{"builtin": sys.DefaultTypes()})
		if _, err := auth.Write(authDir, roles); err != nil {
			return err
		}
		// The services of this process share one connection, as the admin.
		admin, err := nats.NkeyOptionFromSeed(filepath.Join(authDir, auth.SeedFile(auth.Admin)))
		if err != nil {
			return err
		}
		sc.AuthFile, sc.ClientOptions = filepath.Join(authDir, auth.ConfFile), []nats.Option{admin}
	}
	var caFile string
	if f.tls {
		if caFile, sc.TLSCert, sc.TLSKey, err = auth.WriteTLS(filepath.Join(f.data, "tls"), sc.Host); err != nil {
			return err
		}
	}
	emb, err := embedded.StartNode(sc)
	if err != nil {
		return err
	}
	// The server is not an actor: it must outlive every service so that
	// agents can drain and hand their last results over before it stops.
	defer emb.Close()
	sys.Logger = f.Logger(stderr)
	var g run.Group
	if _, err := sys.Add(ctx, &g, emb.Conn); err != nil {
		return err
	}
	wc := f.WebConfig(true, sys.Logger)
	wc.Ready = service.PlannerReady(emb.Conn, f.Streams)
	if err := service.AddWeb(ctx, &g, emb.Conn, sys.Monitor, f.HTTP, wc, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "baton up: nats-server on %s with JetStream in %s\n", emb.Server.ClientURL(), f.data)
	if f.HTTP != "" {
		fmt.Fprintf(stdout, "  dashboard: http://%s/   metrics: http://%s/metrics\n", f.HTTP, f.HTTP)
	}
	fmt.Fprintf(stdout, "  planner, aggregator, %d agents (%s; %d slots each)\n", f.agents, strings.Join(sys.DefaultTypes(), ", "), f.concurrency)
	if caFile != "" {
		fmt.Fprintf(stdout, "  tls:     required; clients verify the server with --tls-ca %s\n", caFile)
	}
	if authDir != "" {
		as := func(role string) string {
			flags := fmt.Sprintf("--nkey %s --inbox-prefix %s", filepath.Join(authDir, auth.SeedFile(role)), auth.InboxPrefix(role))
			if caFile != "" {
				flags += " --tls-ca " + caFile
			}
			return flags
		}
		fmt.Fprintf(stdout, "  auth:    only baton's roles are admitted; their nkeys and permissions are in %s\n", authDir)
		fmt.Fprintf(stdout, "  submit:  baton submit %s --follow examples/report.json\n", as(auth.Submitter))
		fmt.Fprintf(stdout, "  status:  baton status %s\n", as(auth.Viewer))
	} else {
		fmt.Fprintf(stdout, "  submit:  go tool nats pub -J %s < examples/report.json\n", f.Streams.Subjects().Submit())
		fmt.Fprintf(stdout, "  follow:  go tool nats sub '%s.outputs.>'\n", f.Streams.WithDefaults().Prefix)
	}
	fmt.Fprintln(stdout, "  stop:    Ctrl-C (running tasks finish first)")
	return service.RunGroup(ctx, &g)
}
