package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/baton-dev/baton/internal/service"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
)

func connectClient(c *service.Common) (*client.Client, func(), error) {
	nc, err := c.Connect("baton-cli")
	if err != nil {
		return nil, nil, err
	}
	cl, err := client.New(nc, c.Streams)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return cl, nc.Close, nil
}

func submit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("baton submit", flag.ContinueOnError)
	var c service.Common
	c.Register(fs)
	follow := fs.Bool("follow", false, "print partial outputs as they arrive, then the final output")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: baton submit [flags] FILE|-")
		fs.PrintDefaults()
	}
	if err := service.ParseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("%w: submit takes one job file, or - for standard input", ErrUsage)
	}
	var job []byte
	var err error
	if fs.Arg(0) == "-" {
		job, err = io.ReadAll(io.LimitReader(os.Stdin, events.DefaultMaxJobBytes+1))
	} else {
		job, err = os.ReadFile(fs.Arg(0))
	}
	if err != nil {
		return err
	}
	cl, closeConn, err := connectClient(&c)
	if err != nil {
		return err
	}
	defer closeConn()
	reply, err := cl.Submit(ctx, job)
	var ve *events.ValidationError
	if errors.As(err, &ve) {
		return fmt.Errorf("rejected (workflow %s): %w", reply.Workflow, err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "workflow %s: %d tasks on lanes %v\n", reply.Workflow, reply.Tasks, reply.Lanes)
	if !*follow {
		return nil
	}
	return followOutputs(ctx, cl, reply.Workflow, stdout)
}

func followOutputs(ctx context.Context, cl *client.Client, wf string, stdout io.Writer) error {
	final, err := cl.Follow(ctx, wf, func(o *events.Output) error {
		if o.Kind == events.OutputPartial {
			fmt.Fprintf(stdout, "partial: %d/%d tasks (%.1f%%), %d new results\n", o.Progress.Done, o.Progress.Total, o.Progress.Percent, len(o.Results))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return printJSON(stdout, final)
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func results(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("baton results", flag.ContinueOnError)
	var c service.Common
	c.Register(fs)
	follow := fs.Bool("follow", false, "print partial outputs as they arrive, then the final output")
	if err := service.ParseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: baton results [--follow] WORKFLOW", ErrUsage)
	}
	cl, closeConn, err := connectClient(&c)
	if err != nil {
		return err
	}
	defer closeConn()
	if *follow {
		return followOutputs(ctx, cl, fs.Arg(0), stdout)
	}
	out, err := cl.Final(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	return printJSON(stdout, out)
}

func printStreams(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("baton streams", flag.ContinueOnError)
	var c service.Common
	c.Register(fs)
	if err := service.ParseFlags(fs, args, stderr); err != nil {
		return err
	}
	return printJSON(stdout, map[string]any{
		"streams":      c.Streams.Streams(),
		"buckets":      c.Streams.Buckets(),
		"lane_example": c.Streams.Lane("research", 1),
		"planner":      c.Streams.Planner(),
	})
}
