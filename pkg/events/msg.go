package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Dead letter headers: why a task message was kept on DEAD.
const (
	HeaderError     = "Baton-Error"      // the failure's message
	HeaderErrorKind = "Baton-Error-Kind" // one of the Kind constants
	HeaderAgent     = "Baton-Agent"      // the agent that gave up on it
	HeaderSubject   = "Baton-Subject"    // the lane subject it came from
)

// HeaderAttempts, on a task message, counts the attempts used by earlier
// copies of the task: an agent that hands a task back on shutdown queues a
// copy carrying it, so that the hand-back costs no attempt. An agent's
// attempt number is this plus the copy's delivery count.
const HeaderAttempts = "Baton-Attempts"

// MaxAttemptsHeader bounds what HeaderAttempts may claim; a larger or
// unreadable value counts as 0.
const MaxAttemptsHeader = 1000

// TaskMsg builds the message that queues t on its lane. Its Nats-Msg-Id
// names the workflow, task, round and generation, so the same task queued
// twice is stored once.
func (s Subjects) TaskMsg(t *Task) (*nats.Msg, error) {
	body, err := Encode(t)
	if err != nil {
		return nil, err
	}
	msg := nats.NewMsg(s.TaskOf(t))
	msg.Data = body
	msg.Header.Set(HeaderWorkflow, t.Workflow)
	msg.Header.Set(HeaderTask, t.ID)
	msg.Header.Set(HeaderMsgID, MsgID(t.Workflow, t.ID, t.Round, t.Gen))
	return msg, nil
}

// ResultMsg builds the message that stores r on RESULTS. Whoever writes a
// result names its origin in the Nats-Msg-Id: agents write
// ResultByAgent(r), the planner the reason it decided a result itself.
func (s Subjects) ResultMsg(r *Result, origin string) (*nats.Msg, error) {
	body, err := Encode(r)
	if err != nil {
		return nil, err
	}
	msg := nats.NewMsg(s.Result(r.Workflow, r.Task))
	msg.Data = body
	msg.Header.Set(HeaderWorkflow, r.Workflow)
	msg.Header.Set(HeaderTask, r.Task)
	msg.Header.Set(HeaderMsgID, MsgID(r.Workflow, r.Task, origin))
	return msg, nil
}

// ResultByAgent is the origin of a result an agent ran: its round,
// generation and the start of its lease token, so a re-run of the same task
// message is stored once, while the result of a forged copy of the task
// (another token, or none) cannot take the real result's id and have the
// real one dropped as its duplicate.
func ResultByAgent(r *Result) string {
	o := "r" + strconv.Itoa(r.Round) + "." + strconv.Itoa(r.Gen)
	if r.Lease != "" {
		o += "." + r.Lease[:min(len(r.Lease), 8)]
	}
	return o
}

// EventMsg builds the message of one event, stamping its time if unset. A
// started event, one per task run, goes on its Live subject, which no
// stream stores: what outlives it (which tasks run where) is in the agents'
// registry entries, and results carry start times.
func (s Subjects) EventMsg(e Event) (*nats.Msg, error) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("events: encode event: %w", err)
	}
	subject := s.Event(e.Workflow, e.Kind)
	if e.Kind == EventStarted {
		subject = s.Live(e.Workflow, e.Kind)
	}
	msg := nats.NewMsg(subject)
	msg.Data = b
	return msg, nil
}

// PublishEvent publishes e on core NATS: events are for people, the
// dashboard and the audit trail, and EVENTS stores what arrives (all but
// started events, see EventMsg). It returns
// the publish error, if any, for the caller to log.
func (s Subjects) PublishEvent(nc *nats.Conn, e Event) error {
	msg, err := s.EventMsg(e)
	if err != nil {
		return err
	}
	return nc.PublishMsg(msg)
}
