package cli

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/baton-dev/baton/pkg/builtin"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
)

// completeWait bounds how long a shell completion may wait on the server.
const completeWait = 2 * time.Second

// completeWorkflows completes a command's WORKFLOW argument with the ids
// in the workflows bucket of the server and prefix on the command line. It
// offers nothing, rather than an error, when the server does not answer.
func (c *conn) completeWorkflows(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, completeWait)
	defer cancel()
	ids, _ := c.workflowIDs(ctx, toComplete)
	return ids, cobra.ShellCompDirectiveNoFileComp
}

// workflowIDs lists the workflow ids starting with prefix, sorted. Keys
// with a '.' are job specs ("<id>.spec"), not workflows.
func (c *conn) workflowIDs(ctx context.Context, prefix string) ([]string, error) {
	sc := c.common()
	nc, err := sc.Connect("baton-complete", nil)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, sc.Streams.WorkflowsBucket())
	if err != nil {
		return nil, err
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = keys.Stop() }()
	var ids []string
	for k := range keys.Keys() {
		if !strings.Contains(k, ".") && strings.HasPrefix(k, prefix) {
			ids = append(ids, k)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// completeTypes completes a task type flag with the built-in types.
func completeTypes(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return builtin.Types(), cobra.ShellCompDirectiveNoFileComp
}
