// Package streams holds every JetStream stream, consumer and key-value bucket
// baton uses, as data built in one place, and applies them idempotently with
// Ensure. It also starts the embedded nats-server that `baton up` runs on.
//
// The directory is called jetstream, as in the design card; the package is
// called streams so that it never clashes with nats.go's jetstream package,
// which every importer also needs.
//
// The same definitions are printed as JSON by `baton streams`, ready for
// `nats stream add --config`.
package streams
