package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"time"
)

// Job is what a user submits: a declarative list of steps. A step runs as one
// task, or as one task per chunk of its input when Split is set; After makes
// the steps a DAG. See the README's job specification for every field.
type Job struct {
	// ID, when set, becomes the workflow id: submitting the same job id twice
	// runs it once.
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
	// Steps are the work; at least one.
	Steps []Step `json:"steps"`
	// MaxParallel bounds how many tasks of this workflow are queued or
	// running at once; 0 means no bound.
	MaxParallel int `json:"max_parallel,omitempty"`
	// SuccessThreshold is the fraction of tasks that must complete for the
	// output to be "partial" rather than "failed"; default 1.
	SuccessThreshold *float64 `json:"success_threshold,omitempty"`
	// Aggregate says how results become the output.
	Aggregate Aggregate `json:"aggregate,omitzero"`
	// Deadline bounds the workflow's life from its submission: once it
	// passes, every unfinished task is cancelled, and the output says so.
	// 0: none.
	Deadline Duration `json:"deadline,omitempty"`
	// Collect is the collection mode: CollectStream (default),
	// CollectBatch or CollectHybrid.
	Collect string `json:"collect,omitempty"`
	// StopWhen ends the workflow early once it holds.
	StopWhen *StopWhen `json:"stop_when,omitempty"`
	// OnThresholdMissed retries failed tasks and escalates when the
	// success threshold is missed.
	OnThresholdMissed *ThresholdPolicy `json:"on_threshold_missed,omitempty"`
}

// Step is one kind of work in a job.
type Step struct {
	ID    string          `json:"id"`
	Type  string          `json:"type"`
	Input json.RawMessage `json:"input,omitempty"`
	// Split cuts a list input into lists of Split items, or a text input into
	// pieces of Split words (or lines, with SplitBy "lines"): one task each.
	// With SplitBy "range" the input is {"from": A, "count": N} (from
	// defaults to 0): the list of integers A..A+N-1, written in a few
	// bytes, so a job of a million tasks fits a small document.
	Split   int    `json:"split,omitempty"`
	SplitBy string `json:"split_by,omitempty"`
	// Decompose names a decomposer registered in the planner by a Go
	// program; it replaces Split.
	Decompose string `json:"decompose,omitempty"`
	// After lists steps that must finish first; their results reach this
	// step's tasks as dependencies.
	After    []string `json:"after,omitempty"`
	Priority int      `json:"priority,omitempty"` // 1 (first) .. 5; default 3
	// Retries is how many times a failed task is tried again; default 2.
	Retries    *int     `json:"retries,omitempty"`
	Backoff    Duration `json:"backoff,omitzero"`     // first retry delay; default 200ms, doubling
	MaxBackoff Duration `json:"max_backoff,omitzero"` // default 30s
	Fallback   string   `json:"fallback,omitempty"`   // type that takes over when retries run out
	Timeout    Duration `json:"timeout,omitzero"`     // per attempt; default 5m
	Critical   bool     `json:"critical,omitempty"`   // its failure fails the workflow
	// Concurrency bounds how many of the tasks holding its key run at
	// once, system-wide, across workflows and agents (a lock with limit 1).
	Concurrency *Concurrency `json:"concurrency,omitempty"`
	// Rate bounds how fast tasks start, system-wide: "20/s", "300/m",
	// "1000/h", per concurrency key when the step has one, else per type.
	Rate string `json:"rate,omitempty"`
	// Burst is how many tasks may start at once after an idle spell; default 1.
	Burst int `json:"burst,omitempty"`
	// Requires lists capabilities an agent must advertise to run the
	// step's tasks (at most MaxCapabilities).
	Requires []string `json:"requires,omitempty"`
	// Resources is what one task of the step needs of an agent's declared
	// capacity.
	Resources *Resources `json:"resources,omitempty"`
}

// Aggregation strategies.
const (
	StrategyMerge     = "merge"     // concatenate, optionally dedupe and sort
	StrategyReduce    = "reduce"    // fold one numeric field: sum, avg, min, max, count
	StrategyTransform = "transform" // select and rename fields of each item
)

// Reduce operations.
var ReduceOps = []string{"sum", "avg", "min", "max", "count"}

// Aggregate is the job-level recipe for the output.
type Aggregate struct {
	Strategy string `json:"strategy,omitempty"` // merge (default) | reduce | transform
	// Steps whose results form the output; default: the steps no other step
	// waits for.
	Steps    []string `json:"steps,omitempty"`
	DedupeBy string   `json:"dedupe_by,omitempty"` // merge: field that identifies an item ("." for the whole item)
	SortBy   string   `json:"sort_by,omitempty"`   // merge: field to sort items by
	Desc     bool     `json:"desc,omitempty"`      // merge: sort descending
	Field    string   `json:"field,omitempty"`     // reduce: numeric field ("." for the item itself)
	Op       string   `json:"op,omitempty"`        // reduce: sum | avg | min | max | count
	// Select maps output field → input field, for transform.
	Select map[string]string `json:"select,omitempty"`
	// Compute maps output field → expression over the item, for transform
	// (see package expression).
	Compute map[string]string `json:"compute,omitempty"`
	// Fields, when set, makes the output an object of named fields, each
	// aggregated on its own; it replaces the strategy and its options.
	Fields map[string]NamedField `json:"fields,omitempty"`
	// Fallback, when set, stands in for the data of each failed task (the
	// task is still listed as missing). {"interpolate": "mean" | "median" |
	// "previous"} computes the stand-in from the completed tasks instead.
	Fallback json.RawMessage `json:"fallback,omitempty"`
}

// Duration is a time.Duration written in JSON as "250ms" or "1m30s", or as a
// number of milliseconds.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes the duration as a string such as "1.5s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON accepts "1.5s" or a number of milliseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil // as encoding/json does for a missing value
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: want a form like \"250ms\" or \"2s\"", Short(s))
		}
		*d = Duration(v)
		return nil
	}
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil {
		return fmt.Errorf("duration: want a string like \"2s\" or a number of milliseconds")
	}
	// Converting a float out of int64's range gives what the platform
	// gives (a negative number on amd64), so refuse it here.
	ns := ms * float64(time.Millisecond)
	if ns >= math.MaxInt64 || ns < math.MinInt64 {
		return fmt.Errorf("duration %v ms: out of range", ms)
	}
	*d = Duration(ns)
	return nil
}

// SplitRange is the split_by of an input that is a range of integers.
const SplitRange = "range"

// Limits bound what a job may ask for. The zero value means the defaults.
type Limits struct {
	MaxBytes int // size of the job document; default 1 MiB
	MaxTasks int // tasks after splitting; checked by the planner; default 1,000,000
}

// Defaults for Limits and for steps.
const (
	DefaultMaxJobBytes = 1 << 20
	// MaxNameBytes bounds a job's name: it is shown in every status reply
	// and on the dashboard, so it must stay small.
	MaxNameBytes    = 256
	DefaultMaxTasks = 1_000_000
	// MaxTasksCeiling bounds what a deployment may raise MaxTasks to: a
	// planner keeps about 50 bytes per task of an open job, an aggregator 12.
	MaxTasksCeiling   = 10_000_000
	DefaultRetries    = 2
	DefaultBackoff    = 200 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	DefaultTimeout    = 5 * time.Minute
	MaxRetries        = 100
)

// WithDefaults fills zero fields.
func (l Limits) WithDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxJobBytes
	}
	if l.MaxTasks <= 0 {
		l.MaxTasks = DefaultMaxTasks
	}
	return l
}

// ParseJob decodes and validates a JSON job. Every error it returns is a
// *ValidationError naming the field at fault.
func ParseJob(data []byte, lim Limits) (*Job, error) {
	lim = lim.WithDefaults()
	if len(data) > lim.MaxBytes {
		return nil, invalid("", "job is %d bytes, more than the limit of %d", len(data), lim.MaxBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, invalid("", "empty document: want a JSON object with \"steps\"")
	}
	// Decode the envelope first and each step and the aggregate on their
	// own, so that an unknown field is reported with the object it is in.
	var env struct {
		Job
		Steps             []json.RawMessage `json:"steps"`
		Aggregate         json.RawMessage   `json:"aggregate"`
		StopWhen          json.RawMessage   `json:"stop_when"`
		OnThresholdMissed json.RawMessage   `json:"on_threshold_missed"`
	}
	if err := strictJSON(data, &env); err != nil {
		ve := jsonError("", err)
		// encoding/json names the fields of the embedded Job "Job.<name>".
		ve.Field = strings.TrimPrefix(ve.Field, "Job.")
		return nil, ve
	}
	job := env.Job
	job.Steps = make([]Step, len(env.Steps))
	for i, raw := range env.Steps {
		// The concurrency object is decoded on its own too, so that its
		// errors name it.
		var se struct {
			Step
			Concurrency json.RawMessage `json:"concurrency"`
		}
		f := fmt.Sprintf("steps[%d]", i)
		if err := strictJSON(raw, &se); err != nil {
			ve := jsonError(f, err)
			ve.Field = strings.Replace(ve.Field, "Step.", "", 1)
			return nil, ve
		}
		job.Steps[i] = se.Step
		if len(se.Concurrency) > 0 && string(se.Concurrency) != "null" {
			var c Concurrency
			if err := strictJSON(se.Concurrency, &c); err != nil {
				return nil, jsonError(f+".concurrency", err)
			}
			job.Steps[i].Concurrency = &c
		}
	}
	if len(env.Aggregate) > 0 {
		if err := parseAggregate(env.Aggregate, &job.Aggregate); err != nil {
			return nil, err
		}
	}
	if err := parseFinish(&job, env.StopWhen, env.OnThresholdMissed); err != nil {
		return nil, err
	}
	if err := job.Validate(); err != nil {
		return nil, err
	}
	return &job, nil
}

func strictJSON(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON object")
	}
	return nil
}

func jsonError(field string, err error) *ValidationError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var inner *ValidationError
	switch {
	case errors.As(err, &inner): // from a field's own decoder (Resources)
		f := inner.Field
		if field != "" {
			f = field + "." + f
		}
		return &ValidationError{Field: f, Reason: inner.Reason}
	case errors.As(err, &syn):
		return invalid(field, "malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		f := typ.Field
		if field != "" && f != "" {
			f = field + "." + f
		} else if f == "" {
			f = field
		}
		want := typ.Type.String()
		if typ.Type.Kind() == reflect.Struct {
			want = "a JSON object" // not the name of a Go type
		}
		return invalid(f, "want %s, got JSON %s", want, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// The name is someone's input: echoed bounded (Short), however
		// long, and whatever its bytes (the decoder writes each invalid
		// one as three).
		name := Short(strings.TrimPrefix(err.Error(), "json: unknown field "))
		f := strings.Trim(name, `"`)
		if field != "" {
			f = field + "." + f
		}
		return invalid(f, "unknown field %s", name)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return invalid(field, "malformed JSON: document ends early")
	default:
		return invalid(field, "%v", err)
	}
}

// Validate checks a job built in Go the same way ParseJob checks JSON.
func (j *Job) Validate() error {
	if len(j.Name) > MaxNameBytes {
		return invalid("name", "%d bytes, more than the limit of %d", len(j.Name), MaxNameBytes)
	}
	if j.ID != "" && !ValidToken(j.ID) {
		return invalid("id", "%q: use 1-64 letters, digits, '-' or '_'", j.ID)
	}
	if len(j.Steps) == 0 {
		return invalid("steps", "a job needs at least one step")
	}
	if j.Deadline < 0 {
		return invalid("deadline", "must not be negative")
	}
	if j.MaxParallel < 0 {
		return invalid("max_parallel", "must not be negative")
	}
	if t := j.SuccessThreshold; t != nil && (*t < 0 || *t > 1) {
		return invalid("success_threshold", "%v is not between 0 and 1", *t)
	}
	if err := j.validateFinish(); err != nil {
		return err
	}
	index := make(map[string]int, len(j.Steps))
	for i := range j.Steps {
		s := &j.Steps[i]
		f := fmt.Sprintf("steps[%d]", i)
		switch {
		case s.ID == "":
			return invalid(f+".id", "missing: every step needs an id")
		case !ValidToken(s.ID):
			return invalid(f+".id", "%q: use 1-64 letters, digits, '-' or '_'", s.ID)
		case s.Type == "":
			return invalid(f+".type", "missing: say which agent type runs step %q", s.ID)
		case !ValidToken(s.Type):
			return invalid(f+".type", "%q: use 1-64 letters, digits, '-' or '_'", s.Type)
		case s.Priority != 0 && (s.Priority < PriorityHighest || s.Priority > PriorityLowest):
			return invalid(f+".priority", "%d is out of range %d (first) to %d (last)", s.Priority, PriorityHighest, PriorityLowest)
		case s.Retries != nil && (*s.Retries < 0 || *s.Retries > MaxRetries):
			return invalid(f+".retries", "%d is out of range 0..%d", *s.Retries, MaxRetries)
		case s.Backoff < 0 || s.MaxBackoff < 0 || s.Timeout < 0:
			return invalid(f, "backoff, max_backoff and timeout must not be negative")
		case s.Fallback != "" && !ValidToken(s.Fallback):
			return invalid(f+".fallback", "%q: use 1-64 letters, digits, '-' or '_'", s.Fallback)
		case s.Fallback != "" && s.Fallback == s.Type:
			return invalid(f+".fallback", "same as the step's type %q: a fallback must be another type", s.Type)
		case s.Decompose != "" && s.Split > 0:
			return invalid(f+".decompose", "use either split or decompose, not both")
		case s.Decompose != "" && !ValidToken(s.Decompose):
			return invalid(f+".decompose", "%q: use 1-64 letters, digits, '-' or '_'", s.Decompose)
		case s.Split < 0:
			return invalid(f+".split", "must not be negative")
		case s.SplitBy != "" && s.SplitBy != "words" && s.SplitBy != "lines" && s.SplitBy != SplitRange:
			return invalid(f+".split_by", "%q: want \"words\", \"lines\" or \"range\"", s.SplitBy)
		case s.SplitBy == SplitRange && s.Split == 0:
			return invalid(f+".split", "split_by \"range\" needs a chunk size")
		case len(s.Input) > 0 && !json.Valid(s.Input):
			return invalid(f+".input", "not valid JSON")
		}
		if err := s.validateSync(f); err != nil {
			return err
		}
		if err := CheckCapabilities(f+".requires", s.Requires); err != nil {
			return err
		}
		if s.Resources != nil {
			if err := s.Resources.validate(f + ".resources"); err != nil {
				return err
			}
		}
		switch {
		case s.Split > 0 && s.SplitBy == SplitRange:
			if firstByte(s.Input) != '{' {
				return invalid(f+".input", "split_by \"range\" splits {\"from\": A, \"count\": N}")
			}
		case s.Split > 0:
			switch firstByte(s.Input) {
			case '[', '"':
			default:
				return invalid(f+".split", "can only split a list or a text input")
			}
		}
		if _, dup := index[s.ID]; dup {
			return invalid(f+".id", "%q is used by another step", s.ID)
		}
		index[s.ID] = i
	}
	for i, s := range j.Steps {
		for k, dep := range s.After {
			if _, ok := index[dep]; !ok {
				return invalid(fmt.Sprintf("steps[%d].after[%d]", i, k), "no step is called %q", dep)
			}
			if dep == s.ID {
				return invalid(fmt.Sprintf("steps[%d].after[%d]", i, k), "step %q waits for itself", dep)
			}
		}
	}
	if cycle := findCycle(j.Steps, index); cycle != nil {
		return invalid("steps", "dependency cycle: %s", strings.Join(cycle, " → "))
	}
	return j.Aggregate.validate(index)
}

func firstByte(raw json.RawMessage) byte {
	b := bytes.TrimSpace(raw)
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// findCycle returns the steps of one dependency cycle, first step repeated at
// the end, or nil.
func findCycle(steps []Step, index map[string]int) []string {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(steps))
	var stack []string
	var visit func(i int) []string
	visit = func(i int) []string {
		color[i] = grey
		stack = append(stack, steps[i].ID)
		for _, dep := range steps[i].After {
			k := index[dep]
			switch color[k] {
			case grey:
				for p, id := range stack {
					if id == dep {
						return append(append([]string{}, stack[p:]...), dep)
					}
				}
			case white:
				if c := visit(k); c != nil {
					return c
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[i] = black
		return nil
	}
	for i := range steps {
		if color[i] == white {
			if c := visit(i); c != nil {
				return c
			}
		}
	}
	return nil
}

func (a *Aggregate) validate(index map[string]int) error {
	for k, s := range a.Steps {
		if _, ok := index[s]; !ok {
			return invalid(fmt.Sprintf("aggregate.steps[%d]", k), "no step is called %q", s)
		}
	}
	if len(a.Fallback) > 0 && !json.Valid(a.Fallback) {
		return invalid("aggregate.fallback", "not valid JSON")
	}
	if err := a.validateFallback(); err != nil {
		return err
	}
	if err := validateCompute("aggregate", a.Compute); err != nil {
		return err
	}
	if a.Fields != nil { // the output: the strategy and its options are not used
		return a.validateFields()
	}
	switch a.Strategy {
	case "", StrategyMerge:
	case StrategyReduce:
		if a.Op == "" {
			return invalid("aggregate.op", "missing: reduce needs one of %s", strings.Join(ReduceOps, ", "))
		}
		ok := false
		for _, op := range ReduceOps {
			ok = ok || op == a.Op
		}
		if !ok {
			return invalid("aggregate.op", "%q: want one of %s", a.Op, strings.Join(ReduceOps, ", "))
		}
		if a.Field == "" && a.Op != "count" {
			return invalid("aggregate.field", "missing: which field to %s (\".\" for the value itself)", a.Op)
		}
	case StrategyTransform:
		if len(a.Select) == 0 && len(a.Compute) == 0 {
			return invalid("aggregate.select", "missing: transform needs output → input field names")
		}
	default:
		return invalid("aggregate.strategy", "%q: want merge, reduce or transform", a.Strategy)
	}
	return nil
}

// Threshold is the success threshold with its default.
func (j *Job) Threshold() float64 {
	if j.SuccessThreshold == nil {
		return 1
	}
	return *j.SuccessThreshold
}
