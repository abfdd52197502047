// Command baton is the baton command line: `baton up` runs everything in one
// process; submit, results, status, watch and the control commands talk to
// a deployment. `baton help` lists the commands and the exit statuses.
package main

import (
	"context"
	"os"

	"github.com/baton-dev/baton/internal/cli"
)

func main() {
	// Main has printed any error on stderr; ExitCode maps it to the
	// documented exit status.
	os.Exit(cli.ExitCode(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr)))
}
