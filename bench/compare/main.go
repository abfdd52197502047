// Command compare measures baton beside other task runners on this
// machine, in one run: baton, asynq on Redis and a watermill-nats router
// on JetStream each run the same number of no-op tasks, round after
// round, each on a fresh broker process of its own, and it prints each
// one's rate and CPU per task and baton's rate divided by each other's.
//
// It is its own module, so that baton does not depend on what it
// measures itself against. See the README's performance section.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/baton-dev/baton/internal/benchkit"
	"github.com/baton-dev/baton/internal/procstat"
)

// options are compare's flags.
type options struct {
	tasks       int
	rounds      int
	producers   []int
	agents      int
	slots       int
	natsServer  string
	redisServer string
	timeout     time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := mainErr(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		stop()
		os.Exit(1)
	}
}

// errUsage marks a bad flag.
var errUsage = errors.New("usage")

func mainErr(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	return compare(ctx, o, stdout)
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.IntVar(&o.tasks, "tasks", 20000, "no-op tasks per system and round")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each runs every system once, in turn")
	producers := fs.String("producers", "4,16,64", "goroutines that enqueue or publish the tasks of asynq and watermill, a comma-separated list: each number is its own system (baton: one job, split by its planner)")
	fs.IntVar(&o.agents, "agents", 4, "baton agents")
	fs.IntVar(&o.slots, "slots", 32, "slots per baton agent; the concurrency of the second asynq and watermill systems is agents × slots")
	fs.StringVar(&o.natsServer, "nats-server", "bin/nats-server", "nats-server program (in baton's directory: go build -o bench/compare/bin/ github.com/nats-io/nats-server/v2)")
	fs.StringVar(&o.redisServer, "redis-server", "redis-server", "redis-server program")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "longest one system's round may take")
	if err := fs.Parse(args); err != nil {
		return o, fmt.Errorf("%w: %v", errUsage, err)
	}
	for _, p := range strings.Split(*producers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 || n > 1024 {
			return o, fmt.Errorf("%w: --producers %q: each must be a number 1..1024", errUsage, *producers)
		}
		o.producers = append(o.producers, n)
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("%w: no arguments are taken, got %q", errUsage, fs.Args())
	case o.tasks < slices.Max(o.producers) || o.tasks > 1_000_000:
		return o, fmt.Errorf("%w: --tasks must be the most --producers..1000000", errUsage)
	case o.rounds < 1, o.agents < 1, o.slots < 1:
		return o, fmt.Errorf("%w: --rounds, --agents and --slots must be at least 1", errUsage)
	}
	for _, p := range []*string{&o.natsServer, &o.redisServer} {
		path, err := exec.LookPath(*p)
		if err != nil {
			return o, fmt.Errorf("%w: %v", errUsage, err)
		}
		*p, _ = filepath.Abs(path)
	}
	return o, nil
}

// figure is one system's measurement in one round.
type figure struct {
	rate   float64 // tasks/s
	cpuPer float64 // µs of CPU per task, this process and the broker
}

func compare(ctx context.Context, o options, stdout io.Writer) error {
	sys := systems(o)
	fmt.Fprintf(stdout, "compare: %d no-op tasks per system and round, %d round(s); each system on its own fresh broker process, its clients and workers in this process\n", o.tasks, o.rounds)
	figs := make([][]figure, len(sys))
	for round := 1; round <= o.rounds; round++ {
		for i, s := range sys {
			f, err := measure(ctx, s, o)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round, s.name, err)
			}
			figs[i] = append(figs[i], f)
			fmt.Fprintf(stdout, "round %d  %-56s %9.0f tasks/s %8.1f µs CPU per task\n", round, s.name, f.rate, f.cpuPer)
		}
	}
	fmt.Fprintf(stdout, "\n%-56s %14s %14s %16s\n", "system (medians)", "tasks/s", "CPU/task µs", "baton ÷ system")
	rates := make([]float64, len(sys))
	ratios := make([]float64, len(sys))
	for i, s := range sys {
		var rs, cpus, qs []float64
		for r, f := range figs[i] {
			rs, cpus = append(rs, f.rate), append(cpus, f.cpuPer)
			qs = append(qs, figs[0][r].rate/f.rate)
		}
		rates[i], ratios[i] = median(rs), median(qs)
		fmt.Fprintf(stdout, "%-56s %14.0f %14.1f %16.2f\n", s.name, rates[i], median(cpus), ratios[i])
	}
	// Each kind at its best number of producers.
	fmt.Fprintf(stdout, "\nbaton ÷ each other kind at its fastest number of producers:\n")
	best := map[string]int{}
	var kinds []string
	for i, s := range sys[1:] {
		b, ok := best[s.kind]
		if !ok {
			kinds = append(kinds, s.kind)
		}
		if !ok || rates[i+1] > rates[b] {
			best[s.kind] = i + 1
		}
	}
	for _, k := range kinds {
		fmt.Fprintf(stdout, "%-56s %16.2f   (%s)\n", k, ratios[best[k]], sys[best[k]].name)
	}
	return nil
}

// measure runs one system once on a fresh broker: the time and CPU
// (this process's and the broker's) from the first task sent to the
// last one handled.
func measure(ctx context.Context, s system, o options) (figure, error) {
	b, err := s.broker(ctx, o)
	if err != nil {
		return figure{}, err
	}
	defer b.stop()
	r, err := s.prepare(ctx, b.addr, o)
	if err != nil {
		return figure{}, fmt.Errorf("%w%s", err, b.output())
	}
	cpu0, err := cpuOf(b)
	if err != nil {
		_ = r.close()
		return figure{}, err
	}
	rctx, cancel := context.WithTimeout(ctx, o.timeout)
	start := time.Now()
	err = r.run(rctx, o.tasks)
	el := time.Since(start)
	cancel()
	cpu1, cpuErr := cpuOf(b)
	if cerr := r.close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = cmp.Or(cpuErr, b.exited())
	}
	if err != nil {
		return figure{}, err
	}
	return figure{rate: float64(o.tasks) / el.Seconds(), cpuPer: float64(cpu1-cpu0) / float64(time.Microsecond) / float64(o.tasks)}, nil
}

// cpuOf is the CPU time this process and the broker have used.
func cpuOf(b *broker) (time.Duration, error) {
	self, err := procstat.CPU(os.Getpid())
	if err != nil {
		return 0, err
	}
	other, err := procstat.CPU(b.pid())
	return self + other, err
}

var median = benchkit.Median
