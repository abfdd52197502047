package cli_test

import (
	"fmt"

	"github.com/baton-dev/baton/internal/cli"
	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
)

// A main exits with the status ExitCode gives the error Main returned.
func ExampleExitCode() {
	fmt.Println(cli.ExitCode(nil))
	fmt.Println(cli.ExitCode(client.ErrUnknownWorkflow))
	fmt.Println(cli.ExitCode(&events.ControlError{Code: 409, Message: "workflow wf has finished (completed)"}))
	fmt.Println(cli.ExitCode(client.ErrNoPlanner))
	// Output:
	// 0
	// 3
	// 5
	// 6
}
