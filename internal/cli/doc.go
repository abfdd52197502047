// Package cli implements the baton command line on cobra.
//
// `baton up` runs everything in one process on an embedded nats-server;
// submit, results, status, watch, agents and the control commands (pause,
// resume, stop, restart, cancel, reprioritize) talk to a deployment through
// pkg/client; demo and bench run on a fresh embedded server (bench --suite
// also runs nats-server and the service programs from --bin as separate
// processes); streams prints the stream definitions. Every command takes
// the connection flags --server (env NATS_URL), --context (env
// NATS_CONTEXT, a nats CLI context) and the NATS credentials and TLS flags,
// --prefix (env BATON_PREFIX), and only its own flags.
//
// cmd/baton calls Main and exits with ExitCode of what it returns: Main
// prints help and output on stdout, and errors on stderr as
// "baton: <message>"; the exit statuses are the Exit constants.
package cli
