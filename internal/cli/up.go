package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/baton-dev/baton/internal/service"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/oklog/run"
)

// upFlags are the flags of `baton up`, shared with demo and bench.
type upFlags struct {
	service.Common
	data        string
	listen      string
	agents      int
	concurrency int
	exec        string
	url         string
}

func (f *upFlags) register(fs *flag.FlagSet, dataDefault string) {
	f.Common.Register(fs)
	fs.StringVar(&f.data, "data", dataDefault, "directory for JetStream's files")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:4222", "address the embedded nats-server listens on (port 0: any free port)")
	fs.IntVar(&f.agents, "agents", 4, "built-in agents to run")
	fs.IntVar(&f.concurrency, "concurrency", 4, "slots per agent")
	fs.StringVar(&f.exec, "exec", "", "command for the exec type (program and arguments, no shell); enables exec")
	fs.StringVar(&f.url, "url", "", "URL for the http type; enables http")
}

func (f *upFlags) serverConfig() (streams.ServerConfig, error) {
	host, portS, err := net.SplitHostPort(f.listen)
	if err != nil {
		return streams.ServerConfig{}, fmt.Errorf("--listen %q: %w", f.listen, err)
	}
	port, err := strconv.Atoi(portS)
	if err != nil {
		return streams.ServerConfig{}, fmt.Errorf("--listen %q: bad port", f.listen)
	}
	if port == 0 {
		port = -1
	}
	return streams.ServerConfig{Host: host, Port: port, StoreDir: f.data}, nil
}

func (f *upFlags) system() *service.System {
	s := &service.System{Streams: f.Streams, Agents: f.agents, Concurrency: f.concurrency}
	s.Builtin.Exec = strings.Fields(f.exec)
	s.Builtin.URL = f.url
	return s
}

func up(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("baton up", flag.ContinueOnError)
	var f upFlags
	f.register(fs, "baton-data")
	if f.HTTP == "" {
		f.HTTP = "127.0.0.1:8080"
	}
	fs.Lookup("http").DefValue = "127.0.0.1:8080"
	fs.Lookup("http").Usage = "serve the dashboard and /metrics on this address (\"\": not at all) (env BATON_HTTP)"
	if err := service.ParseFlags(fs, args, stderr); err != nil {
		return err
	}
	sc, err := f.serverConfig()
	if err != nil {
		return err
	}
	emb, err := service.StartEmbedded(sc)
	if err != nil {
		return err
	}
	// The server is not an actor: it must outlive every service so that
	// agents can drain and hand their last results over before it stops.
	defer emb.Close()
	sys := f.system()
	sys.Logger = f.Logger(stderr)
	var g run.Group
	if _, err := sys.Add(ctx, &g, emb.Conn); err != nil {
		return err
	}
	if err := service.AddWeb(ctx, &g, emb.Conn, f.Streams, f.HTTP, true, sys.Logger, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "baton up: nats-server on %s with JetStream in %s\n", emb.Server.ClientURL(), f.data)
	if f.HTTP != "" {
		fmt.Fprintf(stdout, "  dashboard: http://%s/   metrics: http://%s/metrics\n", f.HTTP, f.HTTP)
	}
	fmt.Fprintf(stdout, "  planner, aggregator, %d agents (%s; %d slots each)\n", f.agents, strings.Join(sys.DefaultTypes(), ", "), f.concurrency)
	fmt.Fprintf(stdout, "  submit:  go tool nats pub -J %s < examples/report.json\n", f.Streams.Subjects().Submit())
	fmt.Fprintf(stdout, "  follow:  go tool nats sub '%s.outputs.>'\n", f.Streams.WithDefaults().Prefix)
	fmt.Fprintln(stdout, "  stop:    Ctrl-C (running tasks finish first)")
	return service.RunGroup(ctx, &g)
}
