package permit_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	streams "github.com/baton-dev/baton/jetstream"
	"github.com/baton-dev/baton/jetstream/embedded"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/permit"
	"github.com/nats-io/nats.go/jetstream"
)

// Example takes a lock (a key of limit 1) for one task: a second task
// asking for it is told to wait until the first gives it back.
func Example() {
	dir, _ := os.MkdirTemp("", "permit-example-")
	defer os.RemoveAll(dir)
	node, err := embedded.StartNode(embedded.Config{Port: -1, StoreDir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer node.Close()
	ctx := context.Background()
	js, _ := jetstream.New(node.Conn)
	c := streams.Config{}
	if err := streams.Ensure(ctx, js, c); err != nil { // the planner's job
		fmt.Println(err)
		return
	}
	gate, err := permit.Open(ctx, js, c, "agent-1", slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Println(err)
		return
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); gate.Watch(wctx) }()
	defer func() { stop(); <-done }()

	migrate := &events.Task{Workflow: "wf-1", ID: "migrate-0", Type: "sql", Priority: 3, MaxAttempts: 1, Key: "schema", Limit: 1}
	first, _, _ := gate.Try(ctx, migrate, "wf-1/migrate-0")
	second, _, _ := gate.Try(ctx, migrate, "wf-1/migrate-1")
	fmt.Println("first holds the lock:", first != nil, "— second too:", second != nil)
	first.Release(ctx)
	second, _, _ = gate.Try(ctx, migrate, "wf-1/migrate-1")
	fmt.Println("after the release, second holds it:", second != nil)
	second.Release(ctx)
	// Output:
	// first holds the lock: true — second too: false
	// after the release, second holds it: true
}
