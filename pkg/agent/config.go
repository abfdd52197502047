package agent

import (
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
)

// Config configures an Agent. The zero value is usable: a generated id,
// concurrency 8, default streams, slog's default logger.
type Config struct {
	// ID names the agent in the registry and in results; default
	// "<host>-<pid>-<random>".
	ID string
	// Concurrency is how many tasks run at once; default 8.
	Concurrency int
	// Capabilities are what the agent offers beyond its types (at most
	// events.MaxCapabilities, e.g. "gpu", "lang:de"): it also serves the
	// lanes of tasks that require any subset of them, 2^k lanes per type
	// and priority.
	Capabilities []string
	// CPUs and Memory declare the agent's capacity (cores, bytes); 0: none
	// declared. With one, a task starts only if the CPUs and memory its step
	// declares fit what the running tasks leave.
	CPUs    float64
	Memory  int64
	Streams streams.Config
	// Poll is how often an agent looks at its lanes without a wake-up
	// signal (a redelivery after an agent died, a task another agent
	// handed back and the wake-up of which was lost); default 250ms. While
	// polls find nothing and no task or wake-up comes, the period doubles,
	// up to PollMax (default 2s, never below Poll): idle agents do not ask
	// every lane four times a second. Retries this agent set are looked
	// for when they come due, whatever the poll.
	Poll    time.Duration
	PollMax time.Duration
	// Heartbeat is how often the registry entry is refreshed; default a
	// third of the streams' AgentTTL.
	Heartbeat time.Duration
	// DrainTimeout bounds how long shutdown waits for running tasks before
	// it cancels them and hands them back; default 30s.
	DrainTimeout time.Duration
	Version      string
	Logger       *slog.Logger
}

func (c *Config) setDefaults() {
	c.Streams = c.Streams.WithDefaults()
	if c.ID == "" {
		host, _ := os.Hostname()
		host = strings.Map(func(r rune) rune {
			if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
				return r
			}
			return '-'
		}, host)
		if len(host) > 40 {
			host = host[:40]
		}
		c.ID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), strconv.FormatUint(rand.Uint64()%46656, 36))
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 8
	}
	if c.Poll <= 0 {
		c.Poll = 250 * time.Millisecond
	}
	if c.PollMax <= 0 {
		c.PollMax = 2 * time.Second
	}
	c.PollMax = max(c.PollMax, c.Poll)
	if c.Heartbeat <= 0 {
		c.Heartbeat = c.Streams.AgentTTL / 3
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a config that cannot work.
func (c Config) Validate() error {
	if err := c.Streams.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if c.ID != "" && !events.ValidToken(c.ID) {
		return fmt.Errorf("%w: id %q: use 1-64 letters, digits, '-' or '_'", ErrConfig, c.ID)
	}
	if c.Concurrency < 0 {
		return fmt.Errorf("%w: concurrency %d is negative", ErrConfig, c.Concurrency)
	}
	if err := events.CheckCapabilities("capabilities", c.Capabilities); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if c.CPUs < 0 || c.CPUs > events.MaxCPUs || math.IsNaN(c.CPUs) || (c.CPUs > 0 && c.CPUMilli() == 0) {
		return fmt.Errorf("%w: cpus %v: want 0 (none declared) or 0.001 to %d", ErrConfig, c.CPUs, events.MaxCPUs)
	}
	if c.Memory < 0 || c.Memory > events.MaxMemory {
		return fmt.Errorf("%w: memory %d: want 0 (none declared) to 1PiB", ErrConfig, c.Memory)
	}
	return nil
}

// CPUMilli is CPUs in thousandths of a core.
func (c Config) CPUMilli() int64 { return events.Resources{CPUs: c.CPUs}.CPUMilli() }
