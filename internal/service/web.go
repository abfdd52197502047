package service

import (
	"context"
	"log/slog"
	"net"

	"github.com/baton-dev/baton/internal/web"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/monitor"
	"github.com/nats-io/nats.go"
	"github.com/oklog/run"
)

// AddMonitor adds the process's one monitor to g and returns it; with
// serve it also answers the status and agents verbs. The monitor reads no
// stream until something asks it for figures.
func AddMonitor(ctx context.Context, g *run.Group, nc *nats.Conn, c streams.Config, serve bool, log *slog.Logger) (*monitor.Monitor, error) {
	mon, err := monitor.New(nc, monitor.Config{Streams: c, Logger: log})
	if err != nil {
		return nil, err
	}
	AddContext(g, ctx, mon.Run)
	if serve {
		AddContext(g, ctx, func(ctx context.Context) error { return mon.Serve(ctx, Version) })
	}
	return mon, nil
}

// AddWeb adds, when addr is set, the HTTP server over mon to g: /metrics
// always, the dashboard and its API when cfg.Dashboard is set. ready, if
// not nil, gets the address listened on.
func AddWeb(ctx context.Context, g *run.Group, nc *nats.Conn, mon *monitor.Monitor, addr string, cfg web.Config, ready func(net.Addr)) error {
	if addr == "" {
		return nil
	}
	if err := cfg.CheckExposure(addr); err != nil {
		return err
	}
	srv, err := web.New(nc, mon, cfg)
	if err != nil {
		return err
	}
	AddContext(g, ctx, func(ctx context.Context) error { return srv.Run(ctx, addr, ready) })
	return nil
}
