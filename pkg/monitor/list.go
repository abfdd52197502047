package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/baton-dev/baton/pkg/events"
)

// Query says what a Snapshot covers and which of its workflows it lists.
type Query struct {
	// Workflow, if set, is the one workflow to report; the rest of the
	// query is then ignored.
	Workflow string
	// Status lists only the workflows that are "open" (running, paused or
	// stopped), "finished" (completed or failed, within the window) or of
	// one status; "" lists them all. The sums cover every workflow
	// whatever it is.
	Status string
	// Offset skips that many workflows of the list; Limit lists at most
	// that many (0: events.DefaultListLimit; more than
	// events.MaxListLimit is lowered to it).
	Offset, Limit int
}

// QueryOf is the query a status request asks.
func QueryOf(req *events.ControlRequest) Query {
	return Query{Workflow: req.Workflow, Status: req.Status, Offset: req.Offset, Limit: req.Limit}
}

// ErrBadQuery is wrapped by Snapshot's error for a query it cannot answer:
// an unknown status filter, a negative offset or limit.
var ErrBadQuery = errors.New("monitor: bad query")

// check returns the query's limit, or why the query cannot be answered.
func (q Query) check() (limit int, err error) {
	if q.Workflow != "" && !events.ValidToken(q.Workflow) {
		return 0, fmt.Errorf("%w: %q is not a workflow id", ErrBadQuery, events.Short(q.Workflow))
	}
	switch q.Status {
	case "", statusOpen, statusFinished, events.WorkflowRunning, events.WorkflowPaused, events.WorkflowStopped,
		events.WorkflowNeedsAttention, events.WorkflowCompleted, events.WorkflowFailed:
	default:
		return 0, fmt.Errorf("%w: status %q: want open, finished, running, paused, stopped, needs_attention, completed or failed",
			ErrBadQuery, events.Short(q.Status))
	}
	return pageLimit(q.Offset, q.Limit)
}

// pageLimit checks a page's offset and limit and returns the limit to
// apply.
func pageLimit(offset, limit int) (int, error) {
	switch {
	case offset < 0 || limit < 0:
		return 0, fmt.Errorf("%w: offset and limit must not be negative", ErrBadQuery)
	case limit == 0:
		return events.DefaultListLimit, nil
	}
	return min(limit, events.MaxListLimit), nil
}

// The status filters that stand for several statuses.
const (
	statusOpen     = "open"
	statusFinished = "finished"
)

// matches reports whether a workflow of this status passes the filter.
func matches(filter, status string) bool {
	switch filter {
	case "":
		return true
	case statusOpen:
		return events.WorkflowOpen(status)
	case statusFinished:
		return !events.WorkflowOpen(status)
	}
	return status == filter
}

// maxReply bounds a reply even where the server allows larger messages: a
// page of status is for reading, and the dashboard receives one a second.
const maxReply = 1 << 20

// replyMargin is what a reply leaves of its bound for headers and for
// rounding in what fit measures.
const replyMargin = 64 << 10

// budget is how many bytes a reply may take: the connection's max payload
// or maxReply, whichever is less, less a margin.
func (m *Monitor) budget() int {
	mp := int(m.nc.MaxPayload())
	if mp <= 0 {
		mp = maxReply // not connected yet
	}
	mp = min(mp, maxReply)
	return mp - min(replyMargin, mp/4)
}

// size is v's size as JSON, with the comma that separates it from the next
// entry of a list.
func size(v any) int {
	b, _ := json.Marshal(v)
	return len(b) + 1
}

// fill makes the entries of a list from offset on, at most limit, while
// their size stays within *budget, which it lowers by what they take.
// short says that the budget, not the limit or the end, stopped it.
func fill[T any](n, offset, limit int, budget *int, mk func(i int) T) (out []T, short bool) {
	out = []T{}
	for i := offset; i < n && len(out) < limit; i++ {
		v := mk(i)
		s := size(v)
		if s > *budget {
			return out, true
		}
		*budget -= s
		out = append(out, v)
	}
	return out, false
}

// noteRoom is what fit keeps for the notes it writes after measuring.
const noteRoom = 2 << 10

// fit fills the snapshot's lists within the reply's budget: lanes (the busy
// and paused first) and agents each take at most a quarter of it, and the
// workflows of list (from offset, at most limit, each made by view) what is
// left. It says in the snapshot what each list left out.
func fit(snap *events.Snapshot, list []*events.Workflow, view func(*events.Workflow) events.WorkflowView,
	lanes []events.LaneState, agents []events.AgentInfo, offset, limit, budget int) {
	snap.Workflows, snap.Lanes, snap.Agents.List = []events.WorkflowView{}, []events.LaneState{}, []events.AgentInfo{}
	left := budget - size(snap) - noteRoom
	slices.SortStableFunc(lanes, func(a, b events.LaneState) int { return boolOrder(idle(a), idle(b)) })
	part := left / 4
	laneBudget, agentBudget := part, part
	snap.Lanes, _ = fill(len(lanes), 0, events.MaxStatusLanes, &laneBudget, func(i int) events.LaneState { return lanes[i] })
	snap.LanesOmitted = len(lanes) - len(snap.Lanes)
	snap.Agents.List, _ = fill(len(agents), 0, events.MaxStatusAgents, &agentBudget, func(i int) events.AgentInfo { return clipAgent(agents[i]) })
	snap.Agents.Omitted = len(agents) - len(snap.Agents.List)
	left -= 2*part - laneBudget - agentBudget
	var short bool
	snap.Workflows, short = fill(len(list), offset, limit, &left, func(i int) events.WorkflowView { return view(list[i]) })
	snap.Page = page(len(list), offset, limit, len(snap.Workflows))
	if snap.Page.Omitted > 0 {
		snap.Page.Note = workflowsNote(snap.Page, len(snap.Workflows), short)
	}
	snap.Truncated = snap.Page.Omitted > 0 || snap.LanesOmitted > 0 || snap.Agents.Omitted > 0
}

// page describes a page of listed entries of a list of total.
func page(total, offset, limit, listed int) events.ListPage {
	p := events.ListPage{Total: total, Offset: offset, Limit: limit, Omitted: total - listed}
	if offset+listed < total {
		p.Next = offset + listed
	}
	return p
}

// workflowsNote says which workflows a status reply lists and how to see
// the others.
func workflowsNote(p events.ListPage, listed int, short bool) string {
	why := fmt.Sprintf("the limit is %d", p.Limit)
	if short {
		why = "the reply stops there to fit within the server's max payload"
	}
	note := fmt.Sprintf("listing %d of %d workflows from offset %d (open ones first, then the recently finished, latest first; %s); %d left out",
		listed, p.Total, p.Offset, why, p.Omitted)
	if p.Next > 0 {
		note += fmt.Sprintf(": ask from offset %d for the next (baton status --offset %d)", p.Next, p.Next)
	} else {
		note += ": ask from offset 0 for the first (baton status --offset 0)"
	}
	return note + ", filter by status (baton status --status paused), or ask for one (baton status WF)"
}

func idle(l events.LaneState) bool { return l.Backlog == 0 && l.InFlight == 0 && !l.Paused }

// boolOrder sorts false before true.
func boolOrder(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// clipAgent bounds what an agent's entry shows, whoever wrote it: at most
// MaxListedTasks tasks (Running counts them all), MaxAgentNames types and
// capabilities, MaxAgentText bytes of each text.
func clipAgent(a events.AgentInfo) events.AgentInfo {
	a.Tasks = clipList(a.Tasks, events.MaxListedTasks)
	a.Types = clipList(a.Types, events.MaxAgentNames)
	a.Capabilities = clipList(a.Capabilities, events.MaxAgentNames)
	a.Routing = clipList(a.Routing, events.MaxCapabilities)
	a.Status = events.Clip(a.Status, events.MaxAgentText)
	a.Host = events.Clip(a.Host, events.MaxAgentText)
	a.Version = events.Clip(a.Version, events.MaxAgentText)
	return a
}

// clipList returns at most n of list, each clipped to MaxAgentText bytes,
// in a new slice.
func clipList(list []string, n int) []string {
	if list == nil {
		return nil
	}
	out := make([]string, 0, min(len(list), n))
	for _, s := range list[:min(len(list), n)] {
		out = append(out, events.Clip(s, events.MaxAgentText))
	}
	return out
}
