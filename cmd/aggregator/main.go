// Command aggregator runs baton's aggregator against a NATS server: it turns
// task results into partial and final workflow outputs.
package main

import (
	"context"
	"flag"
	"io"
	"os"

	"github.com/baton-dev/baton/internal/service"
	"github.com/baton-dev/baton/pkg/aggregator"
	"github.com/oklog/run"
)

func main() {
	service.Exit("aggregator", serve(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// serve is the whole program; main only exits with its error.
func serve(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("aggregator", flag.ContinueOnError)
	var c service.Common
	c.Register(fs)
	partial := fs.Duration("partial-every", 0, "minimum time between two partial outputs of a workflow (default 250ms)")
	if err := service.ParseFlags(fs, args, stderr); err != nil {
		return err
	}
	stopProfile, err := service.StartProfile(c.CPUProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	log := c.Logger(stderr)
	nc, err := c.ConnectWait(ctx, "baton-aggregator", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	cfg := aggregator.Config{Streams: c.Streams, PartialEvery: *partial, Logger: log}
	if err := cfg.Validate(); err != nil { // now, not at the first lead
		return err
	}
	var g run.Group
	if c.HTTP != "" { // /metrics, from a monitor of its own
		mon, err := service.AddMonitor(ctx, &g, nc, c.Streams, false, log)
		if err != nil {
			return err
		}
		wc := c.WebConfig(false, log)
		wc.Ready = service.LeaderReady(nc, c.Streams, service.LeadAggregator)
		if err := service.AddWeb(ctx, &g, nc, mon, c.HTTP, wc, nil); err != nil {
			return err
		}
	}
	// Any number of aggregators may run: one leads, the others stand by.
	service.AddContext(&g, ctx, func(ctx context.Context) error { return service.RunAggregator(ctx, nc, cfg) })
	return service.RunGroup(ctx, &g)
}
