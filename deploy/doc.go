// Package deploy holds baton's container deployment: the image
// (Dockerfile, built by the build script), the nats-server configuration of
// the 3-node cluster, and the suite that runs the top-level
// docker-compose.yml and breaks it while workflows run (compose_test.go).
package deploy
