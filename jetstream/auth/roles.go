// Package auth defines baton's roles as NATS permissions and writes a
// nats-server configuration that enforces them, with one nkey per role.
//
// Why nkeys in a server configuration rather than accounts with JWTs: every
// baton role lives in one account (they share the streams), so the
// operator/account machinery buys nothing here but a resolver to run; nkey
// users keep the secret on the client (the server holds only public keys
// and checks a signature, nothing secret crosses the wire) and the whole
// trust setup is one file a person can read. Deployments that already run
// decentralised JWT auth can copy the same permission lists into their
// user JWTs (`nsc edit user --allow-pub …`).
package auth

import (
	"maps"
	"slices"
	"strings"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
)

// Role is a set of NATS permissions baton's components need, and the
// inbox prefix its connections use: each role reads replies only under its
// own prefix, so no role can read the replies another one receives (task
// messages fetched by agents, key-value reads).
type Role struct {
	Name      string   `json:"name"`
	Inbox     string   `json:"inbox"` // the connection's inbox prefix
	Publish   []string `json:"publish"`
	Subscribe []string `json:"subscribe"`
	// Responses lets the role answer requests on their reply subjects
	// (control services, agents answering the planner).
	Responses bool `json:"allow_responses"`
}

// Standard role names.
const (
	Admin      = "admin"      // creates and changes streams; everything
	Planner    = "planner"    // plans, dispatches, decides; owns the streams
	Aggregator = "aggregator" // reads results, writes outputs
	Submitter  = "submitter"  // submits jobs, follows their outputs
	Viewer     = "viewer"     // status, agents, outputs: reads only
	Operator   = "operator"   // a viewer that may also use every control verb
	AgentRole  = "agent"      // prefix of agent roles: "agent-<name>"
)

// InboxPrefix is the inbox prefix of a role's connections.
func InboxPrefix(role string) string { return "_INBOX_" + role }

type perms struct {
	c          streams.Config
	s          events.Subjects
	pub, sub   []string
	inbox      string
	responding bool
}

func newPerms(c streams.Config, role string) *perms {
	c = c.WithDefaults()
	p := &perms{c: c, s: c.Subjects(), inbox: InboxPrefix(role)}
	p.sub = append(p.sub, p.inbox+".>")
	return p
}

func (p *perms) role(name string) Role {
	return Role{Name: name, Inbox: p.inbox, Publish: unique(p.pub), Subscribe: unique(p.sub), Responses: p.responding}
}

// unique drops repeated subjects, keeping the first of each.
func unique(subjects []string) []string {
	seen := map[string]bool{}
	return slices.DeleteFunc(subjects, func(s string) bool {
		dup := seen[s]
		seen[s] = true
		return dup
	})
}

// info lets the role look streams up (and wait for them).
func (p *perms) info(stream ...string) {
	for _, s := range stream {
		p.pub = append(p.pub, "$JS.API.STREAM.INFO."+s)
	}
}

// read lets the role read a stream with consumers of its own (ordered
// consumers, key-value lists and watches) and direct gets; it cannot ack,
// so it takes nothing from anyone.
func (p *perms) read(stream ...string) {
	for _, s := range stream {
		p.info(s)
		p.pub = append(p.pub,
			"$JS.API.CONSUMER.CREATE."+s+".>", "$JS.API.CONSUMER.DELETE."+s+".>",
			"$JS.API.CONSUMER.INFO."+s+".>", "$JS.API.CONSUMER.MSG.NEXT."+s+".>",
			"$JS.API.DIRECT.GET."+s, "$JS.API.DIRECT.GET."+s+".>", "$JS.API.STREAM.MSG.GET."+s,
		)
	}
	p.pub = append(p.pub, "$JS.FC.>") // flow control of push consumers (watches)
}

// get lets the role look single entries of a stream up (key-value Get, and
// the look-up Create does on a deleted key), without consumers.
func (p *perms) get(stream ...string) {
	for _, s := range stream {
		p.info(s)
		p.pub = append(p.pub, "$JS.API.DIRECT.GET."+s, "$JS.API.DIRECT.GET."+s+".>", "$JS.API.STREAM.MSG.GET."+s)
	}
}

// bucket lets the role read a bucket; write lets it put and delete.
func (p *perms) bucket(name string, write bool) {
	p.read(streams.BucketStream(name))
	if write {
		p.pub = append(p.pub, "$KV."+name+".>")
	}
}

// RolePlanner is the planner's role (and the monitor's it runs). It owns
// the streams, so it may create and change them.
func RolePlanner(c streams.Config) Role {
	p := newPerms(c, Planner)
	p.pub = append(p.pub, p.s.Root()+".>", "$JS.API.>", "$JS.ACK.>", "$JS.FC.>", "$KV.>",
		// replies to submitted jobs (Baton-Reply-To): a planner replica
		// that takes a submit request (the control service, the dashboard)
		// stores the job with its own inbox, which the leader answers
		"_INBOX.>", InboxPrefix(Submitter)+".>", InboxPrefix(Operator)+".>", InboxPrefix(Planner)+".>",
		// its readiness check asks the planner services (named "baton")
		// for their endpoints: is one taking this deployment's requests?
		"$SRV.INFO.baton")
	p.sub = append(p.sub, p.s.Root()+".>", "$SRV.>")
	p.responding = true
	return p.role(Planner)
}

// RoleAggregator reads results, workflow records and the lease key, and
// writes outputs and events.
func RoleAggregator(c streams.Config) Role {
	p := newPerms(c, Aggregator)
	p.read(p.c.ResultsStream(), p.c.OutputsStream())
	p.bucket(p.c.WorkflowsBucket(), false)
	p.bucket(p.c.KeysBucket(), false)
	p.bucket(p.c.LeasesBucket(), false)
	p.pub = append(p.pub, p.s.Outputs(), p.s.Events(), "$KV."+p.c.LeasesBucket()+".aggregator")
	return p.role(Aggregator)
}

// RoleAgent is the role of agents named name serving types: it consumes
// its types' lanes only (and creates them), hands tasks back to them,
// publishes results, dead letters and events, keeps its registry entry,
// and answers the planner. It reads no workflow record, no other lane and
// no key, and changes no stream. An entry of types written "+CAP" is a
// capability, not a type: the role may also consume the capability lanes
// of every subset of those capabilities (at most events.MaxCapabilities
// are used), as an agent started with them does.
func RoleAgent(c streams.Config, name string, types []string) Role {
	role := AgentRole + "-" + name
	p := newPerms(c, role)
	tasks := p.c.TasksStream()
	p.info(tasks, p.c.ResultsStream(), p.c.DeadStream())
	var caps []string
	types = slices.DeleteFunc(slices.Clone(types), func(t string) bool {
		if c, ok := strings.CutPrefix(t, "+"); ok {
			caps = append(caps, c)
			return true
		}
		return false
	})
	caps = caps[:min(len(caps), events.MaxCapabilities)]
	for _, t := range types {
		for _, prio := range events.Priorities {
			for _, set := range events.Subsets(caps) {
				lane := streams.LaneConsumerOn(t, events.LaneToken(prio, set))
				p.pub = append(p.pub,
					"$JS.API.CONSUMER.CREATE."+tasks+"."+lane+".>", "$JS.API.CONSUMER.INFO."+tasks+"."+lane,
					streams.PullSubject(tasks, lane), "$JS.ACK."+tasks+"."+lane+".>")
			}
		}
		p.sub = append(p.sub, p.s.WakeAll(t))
		p.pub = append(p.pub, p.s.Root()+".tasks."+t+".>") // hand-backs
	}
	p.bucket(p.c.AgentsBucket(), true)
	// Permits and rates (package permit): any concurrency key (a task's key
	// comes from its input), the caps and rates of its own types only; the
	// per-type caps it watches but cannot set.
	permits, rates := p.c.PermitsBucket(), p.c.RatesBucket()
	p.get(streams.BucketStream(permits), streams.BucketStream(rates))
	p.bucket(p.c.LimitsBucket(), false)
	p.pub = append(p.pub, "$KV."+permits+".k.>", "$KV."+rates+".k.>")
	for _, t := range types {
		p.pub = append(p.pub, "$KV."+permits+".t."+t+".>", "$KV."+rates+".t."+t)
	}
	p.pub = append(p.pub, p.s.Results(), p.s.DeadLetters(), p.s.Events(), p.s.Lives())
	p.sub = append(p.sub, p.s.AgentControl(), p.s.AgentInfo("*"), p.s.AgentCrash("*"), "$SRV.>")
	p.responding = true
	return p.role(role)
}

// RoleSubmitter submits jobs (on JOBS or through the control service) and
// follows outputs and workflow records.
func RoleSubmitter(c streams.Config) Role {
	p := newPerms(c, Submitter)
	p.pub = append(p.pub, p.s.Submit(), p.s.Control("submit"), p.s.Control("status"), p.s.Control("agents"))
	p.read(p.c.OutputsStream(), p.c.JobsStream())
	// A final output as it is published (client.Follow of the final
	// alone): nothing OUTPUTS would not give it anyway.
	p.sub = append(p.sub, p.s.Outputs())
	p.bucket(p.c.WorkflowsBucket(), false)
	return p.role(Submitter)
}

// RoleViewer reads status, agents, outputs, events and workflow records,
// and changes nothing.
func RoleViewer(c streams.Config) Role {
	p := newPerms(c, Viewer)
	p.viewer()
	return p.role(Viewer)
}

func (p *perms) viewer() {
	p.pub = append(p.pub, p.s.Control("status"), p.s.Control("agents"), "$SRV.>")
	p.read(p.c.OutputsStream(), p.c.EventsStream())
	p.sub = append(p.sub, p.s.Lives(), p.s.Outputs())
	p.bucket(p.c.WorkflowsBucket(), false)
	p.bucket(p.c.AgentsBucket(), false)
	p.bucket(p.c.LimitsBucket(), false) // baton limit get, ls
}

// RoleOperator is a viewer that may also use every control verb (pause,
// cancel, …), submit, and set per-type caps (baton limit).
func RoleOperator(c streams.Config) Role {
	p := newPerms(c, Operator)
	p.viewer()
	p.pub = append(p.pub, p.s.Control("*"), p.s.Submit())
	p.bucket(p.c.LimitsBucket(), true) // baton limit set, clear
	return p.role(Operator)
}

// RoleAdmin may do anything: it sets up and changes streams and buckets
// (a planner started with it, or any nats CLI user), and `baton up` runs its
// services with it.
func RoleAdmin() Role {
	return Role{Name: Admin, Inbox: "_INBOX", Publish: []string{">"}, Subscribe: []string{">"}, Responses: true}
}

// Standard returns the standard roles, plus one agent role per entry of
// agents (name → types, and "+CAP" capabilities: RoleAgent).
func Standard(c streams.Config, agents map[string][]string) []Role {
	roles := []Role{RoleAdmin(), RolePlanner(c), RoleAggregator(c), RoleSubmitter(c), RoleViewer(c), RoleOperator(c)}
	for _, name := range slices.Sorted(maps.Keys(agents)) {
		roles = append(roles, RoleAgent(c, name, agents[name]))
	}
	return roles
}
