package events

import "fmt"

// CrashDrill is the body of a failure drill sent to one agent on
// AgentCrash(id) (the planner sends it for the crash verb): the agent it
// names stops as if killed — no acknowledgement, no result, no registry
// removal, no drain — so that an operator can rehearse the recovery.
type CrashDrill struct {
	Agent string `json:"agent"`
}

// ParseCrashDrill decodes a crash drill strictly and checks that it names
// agent; anything else is an error wrapping ErrBadRequest, and no crash.
func ParseCrashDrill(data []byte, agent string) error {
	var d CrashDrill
	if err := strictJSON(data, &d); err != nil {
		ve := jsonError("", err)
		if ve.Field != "" {
			return fmt.Errorf("%w: crash drill: %s: %s", ErrBadRequest, ve.Field, ve.Reason)
		}
		return fmt.Errorf("%w: crash drill: %s", ErrBadRequest, ve.Reason)
	}
	if d.Agent != agent {
		return fmt.Errorf("%w: crash drill for agent %q sent to agent %s", ErrBadRequest, Short(d.Agent), agent)
	}
	return nil
}

// CrashReply is what an agent answers to a crash drill, just before it
// stops, and the reply to the crash verb.
type CrashReply struct {
	Agent  string `json:"agent"`
	Status string `json:"status"` // "crashed"
	// Abandoned counts the tasks it held: they go back to their lanes when
	// their ack wait passes. Tasks lists the first MaxListedTasks of them,
	// "<workflow>/<task>".
	Abandoned int      `json:"abandoned"`
	Tasks     []string `json:"tasks"`
}

// AgentCrashed is a CrashReply's status.
const AgentCrashed = "crashed"
