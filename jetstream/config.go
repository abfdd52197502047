package streams

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go/jetstream"
)

// Config shapes the streams. The zero value is the documented default: prefix
// "baton", one replica, file storage. Every service of a deployment must use
// the same Config (Ensure updates what differs, last writer wins).
type Config struct {
	Prefix   string // subject prefix; default "baton"
	Replicas int    // stream replicas; default 1, use 3 on a cluster
	Memory   bool   // memory storage instead of file (tests, benchmarks)
	// AckWait is how long an agent may hold a task without a sign of life
	// before JetStream hands it to another agent; default 30s. Agents send
	// progress at a third of it while a task runs.
	AckWait time.Duration
	// MaxAckPending bounds the tasks in flight per lane; default 20,000.
	MaxAckPending int
	// DuplicateWindow is how long Nats-Msg-Id de-duplicates; default 2m.
	// The server keeps every message id for this long: its memory for
	// them is about the messages stored per second × the window × 100
	// bytes (two messages per task), so a long window costs gigabytes at
	// a sustained ten thousand tasks a second. Two minutes cover a lost
	// acknowledgement's republish, a failover's re-queue and a result
	// re-run after the ack wait (30 s).
	DuplicateWindow time.Duration
	// MaxAge is how long results, outputs and events are kept; default 7 days.
	MaxAge time.Duration
	// AgentTTL is how long an agent's registry entry outlives its last
	// heartbeat; default 10s.
	AgentTTL time.Duration
	// LeaseTTL is how long a planner or aggregator that stopped renewing
	// its lead keeps it (package lead); default 3s: a dead leader's standby
	// takes over within LeaseTTL + LeaseTTL/8.
	LeaseTTL time.Duration
	// PermitTTL is how long a concurrency permit outlives its holder's
	// last renewal (package permit): a permit held by an agent that died
	// comes back within it. Holders renew at a quarter of it. Default 10s.
	PermitTTL time.Duration
	// MaxBytes scales every stream's size bound (see Bounds); default
	// DefaultMaxBytes, 8 GiB in all for file storage, an eighth of that
	// for memory storage.
	MaxBytes int64
}

// Defaults.
const (
	DefaultAckWait         = 30 * time.Second
	DefaultMaxAckPending   = 20_000
	DefaultDuplicateWindow = 2 * time.Minute
	DefaultMaxAge          = 7 * 24 * time.Hour
	DefaultAgentTTL        = 10 * time.Second
	DefaultMaxBytes        = 8 << 30
	DefaultLeaseTTL        = 3 * time.Second
	DefaultPermitTTL       = 10 * time.Second
	// RatesTTL is how long a rate's state outlives its last use: at most
	// events.MaxRateRefill, after which an idle rate is full again anyway.
	RatesTTL = events.MaxRateRefill
	// SyncBucketBytes bounds each of the permits, rates and limits buckets,
	// and SyncValueBytes each of their values: anyone who may write them
	// can fill them only so far, and permits and rates age out.
	SyncBucketBytes = 64 << 20
	SyncValueBytes  = 512
)

// Bound is a stream's size bound: its share of Config.MaxBytes, and what
// happens when it is full. DiscardNew refuses the publisher ("maximum
// bytes exceeded"), so nothing stored is lost: work (jobs, tasks, results)
// is never dropped to make room. DiscardOld drops the oldest messages: the
// audit trail, outputs and dead letters keep the newest.
type Bound struct {
	Share   int64 // sixteenths of MaxBytes
	Discard jetstream.DiscardPolicy
}

// Bounds are the size bounds by stream base name; they add up to 16/16.
var Bounds = map[string]Bound{
	"JOBS":    {1, jetstream.DiscardNew},
	"TASKS":   {3, jetstream.DiscardNew},
	"RESULTS": {6, jetstream.DiscardNew},
	"OUTPUTS": {3, jetstream.DiscardOld},
	"EVENTS":  {2, jetstream.DiscardOld},
	"DEAD":    {1, jetstream.DiscardOld},
}

// bound returns the byte bound and discard policy of a stream.
func (c Config) bound(base string) (int64, jetstream.DiscardPolicy) {
	b := Bounds[base]
	total := c.MaxBytes
	if c.Memory && total == DefaultMaxBytes {
		total /= 8
	}
	return total / 16 * b.Share, b.Discard
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = events.DefaultPrefix
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = DefaultMaxAckPending
	}
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.AgentTTL <= 0 {
		c.AgentTTL = DefaultAgentTTL
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.PermitTTL <= 0 {
		c.PermitTTL = DefaultPermitTTL
	}
	return c
}

// ErrConfig is wrapped by every Validate error.
var ErrConfig = errors.New("invalid stream config")

// Validate reports a config that cannot work.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if !events.ValidToken(c.Prefix) {
		return fmt.Errorf("%w: prefix %q must be one subject token", ErrConfig, c.Prefix)
	}
	if c.AckWait < 300*time.Millisecond {
		return fmt.Errorf("%w: ack wait %v is below 300ms", ErrConfig, c.AckWait)
	}
	if c.PermitTTL < time.Second {
		return fmt.Errorf("%w: permit TTL %v is below 1s", ErrConfig, c.PermitTTL)
	}
	return nil
}

// Subjects returns the subject builder for this config's prefix.
func (c Config) Subjects() events.Subjects { return events.Subjects{Prefix: c.WithDefaults().Prefix} }

// name prefixes stream and bucket names when the subject prefix is not the
// default, so that two deployments can share a server.
func (c Config) name(base string) string {
	p := c.WithDefaults().Prefix
	if p == events.DefaultPrefix {
		return base
	}
	return strings.ToUpper(p) + "_" + base
}

// Stream names.
func (c Config) JobsStream() string    { return c.name("JOBS") }
func (c Config) TasksStream() string   { return c.name("TASKS") }
func (c Config) ResultsStream() string { return c.name("RESULTS") }
func (c Config) OutputsStream() string { return c.name("OUTPUTS") }
func (c Config) EventsStream() string  { return c.name("EVENTS") }
func (c Config) DeadStream() string    { return c.name("DEAD") }

// Bucket names.
func (c Config) AgentsBucket() string    { return strings.ToLower(c.name("agents")) }
func (c Config) WorkflowsBucket() string { return strings.ToLower(c.name("workflows")) }
func (c Config) KeysBucket() string      { return strings.ToLower(c.name("keys")) }
func (c Config) LeasesBucket() string    { return strings.ToLower(c.name("leases")) }
func (c Config) PermitsBucket() string   { return strings.ToLower(c.name("permits")) }
func (c Config) RatesBucket() string     { return strings.ToLower(c.name("rates")) }
func (c Config) LimitsBucket() string    { return strings.ToLower(c.name("limits")) }

// PlannerConsumer is the durable consumer of JOBS shared by planners.
const PlannerConsumer = "planner"

// LaneConsumer names the durable pull consumer of one lane, shared by every
// agent serving that type.
func LaneConsumer(taskType string, priority int) string {
	return fmt.Sprintf("lane_%s_%d", taskType, priority)
}

// PullSubject is the JetStream API subject a pull from consumer of stream
// is requested on (an agent's standby sends its own; its role may publish
// there).
func PullSubject(stream, consumer string) string {
	return "$JS.API.CONSUMER.MSG.NEXT." + stream + "." + consumer
}

// LaneConsumerOn names the consumer of the lane whose priority token is
// laneTok (events.LaneToken): "lane_research_1-c0123456789ab" for a
// capability lane.
func LaneConsumerOn(taskType, laneTok string) string {
	return "lane_" + taskType + "_" + laneTok
}

// ParseLaneConsumer reads a plain lane consumer's name back into its type
// and priority; ok is false for any other consumer, capability lanes
// included (ParseLane reads those).
func ParseLaneConsumer(name string) (taskType string, priority int, ok bool) {
	rest, found := strings.CutPrefix(name, "lane_")
	i := strings.LastIndexByte(rest, '_')
	if !found || i <= 0 {
		return "", 0, false
	}
	prio, err := strconv.Atoi(rest[i+1:])
	if err != nil {
		return "", 0, false
	}
	return rest[:i], prio, true
}

// ParseLane reads any lane consumer's name: its type, priority and
// capability key ("" for a plain lane).
func ParseLane(name string) (taskType string, priority int, capKey string, ok bool) {
	rest, found := strings.CutPrefix(name, "lane_")
	i := strings.LastIndexByte(rest, '_')
	if !found || i <= 0 || !events.ValidToken(rest[:i]) {
		return "", 0, "", false
	}
	prio, key, ok := events.ParseLaneToken(rest[i+1:])
	if !ok {
		return "", 0, "", false
	}
	return rest[:i], prio, key, true
}

func (c Config) storage() jetstream.StorageType {
	if c.Memory {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// Streams returns every stream definition.
func (c Config) Streams() []jetstream.StreamConfig {
	c = c.WithDefaults()
	s := c.Subjects()
	base := func(b, subject, desc string) jetstream.StreamConfig {
		maxBytes, discard := c.bound(b)
		return jetstream.StreamConfig{
			Name: c.name(b), Description: desc, Subjects: []string{subject},
			Storage: c.storage(), Replicas: c.Replicas, Duplicates: c.DuplicateWindow,
			MaxAge: c.MaxAge, AllowDirect: true, MaxBytes: maxBytes, Discard: discard,
		}
	}
	jobs := base("JOBS", s.Jobs(), "jobs waiting for the planner")
	jobs.Retention, jobs.MaxAge, jobs.AllowDirect = jetstream.WorkQueuePolicy, 0, false
	tasks := base("TASKS", s.Tasks(), "tasks waiting for agents, one subject per type and priority")
	tasks.Retention, tasks.MaxAge, tasks.AllowDirect = jetstream.WorkQueuePolicy, 0, false
	results := base("RESULTS", s.Results(), "the outcome of every task")
	outputs := base("OUTPUTS", s.Outputs(), "partial and final workflow outputs")
	evs := base("EVENTS", s.Events(), "workflow events: the audit trail")
	dead := base("DEAD", s.DeadLetters(), "tasks that failed for good, kept for inspection")
	return []jetstream.StreamConfig{jobs, tasks, results, outputs, evs, dead}
}

// Buckets returns the key-value bucket definitions.
func (c Config) Buckets() []jetstream.KeyValueConfig {
	c = c.WithDefaults()
	st := c.storage()
	return []jetstream.KeyValueConfig{
		{Bucket: c.WorkflowsBucket(), Description: "workflow records and job specs", Storage: st, Replicas: c.Replicas, History: 1},
		{Bucket: c.AgentsBucket(), Description: "live agents; an entry expires when its heartbeats stop", Storage: st, Replicas: c.Replicas, History: 1, TTL: c.AgentTTL},
		{Bucket: c.LeasesBucket(), Description: "which planner and which aggregator lead; an entry expires when its leader stops renewing it", Storage: st, Replicas: c.Replicas, History: 1, TTL: c.LeaseTTL},
		{Bucket: c.KeysBucket(), Description: "the lease key that signs tasks; readable by planners and aggregators only", Storage: st, Replicas: c.Replicas, History: 1},
		{Bucket: c.PermitsBucket(), Description: "concurrency permits, one key per slot; an entry expires when its holder stops renewing it",
			Storage: st, Replicas: c.Replicas, History: 1, TTL: c.PermitTTL, MaxBytes: SyncBucketBytes, MaxValueSize: SyncValueBytes},
		{Bucket: c.RatesBucket(), Description: "token buckets of rate limits; an idle one expires once it would be full again",
			Storage: st, Replicas: c.Replicas, History: 1, TTL: RatesTTL, MaxBytes: SyncBucketBytes, MaxValueSize: SyncValueBytes},
		{Bucket: c.LimitsBucket(), Description: "per-type concurrency caps set at run time (baton limit)",
			Storage: st, Replicas: c.Replicas, History: 1, MaxBytes: SyncBucketBytes, MaxValueSize: SyncValueBytes},
	}
}

// Lane returns the consumer definition of one lane.
func (c Config) Lane(taskType string, priority int) jetstream.ConsumerConfig {
	return c.LaneFor(taskType, priority, nil)
}

// RequiresMetadata is the key of a capability lane consumer's metadata
// that lists its capabilities, comma separated.
const RequiresMetadata = "baton_requires"

// LaneFor returns the consumer definition of the lane of taskType at
// priority whose tasks require caps (none: the plain lane).
func (c Config) LaneFor(taskType string, priority int, caps []string) jetstream.ConsumerConfig {
	c = c.WithDefaults()
	tok := events.LaneToken(priority, caps)
	desc := fmt.Sprintf("%s tasks at priority %d", taskType, priority)
	var meta map[string]string
	if len(caps) > 0 {
		sorted := slices.Sorted(slices.Values(caps))
		desc += " requiring " + strings.Join(sorted, ", ")
		meta = map[string]string{RequiresMetadata: strings.Join(sorted, ",")}
	}
	return jetstream.ConsumerConfig{
		Durable:       LaneConsumerOn(taskType, tok),
		Description:   desc,
		Metadata:      meta,
		FilterSubject: c.Subjects().LaneOn(taskType, tok),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxAckPending: c.MaxAckPending,
		MaxDeliver:    -1, // the agent decides when a task has had its attempts
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxWaiting:    4096,
	}
}

// Planner returns the JOBS consumer definition.
func (c Config) Planner() jetstream.ConsumerConfig {
	c = c.WithDefaults()
	return jetstream.ConsumerConfig{
		Durable:       PlannerConsumer,
		Description:   "jobs to plan",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: 64,
	}
}
