// Package control carries baton's control verbs as a NATS service (the
// nats.go micro package): one endpoint per verb on "<prefix>.control.<verb>",
// JSON in and out, so `nats micro ls`, `nats micro info` and `nats req` work
// on them.
//
// Two services share the subjects: the planner's ("baton": submit, pause,
// resume, stop, restart, cancel, reprioritize), and the monitor's
// ("baton-status": status, agents), which any process running a monitor
// may serve. A handler returns a value (sent as JSON; a json.RawMessage as
// it is; a Reply with headers besides) or an error: a *events.ControlError
// keeps its code, a *events.ValidationError is a 400 with a SubmitReply
// body, and anything else is a 500. A reply too large for the server's max
// payload is answered with a 500 that says so, never left unsent.
package control
