package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/baton-dev/baton/examples"
	"github.com/baton-dev/baton/jetstream/embedded"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/oklog/run"
	"github.com/spf13/cobra"
)

// embeddedRun is baton up inside another command: a fresh embedded server,
// every service, and a client. stop ends the services, then the server.
type embeddedRun struct {
	emb    *embedded.Node
	client *client.Client
	stop   func() error
}

func startEmbeddedRun(ctx context.Context, f *upFlags, stderr io.Writer) (*embeddedRun, error) {
	cleanup := func() {}
	if f.data == "" {
		dir, err := os.MkdirTemp("", "baton-")
		if err != nil {
			return nil, err
		}
		f.data = dir
		cleanup = func() { _ = os.RemoveAll(dir) }
	}
	sc, err := f.serverConfig()
	if err != nil {
		cleanup()
		return nil, err
	}
	emb, err := embedded.StartNode(sc)
	if err != nil {
		cleanup()
		return nil, err
	}
	sys := f.system()
	sys.Logger = f.Logger(stderr)
	ctx, cancel := context.WithCancel(ctx)
	var g run.Group
	g.Add(run.ContextHandler(ctx))
	if _, err := sys.Add(ctx, &g, emb.Conn); err != nil {
		cancel()
		emb.Close()
		cleanup()
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- g.Run() }()
	cl, err := client.New(emb.Conn, f.Streams)
	if err != nil {
		cancel()
		<-done
		emb.Close()
		cleanup()
		return nil, err
	}
	return &embeddedRun{emb: emb, client: cl, stop: sync.OnceValue(func() error {
		cancel()
		err := <-done
		emb.Close()
		cleanup()
		if err == context.Canceled {
			return nil
		}
		return err
	})}, nil
}

func newDemoCmd(c *conn) *cobra.Command {
	var f upFlags
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the example job and a parallel-vs-sequential comparison",
		Long: `Start a fresh embedded nats-server (on a free port, files in a temporary
directory unless --data says) with every service, submit examples/report.json
and follow its outputs, then run examples/parallel.json in parallel and one
task at a time and compare the elapsed times. Nothing is left behind. Logs
are at warn level unless --log-level says otherwise.`,
		Example: `  baton demo
  baton demo --agents 2 --concurrency 2`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.setConn(c)
			return demo(cmd, &f)
		},
	}
	fs := cmd.Flags()
	f.registerServer(fs, "", "127.0.0.1:0")
	f.registerAgents(fs, 4)
	f.registerLog(fs, "warn")
	return cmd
}

func demo(cmd *cobra.Command, f *upFlags) error {
	ctx, stdout, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
	r, err := startEmbeddedRun(ctx, f, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = r.stop() }()
	fmt.Fprintf(stdout, "baton demo: embedded nats-server on %s, %d agents × %d slots\n\n", r.emb.Server.ClientURL(), f.agents, f.concurrency)

	report, err := examples.Job("report")
	if err != nil {
		return err
	}
	reply, err := r.client.Submit(ctx, report)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "== examples/report.json → workflow %s: %d tasks on lanes %v\n", reply.Workflow, reply.Tasks, reply.Lanes)
	if _, err := followOutputs(ctx, r.client, reply.Workflow, client.FollowOptions{}, stdout); err != nil {
		return err
	}

	par, err := examples.Job("parallel")
	if err != nil {
		return err
	}
	seq, err := withMaxParallel(par, 1)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "\n== examples/parallel.json: 10 tasks of 200 ms, in parallel, then one at a time")
	pms, err := elapsed(ctx, r.client, par)
	if err != nil {
		return err
	}
	sms, err := elapsed(ctx, r.client, seq)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "parallel:   %6.0f ms\nsequential: %6.0f ms\nparallel took %.0f%% of the sequential time (%.1f× faster)\n",
		pms, sms, 100*pms/sms, sms/pms)
	return r.stop()
}

// withMaxParallel returns job with its max_parallel set.
func withMaxParallel(job []byte, n int) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(job, &m); err != nil {
		return nil, err
	}
	m["max_parallel"] = n
	return json.Marshal(m)
}

// elapsed submits a job, waits for its final output and returns the
// workflow's elapsed time in milliseconds.
func elapsed(ctx context.Context, cl *client.Client, job []byte) (float64, error) {
	out, err := cl.Run(ctx, job, nil)
	if err != nil {
		return 0, err
	}
	if out.Status != events.OutcomeSuccess {
		return 0, fmt.Errorf("workflow %s ended %s", out.Workflow, out.Status)
	}
	return out.Metadata.ElapsedMS, nil
}
