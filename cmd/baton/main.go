// Command baton is the baton command line: `baton up` runs everything in one
// process; submit, results, demo, bench and streams talk to a deployment.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/baton-dev/baton/internal/cli"
)

func main() {
	err := cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, cli.ErrUsage):
		fmt.Fprintln(os.Stderr, "baton:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "baton:", err)
		os.Exit(1)
	}
}
