package events

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// How a workflow finishes: its collection mode, early termination
// (stop_when) and what happens when its success threshold is missed
// (on_threshold_missed). The job carries them; the planner copies them into
// the workflow record, where the aggregator reads them.

// Collection modes (Job.Collect).
const (
	// CollectStream publishes a partial output as results arrive, then the
	// final output. The default.
	CollectStream = "stream"
	// CollectBatch publishes no partial output: one final output.
	CollectBatch = "batch"
	// CollectHybrid publishes partial outputs, a ready output as soon as
	// the critical tasks are done (see Workflow.ReadyAt), then the final
	// output.
	CollectHybrid = "hybrid"
)

// CollectModes lists the collection modes.
var CollectModes = []string{CollectStream, CollectBatch, CollectHybrid}

// OutputReady is the kind of the one output a hybrid workflow publishes,
// on "<prefix>.outputs.<wf>.ready", once a consumer may go on without the
// stragglers.
const OutputReady = "ready"

// WorkflowNeedsAttention is the status of a workflow that missed its
// success threshold and escalated: it waits for a person to resolve it.
const WorkflowNeedsAttention = "needs_attention"

// Resolutions of an escalated workflow (ControlRequest.Resolution).
const (
	ResolveAccept      = "accept"       // finish with what there is, as partial
	ResolveRetryFailed = "retry_failed" // run the failed tasks again
	ResolveFail        = "fail"         // finish as failed
)

// Resolutions lists the resolutions.
var Resolutions = []string{ResolveAccept, ResolveRetryFailed, ResolveFail}

// Event kinds of finishing.
const (
	EventRetryRound = "retry_round" // the threshold was missed: the failed tasks run again
	EventEscalated  = "escalated"   // the threshold was missed for good: a person must resolve it
	EventWebhook    = "webhook"     // the outcome of an escalation's webhook POST
	EventResolved   = "resolved"    // a person resolved an escalated workflow
	EventStopWhen   = "stop_when"   // the job's stop_when held: the rest is cancelled
)

// KindStopWhen is the error kind of the tasks cancelled because the job's
// stop_when held.
const KindStopWhen = "stop_when"

// Bounds of the finishing fields.
const (
	MaxRetryRounds = 10   // on_threshold_missed.retry_failed
	MaxWebhookURL  = 2048 // bytes of on_threshold_missed.escalate.webhook
)

// StopWhen ends a workflow early: once it holds, the unfinished tasks are
// cancelled and the final output comes at once. Exactly one form is set.
type StopWhen struct {
	// Completed: once this many tasks have completed.
	Completed int `json:"completed,omitempty"`
	// Threshold: once the completed share reaches the success threshold.
	Threshold bool `json:"threshold,omitempty"`
}

// ThresholdPolicy says what happens when a workflow misses its success
// threshold (no critical task having failed).
type ThresholdPolicy struct {
	// RetryFailed is how many rounds the failed tasks run again before
	// the workflow fails or escalates; 0 to MaxRetryRounds.
	RetryFailed int `json:"retry_failed,omitempty"`
	// Escalate, when set, makes a workflow still short after its rounds
	// wait for a person (status needs_attention) instead of failing.
	Escalate *Escalate `json:"escalate,omitempty"`
}

// Escalate is how an escalation is announced besides its event.
type Escalate struct {
	// Webhook is an http or https URL the planner POSTs the escalation
	// to. A job may name one only if the planner allows its host; without
	// it the planner's own webhook, if configured, is used.
	Webhook string `json:"webhook,omitempty"`
}

// parseFinish decodes stop_when and on_threshold_missed on their own, so
// that an unknown field is reported with the object it is in.
func parseFinish(job *Job, stopWhen, policy json.RawMessage) error {
	job.StopWhen, job.OnThresholdMissed = nil, nil
	if len(stopWhen) > 0 && string(stopWhen) != "null" {
		job.StopWhen = &StopWhen{}
		if err := strictJSON(stopWhen, job.StopWhen); err != nil {
			return jsonError("stop_when", err)
		}
	}
	if len(policy) == 0 || string(policy) == "null" {
		return nil
	}
	var env struct {
		ThresholdPolicy
		Escalate json.RawMessage `json:"escalate"`
	}
	if err := strictJSON(policy, &env); err != nil {
		ve := jsonError("on_threshold_missed", err)
		ve.Field = strings.Replace(ve.Field, "ThresholdPolicy.", "", 1)
		return ve
	}
	job.OnThresholdMissed = &env.ThresholdPolicy
	if len(env.Escalate) > 0 && string(env.Escalate) != "null" {
		job.OnThresholdMissed.Escalate = &Escalate{}
		if err := strictJSON(env.Escalate, job.OnThresholdMissed.Escalate); err != nil {
			return jsonError("on_threshold_missed.escalate", err)
		}
	}
	return nil
}

func (j *Job) validateFinish() error {
	switch j.Collect {
	case "", CollectStream, CollectBatch, CollectHybrid:
	default:
		return invalid("collect", "%q: want %s", j.Collect, strings.Join(CollectModes, ", "))
	}
	if s := j.StopWhen; s != nil {
		switch {
		case s.Completed == 0 && !s.Threshold:
			return invalid("stop_when", "empty: give {\"completed\": N} or {\"threshold\": true}")
		case s.Completed != 0 && s.Threshold:
			return invalid("stop_when", "give completed or threshold, not both")
		case s.Completed < 0:
			return invalid("stop_when.completed", "%d: must be at least 1", s.Completed)
		}
	}
	if o := j.OnThresholdMissed; o != nil {
		if o.RetryFailed < 0 || o.RetryFailed > MaxRetryRounds {
			return invalid("on_threshold_missed.retry_failed", "%d is out of range 0..%d", o.RetryFailed, MaxRetryRounds)
		}
		if o.RetryFailed == 0 && o.Escalate == nil {
			return invalid("on_threshold_missed", "does nothing: give retry_failed (1..%d), escalate, or both", MaxRetryRounds)
		}
		if o.Escalate != nil && o.Escalate.Webhook != "" {
			if err := CheckWebhookURL(o.Escalate.Webhook); err != nil {
				return invalid("on_threshold_missed.escalate.webhook", "%v", err)
			}
		}
	}
	return nil
}

// webhookError is why a webhook URL is refused.
type webhookError string

func (e webhookError) Error() string { return string(e) }

// CheckWebhookURL accepts an absolute http or https URL with a host, no
// user information and at most MaxWebhookURL bytes.
func CheckWebhookURL(raw string) error {
	if len(raw) > MaxWebhookURL {
		return webhookError("longer than " + strconv.Itoa(MaxWebhookURL) + " bytes")
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return webhookError("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return webhookError("only http and https URLs are allowed")
	case u.Host == "" || u.Hostname() == "":
		return webhookError("the URL has no host")
	case u.User != nil:
		return webhookError("the URL must not carry user information")
	}
	return nil
}

// CollectMode is the workflow's collection mode, CollectStream by default.
func (w *Workflow) CollectMode() string {
	if w.Mode == "" {
		return CollectStream
	}
	return w.Mode
}

// StopHolds reports whether the workflow's stop_when holds for counts c
// with every critical task completed (allCritical): then it stops early.
func (w *Workflow) StopHolds(c Counts, allCritical bool) bool {
	s := w.StopWhen
	if s == nil || !allCritical {
		return false
	}
	if s.Completed > 0 {
		return c.Completed >= s.Completed
	}
	return c.Total > 0 && float64(c.Completed)/float64(c.Total)+1e-9 >= w.SuccessThreshold
}

// Verdict is Outcome for this workflow: as Outcome, except that a
// workflow whose stop_when {"completed": N} was reached (N tasks completed,
// no critical task failed) is partial, not failed: the job asked for N.
func (w *Workflow) Verdict(c Counts, criticalFailed bool) (string, float64) {
	out, rate := Outcome(c, w.SuccessThreshold, criticalFailed)
	if out == OutcomeFailed && !criticalFailed && w.StopWhen != nil && w.StopWhen.Completed > 0 && c.Completed >= w.StopWhen.Completed {
		out = OutcomePartial
	}
	return out, rate
}

// AwaitsDecision reports whether a workflow whose tasks all ended with
// verdict out leaves the verdict to the planner: it missed its threshold
// (no critical task failed) and has an on_threshold_missed policy, so the
// planner retries, escalates or fails it.
func (w *Workflow) AwaitsDecision(out string, criticalFailed bool) bool {
	return out == OutcomeFailed && !criticalFailed && w.OnThresholdMissed != nil
}

// Decided reports whether the planner has closed the workflow with a
// verdict (Outcome) that its final output must carry.
func (w *Workflow) Decided() bool {
	return (w.Status == WorkflowCompleted || w.Status == WorkflowFailed) && w.Outcome != ""
}

// Escalation is what the planner POSTs to a webhook when a workflow
// escalates: JSON, at most a few KiB (Failed lists at most
// MaxEscalationTasks ids).
type Escalation struct {
	Workflow  string    `json:"workflow"`
	Name      string    `json:"name,omitempty"`
	Status    string    `json:"status"` // needs_attention
	Escalated time.Time `json:"escalated"`
	Rounds    int       `json:"retry_rounds"`
	Counts    Counts    `json:"counts"`
	Threshold float64   `json:"success_threshold"`
	Error     string    `json:"error,omitempty"`
	// Failed names failed tasks, the first MaxEscalationTasks of them.
	Failed []string `json:"failed"`
	// FailedOmitted counts failed tasks left out of Failed.
	FailedOmitted int `json:"failed_omitted,omitempty"`
}

// MaxEscalationTasks bounds Escalation.Failed.
const MaxEscalationTasks = 50

// ResolveReply is the reply to resolve.
type ResolveReply struct {
	Workflow   string `json:"workflow"`
	Resolution string `json:"resolution"`
	Status     string `json:"status"`            // the workflow's status now
	Outcome    string `json:"outcome,omitempty"` // accept: partial; fail: failed
	// Queued (retry_failed) are the failed tasks queued again.
	Queued []string `json:"queued"`
}

// ReadyHolds reports whether a hybrid workflow's consumers may go on
// without the rest: every critical task completed (critDone of critical),
// or, in a job without critical tasks, the completed share reached the
// success threshold. The planner and the aggregator apply this one rule.
func (w *Workflow) ReadyHolds(completed, critDone, critical int) bool {
	if critical > 0 {
		return critDone == critical
	}
	total := w.Counts.Total
	return total > 0 && float64(completed)/float64(total)+1e-9 >= w.SuccessThreshold
}
