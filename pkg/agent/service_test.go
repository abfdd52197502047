package agent_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go/micro"
)

// TestAgent_ServiceInfo checks what `nats micro info baton-agent` shows: the
// agent's id, types, capabilities (its types and the configured extras) and
// slots, and that its info endpoint answers with the registry record.
func TestAgent_ServiceInfo(t *testing.T) {
	t.Parallel()
	cfg := streams.Config{Memory: true}
	nc, _ := natstest.Ensure(t, natstest.Start(t), cfg)
	startAgent(t, nc, agent.Config{ID: "gpu-1", Concurrency: 3, Capabilities: []string{"gpu"}, Streams: cfg, Version: "v1.2.3"},
		map[string]agent.Handler{"render": agent.HandlerFunc(func(context.Context, *agent.Task) (any, error) { return nil, nil })})

	var info micro.Info
	natstest.Eventually(t, 10*time.Second, "the agent's service", func() bool {
		m, err := nc.Request("$SRV.INFO.baton-agent", nil, time.Second)
		return err == nil && json.Unmarshal(m.Data, &info) == nil
	})
	want := map[string]string{"id": "gpu-1", "types": "render", "capabilities": "render,gpu", "concurrency": "3"}
	for k, v := range want {
		if info.Metadata[k] != v {
			t.Errorf("metadata %s = %q, want %q (all: %v)", k, info.Metadata[k], v, info.Metadata)
		}
	}
	if info.Version != "1.2.3" {
		t.Errorf("version %q, want 1.2.3", info.Version)
	}
	m, err := nc.Request(cfg.Subjects().AgentInfo("gpu-1"), nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var rec events.AgentInfo
	if err := json.Unmarshal(m.Data, &rec); err != nil || rec.ID != "gpu-1" || rec.Concurrency != 3 {
		t.Fatalf("info endpoint: %s (%v)", m.Data, err)
	}
}
