package monitor

import (
	"context"
	"errors"
	"time"

	"github.com/baton-dev/baton/pkg/control"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/registry"
)

// ServiceName is the monitor's control service: `nats micro info baton-status`.
const ServiceName = "baton-status"

// requestWait bounds how long a status request waits for a snapshot.
const requestWait = 20 * time.Second

// Serve answers the read-only control verbs, status and agents, from this
// monitor until ctx ends; it returns nil then. Every process that runs
// Serve answers them alike (their figures all come from JetStream), so any
// number may run: requests are spread over them.
func (m *Monitor) Serve(ctx context.Context, version string) error {
	svc, err := control.Start(ctx, m.nc, control.Service{
		Name: ServiceName, Version: version, Subjects: m.subj,
		Description: "baton figures: status (progress, ETA, bottleneck, lanes, agents) and the agent registry",
		Handlers: map[string]control.HandlerFunc{
			events.VerbStatus: m.serveStatus,
			events.VerbAgents: m.serveAgents,
		},
	})
	if err != nil {
		return err
	}
	<-ctx.Done()
	return svc.Stop()
}

func (m *Monitor) serveStatus(ctx context.Context, body []byte) (any, error) {
	req, err := control.Request(body)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, requestWait)
	defer cancel()
	snap, err := m.Snapshot(ctx, req.Workflow)
	switch {
	case errors.Is(err, ErrUnknownWorkflow):
		return nil, control.Errorf(404, "unknown workflow %s", req.Workflow)
	case errors.Is(err, ErrNotReady):
		return nil, control.Errorf(503, "%v", err)
	}
	return snap, err
}

func (m *Monitor) serveAgents(ctx context.Context, body []byte) (any, error) {
	if _, err := control.Request(body); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, requestWait)
	defer cancel()
	reg, err := registry.Open(ctx, m.js, m.cfg.Streams)
	if err != nil {
		return nil, err
	}
	return reg.List(ctx)
}
