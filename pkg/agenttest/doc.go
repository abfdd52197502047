// Package agenttest runs agent handlers in a test against a real, embedded
// JetStream server, with a planner and an aggregator, so that a handler is
// tested the way it runs in production: a task decoded from its lane, the
// outcome deciding the acknowledgement, a result stored on RESULTS, a final
// output from the aggregator. Nothing is mocked.
//
//	func TestDouble(t *testing.T) {
//		h := agenttest.New(t, map[string]agent.Handler{"double": agent.HandlerFunc(double)})
//		r := h.Task("double", 21)
//		if r.Status != events.StateCompleted || string(r.Data) != "42" {
//			t.Fatalf("got %s %s", r.Status, r.Data)
//		}
//	}
//
// Every harness has its own server and store (in t.TempDir()), so tests
// using it may run in parallel; all of it stops when the test ends.
package agenttest
