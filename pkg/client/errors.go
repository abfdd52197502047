package client

import (
	"errors"
	"fmt"

	"github.com/baton-dev/baton/pkg/events"
)

// ErrNoPlanner is returned when no planner answered in time.
var ErrNoPlanner = errors.New("no reply from a planner: is one running?")

// ErrUnknownWorkflow is returned for a workflow id that has no record. It
// matches events.ErrNotFound with errors.Is, as a control reply of code 404
// does, so a caller can test for "not found" once.
var ErrUnknownWorkflow = fmt.Errorf("unknown workflow: %w", events.ErrNotFound)

// ErrNoFinal is returned by Final for a known workflow that has no final
// output yet.
var ErrNoFinal = errors.New("no final output yet")
