// Command planner runs baton's planner against a NATS server: it plans
// submitted jobs into tasks and follows their results.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/baton-dev/baton/internal/service"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/planner"
	"github.com/oklog/run"
)

func main() {
	service.Exit("planner", serve(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// serve is the whole program; main only exits with its error.
func serve(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("planner", flag.ContinueOnError)
	var c service.Common
	c.Register(fs)
	webhook := fs.String("webhook", os.Getenv("BATON_WEBHOOK"), "http(s) URL escalations are POSTed to (env BATON_WEBHOOK)")
	maxTasks := fs.Int("max-tasks", events.DefaultMaxTasks, fmt.Sprintf("most tasks one job may split into (up to %d; each open task costs the planner about 50 bytes)", events.MaxTasksCeiling))
	allow := fs.String("webhook-allow", os.Getenv("BATON_WEBHOOK_ALLOW"), "hosts (host or host:port), comma separated, a job's own escalation webhook may name; default none (env BATON_WEBHOOK_ALLOW)")
	if err := service.ParseFlags(fs, args, stderr); err != nil {
		return err
	}
	stopProfile, err := service.StartProfile(c.CPUProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	log := c.Logger(stderr)
	nc, err := c.ConnectWait(ctx, "baton-planner", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	cfg := planner.Config{Streams: c.Streams, Logger: log, Version: service.Version,
		Webhook: *webhook, WebhookHosts: service.SplitList(*allow), Limits: events.Limits{MaxTasks: *maxTasks}}
	if err := cfg.Validate(); err != nil { // now, not at the first lead
		return err
	}
	var g run.Group
	// Any number of planners may run: one leads, the others stand by.
	service.AddContext(&g, ctx, func(ctx context.Context) error { return service.RunPlanner(ctx, nc, cfg) })
	// The status and agents verbs, the dashboard and /metrics share one
	// monitor, which reads nothing until one of them asks.
	mon, err := service.AddMonitor(ctx, &g, nc, c.Streams, true, log)
	if err != nil {
		return err
	}
	wc := c.WebConfig(true, log)
	wc.Ready = service.PlannerReady(nc, c.Streams)
	if err := service.AddWeb(ctx, &g, nc, mon, c.HTTP, wc, nil); err != nil {
		return err
	}
	return service.RunGroup(ctx, &g)
}
