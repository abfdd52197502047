package planner

import (
	"fmt"
	"log/slog"
	"time"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/events"
)

// Config configures a Planner. The zero value is usable: default streams,
// limits and routes, no custom decomposers, slog's default logger.
type Config struct {
	Streams streams.Config
	Limits  events.Limits
	// Decomposers a step can name with "decompose".
	Decomposers map[string]Decomposer
	// Routes maps a step type to the agent type that runs it; default
	// DefaultRoutes. Use an empty, non-nil map for none.
	Routes map[string]string
	// Checkpoint is how often a running workflow's counters are written to
	// its record; default 1s.
	Checkpoint time.Duration
	// ReplyPrefixes are the subjects a job's Baton-Reply-To may name: the
	// planner answers only there, so that a job cannot make it publish on
	// any subject (a confused deputy). Default "_INBOX." (every NATS
	// client's inbox prefix) and "_INBOX_" (the per-role inbox prefixes of
	// package auth, "_INBOX_<role>."); add another custom inbox prefix here.
	ReplyPrefixes []string
	// Webhook is the URL (http or https) the planner POSTs an escalation
	// to when the job names none; default none.
	Webhook string
	// WebhookHosts are the hosts a job's own escalation webhook may name
	// (exact host names, with the port if the URL has one). Default none:
	// a job naming a webhook is rejected, so that no job can make the
	// planner POST to an address of its choosing.
	WebhookHosts []string
	// Version is announced by the control service; semantic, default 0.0.0.
	Version string
	Logger  *slog.Logger
}

func (c *Config) setDefaults() {
	c.Streams = c.Streams.WithDefaults()
	c.Limits = c.Limits.WithDefaults()
	if c.Routes == nil {
		c.Routes = DefaultRoutes
	}
	if len(c.ReplyPrefixes) == 0 {
		c.ReplyPrefixes = []string{"_INBOX.", "_INBOX_"}
	}
	if c.Checkpoint <= 0 {
		c.Checkpoint = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Version == "" {
		c.Version = "0.0.0"
	}
}

// Validate reports a config that cannot work.
func (c Config) Validate() error {
	if err := c.Streams.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if c.Webhook != "" {
		if err := events.CheckWebhookURL(c.Webhook); err != nil {
			return fmt.Errorf("%w: webhook: %w", ErrConfig, err)
		}
	}
	if c.Limits.MaxTasks < 0 || c.Limits.MaxTasks > events.MaxTasksCeiling || c.Limits.MaxBytes < 0 {
		return fmt.Errorf("%w: a job's tasks may be limited to 1..%d (0: %d), its size to a positive number of bytes",
			ErrConfig, events.MaxTasksCeiling, events.DefaultMaxTasks)
	}
	for name := range c.Decomposers {
		if !events.ValidToken(name) {
			return fmt.Errorf("%w: decomposer name %q is not a valid token", ErrConfig, name)
		}
	}
	for from, to := range c.Routes {
		if !events.ValidToken(from) || !events.ValidToken(to) {
			return fmt.Errorf("%w: route %q → %q: both must be valid type names", ErrConfig, from, to)
		}
	}
	return nil
}
