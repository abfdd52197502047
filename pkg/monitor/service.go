package monitor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
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
	snap, err := m.Snapshot(ctx, QueryOf(req))
	switch {
	case errors.Is(err, ErrUnknownWorkflow):
		return nil, control.Errorf(404, "unknown workflow %s", req.Workflow)
	case errors.Is(err, ErrBadQuery):
		return nil, control.Errorf(400, "%v", err)
	case errors.Is(err, ErrNotReady):
		return nil, control.Errorf(503, "%v", err)
	}
	return snap, err
}

// serveAgents answers agents: a page of the registry's entries, sorted by
// id, of one status if the request says. The body stays a bare list, as
// it always was; the headers Baton-Total and Baton-Omitted say how many
// agents matched and how many of them the page leaves out.
func (m *Monitor) serveAgents(ctx context.Context, body []byte) (any, error) {
	req, err := control.Request(body)
	if err != nil {
		return nil, err
	}
	limit, err := pageLimit(req.Offset, req.Limit)
	if err == nil && req.Status != "" && !slices.Contains(agentStatuses, req.Status) {
		err = fmt.Errorf("%w: status %q: want idle, busy, draining or failed", ErrBadQuery, req.Status)
	}
	if err != nil {
		return nil, control.Errorf(400, "%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, requestWait)
	defer cancel()
	reg, err := registry.Open(ctx, m.js, m.cfg.Streams)
	if err != nil {
		return nil, err
	}
	all, err := reg.List(ctx)
	if err != nil {
		return nil, err
	}
	if req.Status != "" {
		all = slices.DeleteFunc(all, func(a events.AgentInfo) bool { return a.Status != req.Status })
	}
	budget := m.budget()
	list, _ := fill(len(all), req.Offset, limit, &budget, func(i int) events.AgentInfo { return clipAgent(all[i]) })
	p := page(len(all), req.Offset, limit, len(list))
	return control.Reply{Body: list, Header: map[string]string{
		events.HeaderTotal: strconv.Itoa(p.Total), events.HeaderOmitted: strconv.Itoa(p.Omitted)}}, nil
}

var agentStatuses = []string{events.AgentIdle, events.AgentBusy, events.AgentDraining, events.AgentFailed}
