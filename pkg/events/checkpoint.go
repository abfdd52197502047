package events

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// CheckpointRecord is the checkpoint a pause or stop takes, kept in the
// workflow's record (Workflow.Checkpoint) so that any planner — a restarted
// one, or a standby that took over — can check a resume token against it.
//
// It is bounded whatever the workflow's size: the done, running and pending
// sets are kept as counts and a digest (a workflow of 100,000 tasks with
// 64-byte ids would need 6.5 MB to list them), and the agents' states at
// most MaxCheckpointAgents agents with MaxCheckpointAgentTasks task ids each.
// The pause reply lists the sets in full.
type CheckpointRecord struct {
	// Seq numbers the workflow's checkpoints from 1; the token names it.
	Seq    int       `json:"seq"`
	Status string    `json:"status"` // WorkflowPaused or WorkflowStopped
	Gen    int       `json:"gen"`    // the workflow's generation when taken
	Taken  time.Time `json:"taken"`
	// Now says the pause handed the running tasks back (pause --now).
	Now bool `json:"now,omitempty"`
	// Task counts: finished, running on an agent, and neither.
	Done    int `json:"done"`
	Running int `json:"running"`
	Pending int `json:"pending"`
	// Digest is a SHA-256 (hex, 128 bits) of every task's id and state in
	// plan order: two checkpoints with the same digest saw the same sets.
	Digest string `json:"digest"`
	// Agents are the agents that answered the pause and what of the
	// workflow each was running: those running most of it first, then by
	// id; AgentsOmitted counts those beyond MaxCheckpointAgents.
	Agents        []CheckpointAgent `json:"agents"`
	AgentsOmitted int               `json:"agents_omitted,omitempty"`
	// Stale says, once set, why the checkpoint no longer resumes: the
	// workflow was resumed, restarted, cancelled in part, reprioritized or
	// paused again since.
	Stale string `json:"stale,omitempty"`
}

// CheckpointAgent is one agent's state in a checkpoint.
type CheckpointAgent struct {
	Agent   string   `json:"agent"`
	Running int      `json:"running"`         // tasks of the workflow it ran
	Tasks   []string `json:"tasks,omitempty"` // the first MaxCheckpointAgentTasks of them
}

// Checkpoint bounds.
const (
	MaxCheckpointAgents     = 32
	MaxCheckpointAgentTasks = 10
	// MaxCheckpointToken bounds the token a resume request may carry.
	MaxCheckpointToken = 64
)

// checkpointPrefix starts every resume token: "cp<seq>.<mac>".
const checkpointPrefix = "cp"

// CheckpointToken formats a resume token from a checkpoint's number and
// its MAC (see lease.Key.Checkpoint).
func CheckpointToken(seq int, mac string) string {
	return checkpointPrefix + strconv.Itoa(seq) + "." + mac
}

// ParseCheckpointToken splits a resume token into the checkpoint number and
// the MAC, or says how it is malformed (wrapping ErrBadRequest). It checks
// the form only: whether the token is genuine, and current, is the
// planner's to say.
func ParseCheckpointToken(token string) (seq int, mac string, err error) {
	bad := func(why string) (int, string, error) {
		return 0, "", fmt.Errorf("%w: token %q: %s; a token is what pause or stop replied (\"cp<n>.<mac>\")", ErrBadRequest, Short(token), why)
	}
	if len(token) > MaxCheckpointToken {
		return bad(fmt.Sprintf("%d bytes, at most %d", len(token), MaxCheckpointToken))
	}
	rest, ok := strings.CutPrefix(token, checkpointPrefix)
	if !ok {
		return bad("does not start with " + checkpointPrefix)
	}
	num, mac, ok := strings.Cut(rest, ".")
	if !ok {
		return bad("no '.' after the checkpoint number")
	}
	seq, err = strconv.Atoi(num)
	if err != nil || seq < 1 || num != strconv.Itoa(seq) {
		return bad("the checkpoint number is not a positive integer")
	}
	if mac == "" || strings.Trim(mac, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		return bad("the MAC is not base64url")
	}
	return seq, mac, nil
}
