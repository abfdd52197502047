package streams

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go/jetstream"
)

// LaneStates reads every lane consumer's state. A consumer whose name
// only looks like a lane's (its type is not a token, or its priority out
// of range) is left out: no agent would serve it.
func LaneStates(ctx context.Context, js jetstream.JetStream, c Config) ([]events.LaneState, error) {
	s, err := js.Stream(ctx, c.TasksStream())
	if err != nil {
		return nil, fmt.Errorf("lanes: %w", err)
	}
	out := []events.LaneState{}
	infos := s.ListConsumers(ctx)
	for ci := range infos.Info() {
		typ, prio, key, ok := ParseLane(ci.Name)
		if !ok {
			continue
		}
		lane := fmt.Sprintf("%s.%d", typ, prio)
		var requires []string
		if key != "" {
			lane += "-" + key
			requires = LaneRequires(ci.Config)
		}
		l := events.LaneState{
			Lane: lane, Type: typ, Priority: prio, Consumer: ci.Name, Requires: requires,
			Backlog: ci.NumPending, InFlight: ci.NumAckPending, Redelivered: ci.NumRedelivered, Paused: ci.Paused,
		}
		if ci.Paused && ci.Config.PauseUntil != nil {
			u := ci.Config.PauseUntil.UTC()
			l.PausedUntil = &u
		}
		out = append(out, l)
	}
	if err := infos.Err(); err != nil {
		return nil, fmt.Errorf("lanes: %w", err)
	}
	slices.SortFunc(out, func(a, b events.LaneState) int { return strings.Compare(a.Lane, b.Lane) })
	return out, nil
}

// LaneRequires reads a capability lane's capabilities from its consumer's
// metadata: at most events.MaxCapabilities valid names, nothing else (the
// metadata may have been set by anyone allowed to create the consumer).
func LaneRequires(cc jetstream.ConsumerConfig) []string {
	var out []string
	for c := range strings.SplitSeq(cc.Metadata[RequiresMetadata], ",") {
		if events.ValidCapability(c) && len(out) < events.MaxCapabilities {
			out = append(out, c)
		}
	}
	return out
}
