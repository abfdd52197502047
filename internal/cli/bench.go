package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
)

func newBenchCmd(c *conn) *cobra.Command {
	var f upFlags
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure end-to-end throughput against a bare JetStream pipeline",
		Long: `Run --tasks no-op tasks through baton end to end (submit → planner → lanes
→ agents → results → aggregator → final output) and, on the same fresh
embedded server in the same round, as many messages through a bare
two-hop JetStream pipeline (publish → consume+ack → publish result →
consume+ack). Each round measures both; the last line gives the medians
over --rounds. Logs are at warn level unless --log-level says otherwise.`,
		Example: `  baton bench
  baton bench --tasks 10000 --rounds 5 --cpuprofile baton.pprof`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.tasks < 1 || o.tasks > events.DefaultMaxTasks || o.rounds < 1 {
				return usagef("--tasks must be 1..%d and --rounds at least 1", events.DefaultMaxTasks)
			}
			f.setConn(c)
			return bench(cmd, &f, o)
		},
	}
	fs := cmd.Flags()
	f.registerServer(fs, "", "127.0.0.1:0")
	// A no-op task needs no CPU: slots, not cores, bound how many are in
	// flight, as the bare pipeline's consumer prefetch bounds it there.
	f.registerAgents(fs, 32)
	f.registerLog(fs, "warn")
	fs.IntVar(&o.tasks, "tasks", 50_000, "no-op tasks per round")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; the summary gives the medians")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the baton part of each round to this file")
	return cmd
}

// benchOptions are bench's own flags.
type benchOptions struct {
	tasks, rounds int
	cpuprofile    string
}

// bench runs N no-op tasks through baton end to end and N messages
// through a bare JetStream two-hop pipeline, on one embedded server, per
// round, and prints each round's figures and then the medians.
func bench(cmd *cobra.Command, f *upFlags, o benchOptions) error {
	ctx, stdout, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
	r, err := startEmbeddedRun(ctx, f, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = r.stop() }()
	fmt.Fprintf(stdout, "baton bench: %d no-op tasks per round, %d agents × %d slots, embedded nats-server with file storage\n",
		o.tasks, f.agents, f.concurrency)
	fmt.Fprintf(stdout, "%-6s %14s %14s %8s\n", "round", "bare tasks/s", "baton tasks/s", "ratio")
	var bares, batons, ratios []float64
	for i := 1; i <= o.rounds; i++ {
		bare, err := bareRate(ctx, r.emb.Conn, o.tasks, i)
		if err != nil {
			return fmt.Errorf("bare pipeline: %w", err)
		}
		stopProfile, err := startProfile(o.cpuprofile)
		if err != nil {
			return err
		}
		bat, err := batonRate(ctx, r.client, o.tasks)
		stopProfile()
		if err != nil {
			return fmt.Errorf("baton: %w", err)
		}
		bares, batons, ratios = append(bares, bare), append(batons, bat), append(ratios, bat/bare)
		fmt.Fprintf(stdout, "%-6d %14.0f %14.0f %7.1f%%\n", i, bare, bat, 100*bat/bare)
	}
	fmt.Fprintf(stdout, "%-6s %14.0f %14.0f %7.1f%%\n", "median", median(bares), median(batons), 100*median(ratios))
	return r.stop()
}

// startProfile starts CPU profiling to path, if one is given; the returned
// function stops it.
func startProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// batonRate submits one job of n no-op tasks and returns tasks per second
// from submission to the final output.
func batonRate(ctx context.Context, cl *client.Client, n int) (float64, error) {
	zeros := make([]int, n)
	job, err := json.Marshal(map[string]any{
		"name":      "bench",
		"steps":     []map[string]any{{"id": "noop", "type": "noop", "split": 1, "input": zeros}},
		"aggregate": map[string]any{"strategy": "reduce", "op": "count", "field": "."},
	})
	if err != nil {
		return 0, err
	}
	start := time.Now()
	out, err := cl.Run(ctx, job, nil)
	if err != nil {
		return 0, err
	}
	el := time.Since(start)
	if out.Status != events.OutcomeSuccess || out.Metadata.Tasks.Completed != n {
		return 0, fmt.Errorf("workflow %s ended %s with %d of %d tasks", out.Workflow, out.Status, out.Metadata.Tasks.Completed, n)
	}
	return float64(n) / el.Seconds(), nil
}

// bareRate is the baseline: the least a two-hop JetStream pipeline does for
// n tasks — publish each to a work-queue stream, consume and ack it, publish
// a result to a second stream, consume and ack that — with async publishing
// and the library's default pull consumption, as a hand-written pipeline
// would. Its streams are deleted afterwards.
func bareRate(ctx context.Context, nc *nats.Conn, n, round int) (float64, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return 0, err
	}
	name := fmt.Sprintf("BENCH_%d", round)
	tasks, results := name+"_T", name+"_R"
	tsubj, rsubj := "bench."+name+".t", "bench."+name+".r"
	for _, sc := range []jetstream.StreamConfig{
		{Name: tasks, Subjects: []string{tsubj}, Retention: jetstream.WorkQueuePolicy},
		{Name: results, Subjects: []string{rsubj}},
	} {
		if _, err := js.CreateStream(ctx, sc); err != nil {
			return 0, err
		}
		defer func() { _ = js.DeleteStream(context.WithoutCancel(ctx), sc.Name) }()
	}
	tc, err := js.CreateConsumer(ctx, tasks, jetstream.ConsumerConfig{Durable: "work", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		return 0, err
	}
	rc, err := js.CreateConsumer(ctx, results, jetstream.ConsumerConfig{Durable: "collect", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		return 0, err
	}
	payload := make([]byte, 96)
	done := make(chan struct{})
	failed := make(chan error, 1)
	fail := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	got := 0
	start := time.Now()
	work, err := tc.Consume(func(m jetstream.Msg) {
		if _, err := js.PublishAsync(rsubj, m.Data()); err != nil {
			fail(err)
			return
		}
		_ = m.Ack()
	})
	if err != nil {
		return 0, err
	}
	defer work.Stop()
	collect, err := rc.Consume(func(m jetstream.Msg) {
		_ = m.Ack()
		if got++; got == n {
			close(done)
		}
	})
	if err != nil {
		return 0, err
	}
	defer collect.Stop()
	for range n {
		if _, err := js.PublishAsync(tsubj, payload); err != nil {
			return 0, err
		}
	}
	select {
	case <-done:
	case err := <-failed:
		return 0, err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(10 * time.Minute):
		return 0, errors.New("no end after 10 minutes")
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
