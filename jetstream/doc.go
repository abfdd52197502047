// Package streams holds every JetStream stream, consumer and key-value bucket
// baton uses, as data built in one place, and applies them with Ensure
// (create what is missing, update what differs, leave alone what matches;
// EnsureWait for a service starting before JetStream can serve it).
//
// It also holds what every service does with those streams: Follow replays
// a stream from a point and then follows it live (the planner, the
// aggregator and the monitor rebuild their state with it, and Drain it when
// they stop), LaneStates reads the lane consumers, and GetWorkflow and
// PutWorkflow read and write workflow records. The embedded nats-server is
// in the subpackage embedded, so that nothing else links nats-server.
//
// The directory is called jetstream, as in the design card; the package is
// called streams so that it never clashes with nats.go's jetstream package,
// which every importer also needs.
//
// The same definitions are printed as JSON by `baton streams`, ready for
// `nats stream add --config`.
package streams
