// Package events is baton's wire protocol: the job specification users submit,
// the task, result and event messages services exchange, the subjects they travel
// on, the headers they carry and the codec that turns them into bytes.
//
// Internal messages (Task, Result, Event) are msgpack with explicit field tags;
// a result may also be sent as JSON (Content-Type: application/json) so agents in
// any language can answer. Jobs are JSON; outputs are JSON. Subjects are built by
// Subjects, which carries the configurable prefix (default "baton").
//
// Every decoder in this package returns an error wrapping ErrDecode (or a
// *ValidationError for jobs) and never panics on bad input.
package events
