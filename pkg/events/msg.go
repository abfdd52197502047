package events

import (
	"encoding/json"
	"fmt"
	"slices"
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
	return &nats.Msg{Subject: s.TaskOf(t), Data: body, Header: TaskHeader(t.Workflow, t.ID, MsgID(t.Workflow, t.ID, t.Round, t.Gen))}, nil
}

// ResultMsg builds the message that stores r on RESULTS. Whoever writes a
// result names its origin in the Nats-Msg-Id: agents write
// ResultByAgent(r), the planner the reason it decided a result itself.
func (s Subjects) ResultMsg(r *Result, origin string) (*nats.Msg, error) {
	body, err := Encode(r)
	if err != nil {
		return nil, err
	}
	// Only the id: the subject names the workflow and the task, and every
	// header is parsed by the server and by each of the result's readers.
	return &nats.Msg{Subject: s.Result(r.Workflow, r.Task), Data: body, Header: ResultHeader(r.Workflow, r.Task, origin)}, nil
}

// ResultHeader is the header of the message of a result of task of
// workflow, written by origin (ResultMsg): its message id alone.
func ResultHeader(workflow, task, origin string) nats.Header {
	return nats.Header{HeaderMsgID: {MsgID(workflow, task, origin)}}
}

// TaskHeader is the header of a task message (TaskMsg): its workflow, task
// and message id, made in two allocations: one goes out per task. Each
// value is a slice of its own capacity, so an Add to one copies it.
func TaskHeader(workflow, task, msgID string) nats.Header {
	v := &[3]string{workflow, task, msgID}
	return nats.Header{HeaderWorkflow: v[0:1:1], HeaderTask: v[1:2:2], HeaderMsgID: v[2:3:3]}
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
	b, err := e.encode()
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

// encode is json.Marshal(e), written out by hand for the common event
// (plain strings, no detail): one goes out per task started, and
// reflection cost more than the rest of its publish.
func (e Event) encode() ([]byte, error) {
	if len(e.Detail) > 0 || !plainJSON(e.Workflow) || !plainJSON(e.Kind) || !plainJSON(e.Task) ||
		!plainJSON(e.Agent) || !plainJSON(e.Message) || e.Time.Year() < 0 || e.Time.Year() > 9999 ||
		slices.ContainsFunc(e.Tasks, func(t string) bool { return !plainJSON(t) }) {
		return json.Marshal(e)
	}
	size := 96 + len(e.Workflow) + len(e.Task) + len(e.Agent) + len(e.Message)
	for _, t := range e.Tasks {
		size += len(t) + 3
	}
	b := make([]byte, 0, size)
	b = append(b, `{"workflow":"`...)
	b = append(b, e.Workflow...)
	b = append(b, `","kind":"`...)
	b = append(b, e.Kind...)
	b = append(b, '"')
	if e.Task != "" {
		b = append(b, `,"task":"`...)
		b = append(b, e.Task...)
		b = append(b, '"')
	}
	if len(e.Tasks) > 0 {
		b = append(b, `,"tasks":[`...)
		for i, t := range e.Tasks {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, t...)
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	if e.Agent != "" {
		b = append(b, `,"agent":"`...)
		b = append(b, e.Agent...)
		b = append(b, '"')
	}
	b = append(b, `,"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if e.Message != "" {
		b = append(b, `,"message":"`...)
		b = append(b, e.Message...)
		b = append(b, '"')
	}
	return append(b, '}'), nil
}

// plainJSON reports whether encoding/json writes s as it is between quotes:
// printable ASCII that is not escaped (it escapes '"', '\\' and, for HTML,
// '<', '>' and '&').
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
