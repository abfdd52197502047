package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/baton-dev/baton/internal/benchkit"
	"github.com/baton-dev/baton/internal/service"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go"
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
over --rounds. Logs are at warn level unless --log-level says otherwise.

With --suite, one run measures every figure of the performance goals, each
beside the bare pipeline's in the same round, and prints one table of
medians over --rounds: W1 (--tasks no-op tasks: throughput, CPU per task
of all processes, peak RSS per process, bytes stored per task per stream),
one-task latency (--latency-runs back to back: p50, p99; --idle-runs each
after --idle: p50) on an embedded server and, with --bin, on an external
deployment — nats-server, planner, aggregator and --agents agents as
separate processes from the programs in --bin — and W2 (--w2-tasks sleep
tasks of --w2-sleep at --w2-concurrency slots: wall ÷ ideal). W1 also runs
the bare pipeline in baton's message shapes (a subject per task, baton's
headers, message ids and bodies, results read by two ordered consumers):
what baton's wire format alone costs, and baton's rate beside it. --large N
then runs one job of N tasks on a fresh server and prints its time and
peak RSS per process. Linux only (it reads /proc).`,
		Example: `  baton bench
  baton bench --tasks 10000 --rounds 5 --cpuprofile baton.pprof
  go build -o bin/ ./cmd/planner ./cmd/aggregator ./cmd/agent github.com/nats-io/nats-server/v2
  baton bench --suite --bin bin
  baton bench --suite --bin bin --rounds 1 --large 200000`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.tasks < 1 || o.tasks > events.DefaultMaxTasks || o.rounds < 1 || f.agents < 1 || f.concurrency < 1 {
				return usagef("--tasks must be 1..%d, --rounds, --agents and --concurrency at least 1", events.DefaultMaxTasks)
			}
			f.setConn(c)
			if !o.withSuite {
				if fs := cmd.Flags(); slices.ContainsFunc(suiteFlags, fs.Changed) {
					return usagef("--%s: only with --suite", suiteFlags[slices.IndexFunc(suiteFlags, fs.Changed)])
				}
				return bench(cmd, &f, o)
			}
			if o.cpuprofile != "" {
				return usagef("--cpuprofile: not with --suite")
			}
			if err := o.suite.validate(f.agents); err != nil {
				return err
			}
			return benchSuite(cmd.Context(), &f, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
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
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the baton part of a round to this file (each round rewrites it: it holds the last)")
	fs.BoolVar(&o.withSuite, "suite", false, "run the whole suite (W1 embedded and external, W2, latency, CPU, memory, storage) and print one table")
	so := &o.suite
	fs.StringVar(&so.bin, "bin", "", "with --suite: directory holding nats-server, planner, aggregator and agent programs, for the external mode ("+externalBuild+")")
	fs.IntVar(&so.w2Tasks, "w2-tasks", 2000, "with --suite: W2's tasks")
	fs.DurationVar(&so.w2Sleep, "w2-sleep", 50*time.Millisecond, "with --suite: how long each W2 task sleeps")
	fs.IntVar(&so.w2Concurrency, "w2-concurrency", 64, "with --suite: W2's slots in all, shared by --agents agents")
	fs.IntVar(&so.latencyRuns, "latency-runs", 200, "with --suite: one-task jobs back to back per round, for the warm latency")
	fs.IntVar(&so.idleRuns, "idle-runs", 10, "with --suite: one-task jobs per round each after --idle, for the latency after idle")
	fs.DurationVar(&so.idle, "idle", time.Second, "with --suite: the pause before each of --idle-runs")
	fs.StringVar(&so.profiles, "profiles", "", "with --suite and --bin: directory (made if need be) where each external service writes a CPU profile of its run, <run>-<service>.pprof")
	fs.IntVar(&so.large, "large", 0, "with --suite: afterwards, one job of this many no-op tasks (e.g. 200000), on its own server")
	return cmd
}

// suiteFlags are the flags only bench --suite takes.
var suiteFlags = []string{"bin", "w2-tasks", "w2-sleep", "w2-concurrency", "latency-runs", "idle-runs", "idle", "large", "profiles"}

// benchOptions are bench's own flags.
type benchOptions struct {
	tasks, rounds int
	cpuprofile    string
	withSuite     bool // --suite
	suite         suiteOptions
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
		stopProfile, err := service.StartProfile(o.cpuprofile)
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

var median = benchkit.Median

// batonRate submits one job of n no-op tasks and returns tasks per second
// from submission to the final output.
func batonRate(ctx context.Context, cl *client.Client, n int) (float64, error) {
	el, err := runJob(ctx, cl, "noop", n, 0)
	if err != nil {
		return 0, err
	}
	return float64(n) / el.Seconds(), nil
}

// jsonJob is the benchmarks' job: one step of type typ split into one task
// per input item, and a final output that counts them.
func jsonJob(typ string, input []any) ([]byte, error) {
	return json.Marshal(map[string]any{
		"name":      "bench",
		"steps":     []map[string]any{{"id": typ, "type": typ, "split": 1, "input": input}},
		"aggregate": map[string]any{"strategy": "reduce", "op": "count", "field": "."},
	})
}

// bareRate pushes n messages through a fresh bare pipeline (see
// barePipeline) on nc and returns messages per second. Its streams are
// deleted afterwards.
func bareRate(ctx context.Context, nc *nats.Conn, n, round int) (float64, error) {
	p, err := newBare(ctx, nc, bareConfig{name: fmt.Sprintf("BENCH_%d", round)})
	if err != nil {
		return 0, err
	}
	defer p.close(ctx)
	el, err := p.run(ctx, n)
	if err != nil {
		return 0, err
	}
	return float64(n) / el.Seconds(), nil
}
