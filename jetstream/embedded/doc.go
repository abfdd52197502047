// Package embedded runs the nats-server that `baton up`, `baton demo`,
// `baton bench` and the tests use: JetStream with file storage in one
// directory, in this process.
//
// It is the only package of baton that links nats-server. Agents, clients
// and the separate services never import it, so they stay small:
// `go list -deps ./pkg/agent | grep nats-server` prints nothing.
package embedded
