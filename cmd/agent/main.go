// Command agent runs one baton agent with built-in handlers against a NATS
// server. Run as many as you like, on as many machines.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/baton-dev/baton/internal/service"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/builtin"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/oklog/run"
)

func main() {
	service.Exit("agent", serve(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// serve is the whole program; main only exits with its error.
func serve(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	var c service.Common
	c.Register(fs)
	var cfg agent.Config
	types := fs.String("types", "research,write,data,sleep,noop", "task types to serve, comma separated: "+strings.Join(builtin.Types(), ", "))
	fs.StringVar(&cfg.ID, "id", "", "agent id (default <host>-<pid>-<random>)")
	fs.IntVar(&cfg.Concurrency, "concurrency", 8, "tasks run at once")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", 0, "on shutdown, how long running tasks may finish before they are handed back (default 30s)")
	execCmd := fs.String("exec", "", "command for the exec type: program and arguments split on spaces, run without a shell")
	url := fs.String("url", "", "URL the http type POSTs each task to")
	caps := fs.String("capabilities", "", "capabilities to advertise, comma separated (at most 4): the agent also runs tasks of steps that require them")
	fs.Float64Var(&cfg.CPUs, "cpus", 0, "CPU capacity in cores (fractions allowed): a task starts only if the cpus its step declares fit what the running tasks leave (default none declared)")
	memory := fs.String("memory", "", "memory capacity, e.g. 4GiB: a task starts only if the memory its step declares fits what the running tasks leave (default none declared)")
	if err := service.ParseFlags(fs, args, stderr); err != nil {
		return err
	}
	stopProfile, err := service.StartProfile(c.CPUProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	cfg.Streams, cfg.Logger, cfg.Version = c.Streams, c.Logger(stderr), service.Version
	cfg.Capabilities = service.SplitList(*caps)
	if *memory != "" {
		m, err := events.ParseByteSize(*memory)
		if err != nil {
			return fmt.Errorf("--memory: %w", err)
		}
		cfg.Memory = int64(m)
	}
	nc, err := c.ConnectWait(ctx, "baton-agent", cfg.Logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	a, err := agent.New(nc, cfg)
	if err != nil {
		return err
	}
	if err := builtin.Register(a, service.SplitList(*types), builtin.Options{Exec: strings.Fields(*execCmd), URL: *url}); err != nil {
		return err
	}
	var g run.Group
	if c.HTTP != "" { // /metrics, from a monitor of its own
		mon, err := service.AddMonitor(ctx, &g, nc, c.Streams, false, cfg.Logger)
		if err != nil {
			return err
		}
		wc := c.WebConfig(false, cfg.Logger)
		wc.Ready = service.AgentReady(nc, c.Streams, a.Info().ID)
		if err := service.AddWeb(ctx, &g, nc, mon, c.HTTP, wc, nil); err != nil {
			return err
		}
	}
	service.AddContext(&g, ctx, a.Run)
	addCrashExit(&g, a)
	return service.RunGroup(ctx, &g)
}

// exitCrashed is the status a crash drill ends the process with: the one
// a process killed by SIGKILL reports (128 + 9), so that a supervisor
// treats it as the crash it rehearses.
const exitCrashed = 137

// addCrashExit ends the process at once when the agent takes a crash
// drill, as SIGKILL would: no deferred function runs, nothing is drained,
// acknowledged or removed from the registry, and the connection is cut.
func addCrashExit(g *run.Group, a *agent.Agent) {
	stop := make(chan struct{})
	g.Add(func() error {
		select {
		case <-a.Crashed():
			os.Exit(exitCrashed)
		case <-stop:
		}
		return nil
	}, func(error) { stopOnce(stop) })
}

// stopOnce closes c unless it is closed (interrupt may be called twice,
// never at once).
func stopOnce(c chan struct{}) {
	select {
	case <-c:
	default:
		close(c)
	}
}
