package tests

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	"github.com/baton-dev/baton/internal/service"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/jetstream/auth"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/aggregator"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/monitor"
	"github.com/baton-dev/baton/pkg/permit"
	"github.com/baton-dev/baton/pkg/planner"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// roleEnv is a server that enforces the generated roles, with a way to
// connect as each.
type roleEnv struct {
	t   *testing.T
	srv *natstest.Server
	dir string
	cfg streams.Config
}

// conn connects as role, recording the permission violations the server
// reports on the connection.
func (r *roleEnv) conn(role string, violations *permErrs) *nats.Conn {
	r.t.Helper()
	var inbox string
	for _, ro := range auth.Standard(r.cfg, testAgents) {
		if ro.Name == role {
			inbox = ro.Inbox
		}
	}
	seed, err := nats.NkeyOptionFromSeed(filepath.Join(r.dir, auth.SeedFile(role)))
	if err != nil {
		r.t.Fatal(err)
	}
	opts := []nats.Option{seed, nats.CustomInboxPrefix(inbox), nats.Name(role)}
	if violations != nil {
		opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations.add(err) }))
	}
	nc, _ := natstest.Connect(r.t, r.srv, opts...)
	return nc
}

type permErrs struct {
	mu      sync.Mutex
	all     []error
	refused func() // called on a permissions violation, if set
}

func (p *permErrs) add(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.all = append(p.all, err)
	if isViolation(err) && p.refused != nil {
		p.refused()
	}
}

func (p *permErrs) first() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, err := range p.all {
		if isViolation(err) {
			return err
		}
	}
	return nil
}

func isViolation(err error) bool {
	return errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(strings.ToLower(err.Error()), "permissions violation")
}

var testAgents = map[string][]string{"research": {"research"}, "write": {"write"}, "gpu": {"research", "+gpu"}}

// try runs op as role on a fresh connection and reports the server's
// permission violation, if it refused anything op did.
func (r *roleEnv) try(role string, op func(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error) error {
	r.t.Helper()
	// A refused request gets no reply: the server's violation ends the
	// wait. An allowed one has all the time a loaded machine needs.
	ctx, cancel := context.WithTimeout(r.t.Context(), 15*time.Second)
	defer cancel()
	pe := permErrs{refused: cancel}
	nc := r.conn(role, &pe)
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		r.t.Fatal(err)
	}
	opErr := op(ctx, nc, js)
	_ = nc.Flush() // the server's -ERR comes before the flush's PONG
	if err := pe.first(); err != nil {
		return err
	}
	if err := nc.LastError(); err != nil && errors.Is(err, nats.ErrPermissionViolation) {
		return err
	}
	if opErr != nil {
		return fmt.Errorf("not a permission error: %w", opErr)
	}
	return nil
}

// TestRoles_LeastPrivilege runs baton on a server that enforces the
// generated roles: every service with its own role does all its work, and
// each operation a role must not do is refused by the server with a
// permissions violation. It prints the permission matrix it tested.
func TestRoles_LeastPrivilege(t *testing.T) {
	t.Parallel()
	cfg := streams.Config{Memory: true}.WithDefaults()
	dir := t.TempDir()
	if _, err := auth.Write(dir, auth.Standard(cfg, testAgents)); err != nil {
		t.Fatal(err)
	}
	r := &roleEnv{t: t, srv: natstest.StartWithAuthFile(t, filepath.Join(dir, auth.ConfFile)), dir: dir, cfg: cfg}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))

	var wg sync.WaitGroup
	ctx, stop := context.WithCancel(t.Context())
	defer wg.Wait()
	defer stop()
	runService := func(name string, fn func(context.Context) error) {
		wg.Go(func() {
			if err := fn(ctx); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	var violations permErrs
	plannerNC := r.conn(auth.Planner, &violations)
	runService("planner", func(ctx context.Context) error {
		return service.RunPlanner(ctx, plannerNC, planner.Config{Streams: cfg, Logger: log})
	})
	plNC := r.conn(auth.Planner, &violations)
	mon, err := monitor.New(plNC, monitor.Config{Streams: cfg, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	runService("monitor", mon.Run)
	runService("status", func(ctx context.Context) error { return mon.Serve(ctx, "0.0.0") })
	ag, err := aggregator.New(r.conn(auth.Aggregator, &violations), aggregator.Config{Streams: cfg, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	runService("aggregator", ag.Run)
	for name, types := range testAgents {
		var caps []string
		types = slices.DeleteFunc(slices.Clone(types), func(t string) bool {
			c, ok := strings.CutPrefix(t, "+")
			if ok {
				caps = append(caps, c)
			}
			return ok
		})
		a, err := agent.New(r.conn(auth.AgentRole+"-"+name, &violations), agent.Config{ID: name + "-1", Concurrency: 4, Streams: cfg, Logger: log, Capabilities: caps})
		if err != nil {
			t.Fatal(err)
		}
		for _, typ := range types {
			a.Handle(typ, agent.HandlerFunc(func(ctx context.Context, t *agent.Task) (any, error) { return typ + ":" + t.ID, nil }))
		}
		runService("agent "+name, a.Run)
	}

	// The submitter submits and follows; every service did its work with
	// its own role only.
	cl, err := client.New(r.conn(auth.Submitter, &violations), cfg)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	// A per-type cap, set by the operator, and a concurrency key and a
	// rate on the job: the agents take their permits with their own roles.
	opJS, err := jetstream.New(r.conn(auth.Operator, &violations))
	if err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, 20*time.Second, "the operator to cap the write type", func() bool {
		return permit.SetTypeLimit(sctx, opJS, cfg, "write", 1) == nil
	})
	reply, err := cl.Submit(sctx, []byte(`{"steps":[{"id":"r","type":"research","split":1,"input":["a","b","c"],
		"concurrency":{"key":"r-{input.0}","limit":1},"rate":"100/s"},{"id":"g","type":"research","requires":["gpu"]},{"id":"w","type":"write","after":["r","g"]}]}`))
	if err != nil {
		t.Fatalf("submit as submitter: %v (violations: %v)", err, violations.all)
	}
	out, err := cl.Follow(sctx, reply.Workflow, nil)
	if err != nil {
		t.Fatalf("follow as submitter: %v", err)
	}
	if out.Status != events.OutcomeSuccess {
		t.Fatalf("output %s: %s", out.Status, out.Data)
	}
	if err := violations.first(); err != nil {
		t.Fatalf("a service needed a permission its role lacks: %v", err)
	}
	wf := reply.Workflow
	s := cfg.Subjects()

	publish := func(subject string) func(context.Context, *nats.Conn, jetstream.JetStream) error {
		return func(_ context.Context, nc *nats.Conn, _ jetstream.JetStream) error {
			return nc.Publish(subject, []byte("x"))
		}
	}
	subscribe := func(subject string) func(context.Context, *nats.Conn, jetstream.JetStream) error {
		return func(_ context.Context, nc *nats.Conn, _ jetstream.JetStream) error {
			_, err := nc.SubscribeSync(subject)
			return err
		}
	}
	request := func(subject, body string) func(context.Context, *nats.Conn, jetstream.JetStream) error {
		return func(ctx context.Context, nc *nats.Conn, _ jetstream.JetStream) error {
			_, err := nc.RequestWithContext(ctx, subject, []byte(body))
			return err
		}
	}
	fetchLane := func(typ string) func(context.Context, *nats.Conn, jetstream.JetStream) error {
		return func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
			_, err := js.Consumer(ctx, cfg.TasksStream(), streams.LaneConsumer(typ, events.PriorityDefault))
			return err
		}
	}
	fetchCapLane := func(typ, capability string) func(context.Context, *nats.Conn, jetstream.JetStream) error {
		return func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
			_, err := js.Consumer(ctx, cfg.TasksStream(), streams.LaneConsumerOn(typ, events.LaneToken(events.PriorityDefault, []string{capability})))
			return err
		}
	}
	readBucket := func(bucket string) func(context.Context, *nats.Conn, jetstream.JetStream) error {
		return func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
			kv, err := js.KeyValue(ctx, bucket)
			if err != nil {
				return err
			}
			_, err = kv.Get(ctx, wf)
			return err
		}
	}
	kvPut := func(bucket, key string) func(context.Context, *nats.Conn, jetstream.JetStream) error {
		return func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
			kv, err := js.KeyValue(ctx, bucket)
			if err != nil {
				return err
			}
			_, err = kv.Create(ctx, key, []byte("1"))
			return err
		}
	}
	setLimit := func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
		return permit.SetTypeLimit(ctx, js, cfg, "research", 2)
	}
	listLimits := func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
		_, err := permit.TypeLimits(ctx, js, cfg)
		return err
	}
	editStream := func(ctx context.Context, _ *nats.Conn, js jetstream.JetStream) error {
		_, err := js.UpdateStream(ctx, jetstream.StreamConfig{Name: cfg.DeadStream(), Subjects: []string{s.DeadLetters()}, MaxMsgs: 5})
		return err
	}
	plannerReady := func(ctx context.Context, nc *nats.Conn, _ jetstream.JetStream) error {
		return service.PlannerReady(nc, cfg)(ctx)
	}
	agentR := auth.AgentRole + "-research"
	cases := []struct {
		role, op string
		do       func(context.Context, *nats.Conn, jetstream.JetStream) error
		allowed  bool
	}{
		{auth.Planner, "answer a job another planner replica stored (its Baton-Reply-To is a planner inbox)", publish(auth.InboxPrefix(auth.Planner) + ".reply"), true},
		{auth.Planner, "ask whether a planner takes requests (its /readyz)", plannerReady, true},
		{agentR, "fetch its own lane", fetchLane("research"), true},
		{agentR, "fetch another type's lane", fetchLane("write"), false},
		{agentR, "fetch a capability lane of its type", fetchCapLane("research", "gpu"), false},
		{auth.AgentRole + "-gpu", "fetch its capability lane", fetchCapLane("research", "gpu"), true},
		{auth.AgentRole + "-gpu", "fetch another capability lane", fetchCapLane("research", "tpu"), false},
		{agentR, "publish a task of another type", publish(s.Task("write", 3, wf, "w")), false},
		{agentR, "publish a result", publish(s.Result(wf, "r-0")), true},
		{agentR, "read the workflows bucket", readBucket(cfg.WorkflowsBucket()), false},
		{agentR, "read the lease key", readBucket(cfg.KeysBucket()), false},
		{agentR, "edit a stream", editStream, false},
		{agentR, "send agents a control command", publish(s.AgentControl()), false},
		{agentR, "pause a workflow", request(s.Control("pause"), `{"workflow":"`+wf+`"}`), false},
		{agentR, "read other roles' replies", subscribe("_INBOX.>"), false},
		{agentR, "read tasks off the bus", subscribe(s.Tasks()), false},
		{agentR, "crash an agent", request(s.Control("crash"), `{"agent":"write-1"}`), false},
		{agentR, "send an agent a crash drill", publish(s.AgentCrash("write-1")), false},
		{agentR, "take a permit of any key", kvPut(cfg.PermitsBucket(), "k.any-key.0"), true},
		{agentR, "take a permit of its type's cap", kvPut(cfg.PermitsBucket(), "t.research.5"), true},
		{agentR, "take a permit of another type's cap", publish("$KV." + cfg.PermitsBucket() + ".t.write.0"), false},
		{agentR, "move another type's rate", publish("$KV." + cfg.RatesBucket() + ".t.write"), false},
		{agentR, "set a per-type cap", publish("$KV." + cfg.LimitsBucket() + ".type.research"), false},
		{agentR, "list the per-type caps", listLimits, true},
		{auth.Submitter, "status", request(s.Control("status"), `{}`), true},
		{auth.Submitter, "publish a task", publish(s.Task("research", 3, wf, "r-0")), false},
		{auth.Submitter, "publish a result", publish(s.Result(wf, "r-0")), false},
		{auth.Submitter, "pause a workflow", request(s.Control("pause"), `{"workflow":"`+wf+`"}`), false},
		{auth.Submitter, "edit a stream", editStream, false},
		{auth.Submitter, "crash an agent", request(s.Control("crash"), `{"agent":"write-1"}`), false},
		{auth.Submitter, "set a per-type cap", setLimit, false},
		{auth.Viewer, "status", request(s.Control("status"), `{}`), true},
		{auth.Viewer, "agents", request(s.Control("agents"), `{}`), true},
		{auth.Viewer, "read a workflow record", readBucket(cfg.WorkflowsBucket()), true},
		{auth.Viewer, "submit a job", publish(s.Submit()), false},
		{auth.Viewer, "pause a workflow", request(s.Control("pause"), `{"workflow":"`+wf+`"}`), false},
		{auth.Viewer, "cancel a task", request(s.Control("cancel"), `{"workflow":"`+wf+`","tasks":["w"]}`), false},
		{auth.Viewer, "publish an output", publish(s.Output(wf, "final")), false},
		{auth.Viewer, "write a workflow record", publish("$KV." + cfg.WorkflowsBucket() + "." + wf), false},
		{auth.Viewer, "read the lease key", readBucket(cfg.KeysBucket()), false},
		{auth.Viewer, "crash an agent", request(s.Control("crash"), `{"agent":"write-1"}`), false},
		{auth.Viewer, "send an agent a crash drill", publish(s.AgentCrash("write-1")), false},
		{auth.Viewer, "list the per-type caps", listLimits, true},
		{auth.Viewer, "set a per-type cap", setLimit, false},
		{auth.Viewer, "take a permit", publish("$KV." + cfg.PermitsBucket() + ".k.db.0"), false},
		{auth.Operator, "restart a workflow", request(s.Control("restart"), `{"workflow":"`+wf+`"}`), true},
		{auth.Operator, "set a per-type cap", setLimit, true},
		{auth.Operator, "take a permit", publish("$KV." + cfg.PermitsBucket() + ".k.db.0"), false},
		{auth.Operator, "resolve an escalation", request(s.Control("resolve"), `{"workflow":"`+wf+`","resolution":"accept"}`), true},
		{auth.Viewer, "resolve an escalation", request(s.Control("resolve"), `{"workflow":"`+wf+`","resolution":"accept"}`), false},
		{auth.Submitter, "resolve an escalation", request(s.Control("resolve"), `{"workflow":"`+wf+`","resolution":"fail"}`), false},
		{agentR, "resolve an escalation", request(s.Control("resolve"), `{"workflow":"`+wf+`","resolution":"fail"}`), false},
		{auth.Operator, "publish a task", publish(s.Task("research", 3, wf, "r-0")), false},
		{auth.Operator, "edit a stream", editStream, false},
		{auth.Operator, "crash an agent (a drill)", request(s.Control("crash"), `{"agent":"write-1"}`), true},
		{auth.Operator, "send an agent a crash drill itself", publish(s.AgentCrash("research-1")), false},
		{auth.Aggregator, "send an agent a crash drill", publish(s.AgentCrash("research-1")), false},
		{auth.Aggregator, "publish a task", publish(s.Task("research", 3, wf, "r-0")), false},
		{auth.Aggregator, "publish a result", publish(s.Result(wf, "r-0")), false},
		{auth.Aggregator, "edit a stream", editStream, false},
	}
	// Each case on a connection of its own, all at once.
	matrix := make([]string, len(cases))
	var tries sync.WaitGroup
	for i, c := range cases {
		tries.Go(func() {
			err := r.try(c.role, c.do)
			refused := err != nil && !strings.HasPrefix(err.Error(), "not a permission error")
			switch {
			case c.allowed && err != nil:
				t.Errorf("%s: %s: refused: %v", c.role, c.op, err)
			case !c.allowed && !refused:
				t.Errorf("%s: %s: allowed (%v), want a permissions violation", c.role, c.op, err)
			}
			verdict := "allowed"
			if refused {
				verdict = "refused"
			}
			matrix[i] = fmt.Sprintf("%-16s %-34s %s", c.role, c.op, verdict)
		})
	}
	tries.Wait()
	slices.Sort(matrix)
	t.Logf("permission matrix:\n%s", strings.Join(matrix, "\n"))

	// No credentials: no connection at all.
	if nc, err := nats.Connect(r.srv.ClientURL()); err == nil {
		nc.Close()
		t.Fatal("connected without credentials")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("connect without credentials: %v", err)
	}
}
