// Package web serves baton over HTTP: the dashboard (which is also the
// control panel), its JSON API and server-sent event stream, and the
// Prometheus metrics. The page is embedded: nothing is built at run time.
package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/monitor"
	"github.com/nats-io/nats.go"
)

//go:embed index.html
var indexHTML []byte

// Config configures a Server.
type Config struct {
	Streams streams.Config
	// Dashboard serves the page, the API and the stream besides /metrics.
	Dashboard bool
	// SnapshotEvery is how often the stream sends a snapshot; default 1s.
	SnapshotEvery time.Duration
	// FeedEvery is how often it sends the events and outputs gathered
	// meanwhile, at most FeedMax of them; default 250ms and 200.
	FeedEvery time.Duration
	FeedMax   int
	// Hosts are the names (besides IP addresses and localhost) a request's
	// Host may give for the dashboard and its API. Any other is refused, so
	// a web page on a name that resolves to this machine (DNS rebinding)
	// cannot reach them. /metrics answers any Host.
	Hosts []string
	// Auth, "user:password", makes the dashboard and its API ask for HTTP
	// basic authentication. Required to serve the dashboard on an address
	// other than loopback (see CheckExposure).
	Auth string
	// Ready, if set, says whether the service can do its work (for
	// /readyz): nil when it can, else why not. Unset: ready while
	// connected.
	Ready  func(context.Context) error
	Logger *slog.Logger
}

// ErrExposed is returned by CheckExposure for a dashboard that would be
// reachable from other machines without authentication.
var ErrExposed = errors.New("the dashboard would be open to the network: serve it on a loopback address, or set --http-auth user:password")

// CheckExposure refuses to serve the dashboard on addr without Auth unless
// addr is a loopback address.
func (c Config) CheckExposure(addr string) error {
	if !c.Dashboard || c.Auth != "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("web: address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("web: %s: %w", addr, ErrExposed)
}

// Server is the HTTP side of a baton process.
type Server struct {
	cfg     Config
	nc      *nats.Conn
	cl      *client.Client
	mon     *monitor.Monitor
	metrics *monitor.Metrics
	log     *slog.Logger
}

// New returns a server over nc that reads figures from mon (which the
// caller runs) and exports them as metrics.
func New(nc *nats.Conn, mon *monitor.Monitor, cfg Config) (*Server, error) {
	cfg.Streams = cfg.Streams.WithDefaults()
	if cfg.SnapshotEvery <= 0 {
		cfg.SnapshotEvery = time.Second
	}
	if cfg.FeedEvery <= 0 {
		cfg.FeedEvery = 250 * time.Millisecond
	}
	if cfg.FeedMax <= 0 {
		cfg.FeedMax = 200
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	hosts := make([]string, 0, len(cfg.Hosts))
	for _, h := range cfg.Hosts {
		hosts = append(hosts, strings.TrimSuffix(strings.ToLower(h), "."))
	}
	cfg.Hosts = hosts
	cl, err := client.New(nc, cfg.Streams)
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, nc: nc, cl: cl, mon: mon, metrics: monitor.NewMetrics(mon), log: cfg.Logger.With("service", "web")}, nil
}

// health answers 200 while the process is connected to NATS, 503 while it
// is not: a container's health check (`baton health URL`). Like /metrics it
// is open and says nothing of any workflow.
func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if !s.nc.IsConnected() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, `{"status":"unavailable","nats":%q}`+"\n", s.nc.Status().String())
		return
	}
	fmt.Fprintln(w, `{"status":"ok","nats":"CONNECTED"}`)
}

// ready answers /readyz: 200 once the service can do its work (connected,
// and Config.Ready says so), 503 with the reason before. Orchestrators
// (compose's `up --wait`, a Kubernetes readiness probe) wait on it.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	why := ""
	switch {
	case !s.nc.IsConnected():
		why = "NATS " + s.nc.Status().String()
	case s.cfg.Ready != nil:
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			why = err.Error()
		}
	}
	if why != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		b, _ := json.Marshal(map[string]string{"status": "not ready", "reason": events.Clip(why, MaxFeedMessage)})
		_, _ = w.Write(append(b, '\n'))
		return
	}
	fmt.Fprintln(w, `{"status":"ready"}`)
}

// Handler routes every endpoint.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.Handler())
	mux.HandleFunc("GET /healthz", s.health)
	mux.HandleFunc("GET /readyz", s.ready)
	if !s.cfg.Dashboard {
		return mux
	}
	mux.HandleFunc("GET /{$}", s.knownHost(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(indexHTML)
	}))
	mux.HandleFunc("GET /api/status", s.knownHost(s.status))
	mux.HandleFunc("GET /api/stream", s.knownHost(s.stream))
	mux.HandleFunc("POST /api/submit", s.knownHost(sameOrigin(s.submit)))
	mux.HandleFunc("POST /api/control/{verb}", s.knownHost(sameOrigin(s.control)))
	return mux
}

// sameOrigin refuses requests another web site could make the browser
// send: a body that is not declared JSON (a JSON content type forces a CORS
// preflight, which this server never grants) or one the browser marks as
// cross-site.
func sameOrigin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
			writeJSON(w, http.StatusUnsupportedMediaType, events.ControlError{Code: 415, Message: "send the body as Content-Type: application/json"})
			return
		}
		if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
			writeJSON(w, http.StatusForbidden, events.ControlError{Code: 403, Message: "cross-site requests are refused"})
			return
		}
		next(w, r)
	}
}

// authorized asks for HTTP basic authentication when Config.Auth is set;
// the comparison takes the same time whatever is sent.
func (s *Server) authorized(next http.HandlerFunc) http.HandlerFunc {
	if s.cfg.Auth == "" {
		return next
	}
	want := sha256.Sum256([]byte(s.cfg.Auth))
	return func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		got := sha256.Sum256([]byte(user + ":" + pass))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="baton", charset="UTF-8"`)
			writeJSON(w, http.StatusUnauthorized, events.ControlError{Code: 401, Message: "authentication required"})
			return
		}
		next(w, r)
	}
}

// knownHost refuses a request whose Host is a name this server was not
// told about: an IP address (no DNS, so no rebinding), localhost, or one
// of Config.Hosts.
func (s *Server) knownHost(next http.HandlerFunc) http.HandlerFunc {
	next = s.authorized(next)
	return func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.ToLower(host), ".")
		if net.ParseIP(strings.Trim(host, "[]")) != nil || host == "localhost" || slices.Contains(s.cfg.Hosts, host) {
			next(w, r)
			return
		}
		writeJSON(w, http.StatusForbidden, events.ControlError{Code: 403,
			Message: fmt.Sprintf("host %q is not one this dashboard answers to: add it with --http-hosts", events.Short(host))})
	}
}

// Run serves on addr until ctx ends. ready, if not nil, gets the address
// actually listened on.
func (s *Server) Run(ctx context.Context, addr string, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	if ready != nil {
		ready(ln.Addr())
	}
	s.log.Info("serving", "url", "http://"+ln.Addr().String(), "dashboard", s.cfg.Dashboard)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("web: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	<-done
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, err error) {
	var ce *events.ControlError
	var ve *events.ValidationError
	switch {
	case errors.As(err, &ce):
		writeJSON(w, ce.Code, ce)
	case errors.As(err, &ve):
		writeJSON(w, http.StatusBadRequest, events.ControlError{Code: 400, Message: ve.Error()})
	case errors.Is(err, client.ErrNoPlanner):
		writeJSON(w, http.StatusServiceUnavailable, events.ControlError{Code: 503, Message: err.Error()})
	default:
		writeJSON(w, http.StatusBadGateway, events.ControlError{Code: 502, Message: err.Error()})
	}
}

// status answers GET /api/status: ?workflow= for one, else ?status=,
// ?offset= and ?limit= choose which workflows are listed, as in the status
// control request.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	q, err := statusQuery(r.URL.Query())
	if err != nil {
		writeJSON(w, 400, events.ControlError{Code: 400, Message: err.Error()})
		return
	}
	snap, err := s.mon.Snapshot(r.Context(), q)
	switch {
	case errors.Is(err, monitor.ErrUnknownWorkflow):
		writeJSON(w, 404, events.ControlError{Code: 404, Message: err.Error()})
	case errors.Is(err, monitor.ErrBadQuery):
		writeJSON(w, 400, events.ControlError{Code: 400, Message: err.Error()})
	case err != nil:
		writeErr(w, err)
	default:
		writeJSON(w, 200, snap)
	}
}

// statusQuery reads a status query from URL parameters.
func statusQuery(v url.Values) (monitor.Query, error) {
	q := monitor.Query{Workflow: v.Get("workflow"), Status: v.Get("status")}
	if q.Workflow != "" && !events.ValidToken(q.Workflow) {
		return q, fmt.Errorf("%q is not a workflow id", events.Short(q.Workflow))
	}
	for name, to := range map[string]*int{"offset": &q.Offset, "limit": &q.Limit} {
		if p := v.Get(name); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 {
				return q, fmt.Errorf("%s %q: want a number, 0 or more", name, events.Short(p))
			}
			*to = n
		}
	}
	return q, nil
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, events.DefaultMaxJobBytes+1))
	if err != nil {
		writeErr(w, err)
		return
	}
	reply, err := s.cl.Submit(r.Context(), body)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, 200, reply)
}

func (s *Server) control(w http.ResponseWriter, r *http.Request) {
	verb := r.PathValue("verb")
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		writeErr(w, err)
		return
	}
	req, err := events.ParseControl(body)
	if err != nil {
		writeJSON(w, 400, events.ControlError{Code: 400, Message: err.Error()})
		return
	}
	out, err := s.do(r.Context(), verb, req)
	if err != nil {
		writeErr(w, err)
		return
	}
	if l, ok := out.(*client.AgentList); ok { // a bare list, as over NATS, with the page in headers
		w.Header().Set(events.HeaderTotal, strconv.Itoa(l.Page.Total))
		w.Header().Set(events.HeaderOmitted, strconv.Itoa(l.Page.Omitted))
		out = l.Agents
	}
	writeJSON(w, 200, out)
}

// do runs one control verb of the panel through the typed client.
func (s *Server) do(ctx context.Context, verb string, req *events.ControlRequest) (any, error) {
	lane := client.Lane{Type: req.Type, Priority: req.Priority}
	switch verb {
	case events.VerbPause:
		if req.Workflow == "" && req.Type != "" {
			return s.cl.PauseLane(ctx, lane, req.Until.D())
		}
		return s.cl.Pause(ctx, req.Workflow, client.PauseOptions{Now: req.Now})
	case events.VerbResume:
		if req.Workflow == "" && req.Type != "" {
			return s.cl.ResumeLane(ctx, lane)
		}
		return s.cl.Resume(ctx, req.Workflow)
	case events.VerbStop:
		return s.cl.Stop(ctx, req.Workflow)
	case events.VerbRestart:
		return s.cl.Restart(ctx, req.Workflow, client.RestartOptions{RetryFailed: req.RetryFailed})
	case events.VerbCancel:
		return s.cl.Cancel(ctx, client.CancelSelector{Workflow: req.Workflow, Tasks: req.Tasks, All: req.All, Agent: req.Agent,
			Type: req.Type, MinPriority: req.MinPriority, MaxPriority: req.MaxPriority, ReleaseDependents: req.ReleaseDependents})
	case events.VerbReprioritize:
		return s.cl.Reprioritize(ctx, req.Workflow, req.Task, req.To)
	case events.VerbResolve:
		return s.cl.Resolve(ctx, req.Workflow, req.Resolution)
	case events.VerbStatus:
		if req.Workflow != "" {
			return s.cl.Status(ctx, req.Workflow)
		}
		return s.cl.StatusList(ctx, client.ListOptions{Offset: req.Offset, Limit: req.Limit, Status: req.Status})
	case events.VerbAgents:
		return s.cl.AgentList(ctx, client.ListOptions{Offset: req.Offset, Limit: req.Limit, Status: req.Status})
	}
	return nil, &events.ControlError{Code: 404, Message: fmt.Sprintf("unknown verb %q", verb)}
}

// FeedItem is one line of the dashboard's live feed: an event, or a partial
// or final output (without its data). Anyone on the bus may publish what it
// comes from, so each text is clipped (feedItem): a batch stays small.
type FeedItem struct {
	Kind     string    `json:"kind"`
	Workflow string    `json:"workflow"`
	Task     string    `json:"task,omitempty"`
	Agent    string    `json:"agent,omitempty"`
	Message  string    `json:"message,omitempty"`
	Time     time.Time `json:"time"`
}

// feed gathers events and outputs between two sends, at most FeedMax; it
// counts the ones it had to drop.
type feed struct {
	mu      sync.Mutex
	max     int
	batch   []FeedItem
	dropped int
	subs    []*nats.Subscription
}

// subscribeFeed subscribes to every event, stored or live, and output.
func (s *Server) subscribeFeed() (*feed, error) {
	fd := &feed{max: s.cfg.FeedMax}
	subj := s.cfg.Streams.Subjects()
	onEvent := func(m *nats.Msg) {
		var ev events.Event
		if json.Unmarshal(m.Data, &ev) != nil {
			return
		}
		fd.add(feedItem(ev.Kind, ev.Workflow, ev.Task, ev.Agent, ev.Message, ev.Time))
		// A started event may name more tasks, one line each: as many
		// as the batch has room for, the rest counted as dropped.
		if ev.Kind == events.EventStarted && ev.Task != "" {
			for _, task := range ev.Tasks[:min(len(ev.Tasks), events.MaxStartedTasks-1)] {
				fd.add(feedItem(ev.Kind, ev.Workflow, task, ev.Agent, ev.Message, ev.Time))
			}
		}
	}
	for _, filter := range []string{subj.Events(), subj.Lives()} {
		sub, err := s.nc.Subscribe(filter, onEvent)
		if err != nil {
			fd.stop()
			return nil, err
		}
		fd.subs = append(fd.subs, sub)
	}
	outSub, err := s.nc.Subscribe(subj.Outputs(), func(m *nats.Msg) {
		var out events.Output
		if json.Unmarshal(m.Data, &out) == nil {
			msg := fmt.Sprintf("%s: %d/%d done", events.Short(out.Status), out.Progress.Done, out.Progress.Total)
			fd.add(feedItem("output."+out.Kind, out.Workflow, "", "", msg, time.Now().UTC()))
		}
	})
	if err != nil {
		fd.stop()
		return nil, err
	}
	fd.subs = append(fd.subs, outSub)
	return fd, nil
}

// MaxFeedMessage bounds the message of a feed item, in bytes; its other
// texts are ids and kinds, clipped to events.MaxEcho bytes.
const MaxFeedMessage = 512

// feedItem makes a feed item, each text clipped.
func feedItem(kind, workflow, task, agent, message string, at time.Time) FeedItem {
	return FeedItem{Kind: events.Clip(kind, events.MaxEcho), Workflow: events.Clip(workflow, events.MaxEcho),
		Task: events.Clip(task, events.MaxEcho), Agent: events.Clip(agent, events.MaxEcho),
		Message: events.Clip(message, MaxFeedMessage), Time: at}
}

func (fd *feed) add(it FeedItem) {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	if len(fd.batch) >= fd.max {
		fd.dropped++
		return
	}
	fd.batch = append(fd.batch, it)
}

// take returns what was gathered and how much was dropped since the last
// take.
func (fd *feed) take() ([]FeedItem, int) {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	items, lost := fd.batch, fd.dropped
	fd.batch, fd.dropped = nil, 0
	return items, lost
}

func (fd *feed) stop() {
	for _, sub := range fd.subs {
		_ = sub.Unsubscribe()
	}
}

// stream sends server-sent events: "snapshot" every SnapshotEvery and
// "feed" (events and outputs gathered meanwhile, at most FeedMax, with the
// number dropped) every FeedEvery, so the page stays responsive whatever
// the load.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	fd, err := s.subscribeFeed()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer fd.stop()

	send := func(event string, v any) bool {
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return false
		}
		fl.Flush()
		return true
	}
	snapshot := func() bool {
		snap, err := s.mon.Snapshot(r.Context(), monitor.Query{})
		if err != nil {
			return send("problem", events.ControlError{Code: 502, Message: err.Error()})
		}
		return send("snapshot", snap)
	}
	if !snapshot() {
		return
	}
	snapTick := time.NewTicker(s.cfg.SnapshotEvery)
	defer snapTick.Stop()
	feedTick := time.NewTicker(s.cfg.FeedEvery)
	defer feedTick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-snapTick.C:
			if !snapshot() {
				return
			}
		case <-feedTick.C:
			items, lost := fd.take()
			if len(items) == 0 && lost == 0 {
				continue
			}
			if !send("feed", map[string]any{"items": items, "dropped": lost}) {
				return
			}
		}
	}
}
