package cli

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"

	"github.com/baton-dev/baton/pkg/client"
	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go"
)

// Exit statuses of the baton command, as ExitCode maps errors onto them.
// The root command's help documents them; scripts may rely on them.
const (
	ExitOK          = 0 // success: the workflow ended success, or partial at or above its threshold
	ExitFailed      = 1 // the workflow ended failed, or any error not listed below
	ExitUsage       = 2 // unknown command, bad flag, wrong number of arguments
	ExitNotFound    = 3 // unknown workflow, task or agent
	ExitRejected    = 4 // invalid job or bad request
	ExitConflict    = 5 // not possible in the workflow's state
	ExitUnavailable = 6 // no server, no planner, or it timed out
	ExitAttention   = 7 // the workflow needs attention: it waits for baton resolve
)

// ErrUsage is matched (errors.Is) by every error about the command line
// itself: an unknown command, a bad flag, a wrong number of arguments.
var ErrUsage = errors.New("usage")

// ErrWorkflowFailed is returned, after the final output was printed, by
// the commands that print a final output whose status is failed.
var ErrWorkflowFailed = errors.New("workflow failed")

// ExitError is what Main returns for a command that did not succeed: the
// error, which Main has already printed on stderr, and the exit status
// ExitCode chose for it.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }

// Unwrap returns the command's error.
func (e *ExitError) Unwrap() error { return e.Err }

// usageError is an error about the command line; it reads as its cause
// and matches ErrUsage.
type usageError struct{ err error }

func (e usageError) Error() string        { return e.err.Error() }
func (e usageError) Unwrap() error        { return e.err }
func (e usageError) Is(target error) bool { return target == ErrUsage }

// ErrRefused is wrapped by the error of a command the server refused for
// want of a permission (exit 4, rejected).
var ErrRefused = errors.New("refused by the server")

// ExitCode returns the exit status for an error of Main (or of any baton
// command): 0 for nil, the Code of an *ExitError, else the status of the
// first of these the error matches: ErrUsage 2; events.ErrNotFound 3 (as
// client.ErrUnknownWorkflow does); an *events.ValidationError or
// events.ErrBadRequest 4; events.ErrConflict 5; client.ErrNoPlanner,
// events.ErrUnavailable, no reachable server or a deadline 6;
// client.ErrNeedsAttention 7; anything else, ErrWorkflowFailed included, 1.
func ExitCode(err error) int {
	var ee *ExitError
	var ve *events.ValidationError
	var oe *net.OpError
	var de *net.DNSError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ee):
		return ee.Code
	case errors.Is(err, ErrUsage):
		return ExitUsage
	case errors.Is(err, events.ErrNotFound):
		return ExitNotFound
	case errors.As(err, &ve), errors.Is(err, events.ErrBadRequest), errors.Is(err, ErrRefused):
		return ExitRejected
	case errors.Is(err, events.ErrConflict):
		return ExitConflict
	case errors.Is(err, client.ErrNoPlanner), errors.Is(err, events.ErrUnavailable),
		errors.Is(err, nats.ErrNoServers), errors.Is(err, nats.ErrNoResponders), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &oe), errors.As(err, &de):
		return ExitUnavailable
	case errors.Is(err, client.ErrNeedsAttention):
		return ExitAttention
	}
	return ExitFailed
}
