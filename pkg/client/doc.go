// Package client submits jobs to baton, follows their outputs and controls
// workflows, from Go. The baton CLI and the dashboard are built on it.
//
// Every method takes a context; a method without a deadline in its context
// gets a default one (30s to plan a job, 40s for a control request), so
// nothing waits forever on a deployment that is down. Errors match
// ErrNoPlanner, ErrUnknownWorkflow, ErrNoFinal and the control sentinels
// of package events (ErrBadRequest, ErrNotFound, ErrConflict,
// ErrUnavailable) with errors.Is; a rejected job is an
// *events.ValidationError (errors.As).
package client
