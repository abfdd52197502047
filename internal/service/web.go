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

// AddWeb adds, when addr is set, a monitor and the HTTP server over it to
// g: /metrics always, the dashboard and its API when dashboard is true.
// ready, if not nil, gets the address listened on.
func AddWeb(ctx context.Context, g *run.Group, nc *nats.Conn, c streams.Config, addr string, dashboard bool, log *slog.Logger, ready func(net.Addr)) error {
	if addr == "" {
		return nil
	}
	mon, err := monitor.New(nc, monitor.Config{Streams: c, Logger: log})
	if err != nil {
		return err
	}
	srv, err := web.New(nc, mon, web.Config{Streams: c, Dashboard: dashboard, Logger: log})
	if err != nil {
		return err
	}
	AddContext(g, ctx, mon.Run)
	AddContext(g, ctx, func(ctx context.Context) error { return srv.Run(ctx, addr, ready) })
	return nil
}
