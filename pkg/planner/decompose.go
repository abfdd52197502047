package planner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/registry"
)

// Decomposer turns one step into the inputs of its tasks: one task per
// returned input. A program registers its own with Config.Decomposers and a
// step picks it with "decompose": "<name>". It must be deterministic: the
// planner decomposes a job again after a restart and relies on the same tasks.
type Decomposer interface {
	Decompose(ctx context.Context, step events.Step) ([]json.RawMessage, error)
}

// DecomposerFunc adapts a function to Decomposer.
type DecomposerFunc func(ctx context.Context, step events.Step) ([]json.RawMessage, error)

// Decompose calls f.
func (f DecomposerFunc) Decompose(ctx context.Context, step events.Step) ([]json.RawMessage, error) {
	return f(ctx, step)
}

// DefaultRoutes maps the kinds of work named in a job to the agent types that
// do them: analysis goes to research agents, writing to content (write)
// agents, processing to data agents. A step whose type is not a route runs as
// that type.
var DefaultRoutes = map[string]string{
	"analysis":   "research",
	"writing":    "write",
	"processing": "data",
}

// StepPlan is what every task of a step shares. A million tasks of one
// step share one.
type StepPlan struct {
	Step        string
	Chunks      int // how many tasks the step has
	Type        string
	MaxAttempts int
	Backoff     time.Duration
	MaxBackoff  time.Duration
	Timeout     time.Duration
	Fallback    string
	Critical    bool
	// Requires, CPUMilli and Memory are the step's capabilities and
	// resources; a fallback round keeps them.
	Requires []string
	CPUMilli int64
	Memory   int64
	// Depth is the number of steps from this task to the end of the longest
	// path through the DAG, itself included: the critical path goes first.
	Depth int
	// Limit, Rate and Burst are the step's synchronisation points (with
	// each task's Key, events.Task carries them).
	Limit int
	Rate  string
	Burst int
	// First is the index in Plan.Tasks of the step's first task; Whole
	// says the step is one task whose id is the step's (not "<step>-0").
	First int
	Whole bool
	// inputs and keys are its tasks' inputs and expanded concurrency keys
	// (keys only with a key template), by chunk.
	inputs inputs
	keys   []string
}

// PlannedTask is one task of a plan: its step's shared plan and what is
// its own, 24 bytes. Its id, input and key are made up when asked for.
type PlannedTask struct {
	*StepPlan
	Index    int // chunk number within its step
	Priority int // its step's, unless reprioritized
}

// ID is the task's id: its step's for a whole step, else "<step>-<index>".
func (t *PlannedTask) ID() string {
	if t.Whole {
		return t.Step
	}
	return t.Step + "-" + strconv.Itoa(t.Index)
}

// Input is the task's input.
func (t *PlannedTask) Input() json.RawMessage { return t.inputs.At(t.Index) }

// Key is the step's concurrency key expanded from the task's input.
func (t *PlannedTask) Key() string {
	if t.keys == nil {
		return ""
	}
	return t.keys[t.Index]
}

// Plan is a job decomposed into tasks.
type Plan struct {
	Tasks   []PlannedTask
	Collect []string             // steps whose results form the output
	Steps   map[string]*StepPlan // by step id
	// deps and dependents hold, per task, the indices of the tasks it
	// waits for and of those waiting for it; nil when no step waits for
	// another (most large jobs), so they cost nothing there.
	deps, dependents [][]int
}

// Deps are the indices of the tasks task i waits for.
func (p *Plan) Deps(i int) []int {
	if p.deps == nil {
		return nil
	}
	return p.deps[i]
}

// Dependents are the indices of the tasks waiting for task i.
func (p *Plan) Dependents(i int) []int {
	if p.dependents == nil {
		return nil
	}
	return p.dependents[i]
}

// Index finds the task whose id is id: a whole step's id, or
// "<step>-<chunk>". There is no map of every id: the id says where it is.
func (p *Plan) Index(id string) (int, bool) {
	if sp := p.Steps[id]; sp != nil && sp.Whole {
		return sp.First, true
	}
	cut := strings.LastIndexByte(id, '-')
	if cut < 0 {
		return 0, false
	}
	sp := p.Steps[id[:cut]]
	if sp == nil || sp.Whole {
		return 0, false
	}
	k, err := strconv.Atoi(id[cut+1:])
	if err != nil || k < 0 || k >= sp.Chunks || strconv.Itoa(k) != id[cut+1:] {
		return 0, false // "s-07" is not "s-7"
	}
	return sp.First + k, true
}

// Lanes lists the lane subjects' type.priority pairs the plan uses, sorted.
func (p *Plan) Lanes() []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range p.Tasks {
		k := t.Type + "." + events.LaneToken(t.Priority, t.Requires)
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Needs lists the distinct demands of the plan's tasks that require
// capabilities or resources (their type and their fallback type), in
// plan order, at most events.MaxNeeds (the workflow record must stay
// small): what submit and status check against the live agents.
func (p *Plan) Needs() []events.Need {
	var out []events.Need
	seen := map[string]bool{}
	for _, t := range p.Tasks {
		if len(t.Requires) == 0 && t.CPUMilli == 0 && t.Memory == 0 {
			continue
		}
		for _, typ := range []string{t.Type, t.Fallback} {
			n := events.Need{Type: typ, Requires: t.Requires, CPUMilli: t.CPUMilli, Memory: t.Memory}
			k := fmt.Sprint(n)
			if typ == "" || seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, n)
			if len(out) == events.MaxNeeds {
				return out
			}
		}
	}
	return out
}

// Unserved lists, sorted, the task types the plan needs (its types and
// fallback types) that none of the live agents serves.
func (p *Plan) Unserved(agents []events.AgentInfo) []string {
	served := registry.ServedTypes(agents)
	need := map[string]bool{}
	for _, t := range p.Tasks {
		need[t.Type] = true
		if t.Fallback != "" {
			need[t.Fallback] = true
		}
	}
	var out []string
	for t := range need {
		if !served[t] {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

// Decompose turns a validated job into a plan. Errors are *events.ValidationError.
func Decompose(ctx context.Context, job *events.Job, decomposers map[string]Decomposer, routes map[string]string, maxTasks int) (*Plan, error) {
	if maxTasks <= 0 {
		maxTasks = events.DefaultMaxTasks
	}
	stepIndex := make(map[string]int, len(job.Steps))
	for i, s := range job.Steps {
		stepIndex[s.ID] = i
	}
	depth := stepDepths(job.Steps, stepIndex)
	p := &Plan{Steps: make(map[string]*StepPlan, len(job.Steps))}
	for i, s := range job.Steps {
		f := fmt.Sprintf("steps[%d]", i)
		inputs, err := stepInputs(ctx, s, f, decomposers, maxTasks-len(p.Tasks))
		if err != nil {
			return nil, err
		}
		if len(p.Tasks)+inputs.Len() > maxTasks {
			return nil, &events.ValidationError{Field: f, Reason: fmt.Sprintf("the job would have more than %d tasks", maxTasks)}
		}
		typ := s.Type
		if r, ok := routes[typ]; ok {
			typ = r
		}
		fallback := s.Fallback
		if r, ok := routes[fallback]; ok {
			fallback = r
		}
		retries := events.DefaultRetries
		if s.Retries != nil {
			retries = *s.Retries
		}
		prio := s.Priority
		if prio == 0 {
			prio = events.PriorityDefault
		}
		var keyT *events.KeyTemplate
		if s.Concurrency != nil {
			if keyT, err = events.ParseKeyTemplate(s.Concurrency.Key); err != nil {
				return nil, &events.ValidationError{Field: f + ".concurrency.key", Reason: err.Error()}
			}
		}
		var requires []string
		if len(s.Requires) > 0 {
			requires = slices.Sorted(slices.Values(s.Requires))
		}
		var res events.Resources
		if s.Resources != nil {
			res = *s.Resources
		}
		var limit int
		if s.Concurrency != nil {
			limit = s.Concurrency.Limit
		}
		sp := &StepPlan{
			Step: s.ID, Chunks: inputs.Len(), Type: typ, MaxAttempts: retries + 1,
			Backoff:    orDefault(s.Backoff.D(), events.DefaultBackoff),
			MaxBackoff: orDefault(s.MaxBackoff.D(), events.DefaultMaxBackoff),
			Timeout:    orDefault(s.Timeout.D(), events.DefaultTimeout),
			Fallback:   fallback, Critical: s.Critical, Depth: depth[i],
			Rate: s.Rate, Burst: s.Burst, Limit: limit,
			Requires: requires, CPUMilli: res.CPUMilli(), Memory: int64(res.Memory),
			First: len(p.Tasks), Whole: !(inputs.Len() > 1 || s.Split > 0 || s.Decompose != ""),
			inputs: inputs,
		}
		p.Steps[s.ID] = sp
		last := PlannedTask{StepPlan: sp, Index: sp.Chunks - 1}
		if id := last.ID(); !events.ValidToken(id) {
			return nil, &events.ValidationError{Field: f + ".id", Reason: fmt.Sprintf("task id %q is too long; shorten the step id", id)}
		}
		if keyT != nil {
			sp.keys = make([]string, sp.Chunks)
			for k := range sp.keys {
				if sp.keys[k], err = keyT.Expand(inputs.At(k)); err != nil {
					t := PlannedTask{StepPlan: sp, Index: k}
					return nil, &events.ValidationError{Field: f + ".concurrency.key", Reason: fmt.Sprintf("task %s: %v", t.ID(), err)}
				}
			}
		}
		p.Tasks = slices.Grow(p.Tasks, sp.Chunks)
		for k := range sp.Chunks {
			p.Tasks = append(p.Tasks, PlannedTask{StepPlan: sp, Index: k, Priority: prio})
		}
	}
	// A whole step's id may be another step's task id ("a-1" beside a
	// step "a" of two tasks): Index could not tell them apart.
	for i, s := range job.Steps {
		if sp := p.Steps[s.ID]; sp.Whole {
			if cut := strings.LastIndexByte(s.ID, '-'); cut > 0 {
				if other := p.Steps[s.ID[:cut]]; other != nil && !other.Whole {
					if k, err := strconv.Atoi(s.ID[cut+1:]); err == nil && k >= 0 && k < other.Chunks && strconv.Itoa(k) == s.ID[cut+1:] {
						later := max(i, stepIndex[other.Step]) // the step that came second is renamed
						return nil, &events.ValidationError{Field: fmt.Sprintf("steps[%d].id", later),
							Reason: fmt.Sprintf("task id %q is also the id of another step's task; rename step %q", s.ID, job.Steps[later].ID)}
					}
				}
			}
		}
	}
	for _, s := range job.Steps {
		for k, dep := range s.After {
			if slices.Contains(s.After[:k], dep) {
				continue // listed twice: still one dependency
			}
			sp, dp := p.Steps[s.ID], p.Steps[dep]
			for t := sp.First; t < sp.First+sp.Chunks; t++ {
				for d := dp.First; d < dp.First+dp.Chunks; d++ {
					if p.deps == nil {
						p.deps, p.dependents = make([][]int, len(p.Tasks)), make([][]int, len(p.Tasks))
					}
					p.deps[t] = append(p.deps[t], d)
					p.dependents[d] = append(p.dependents[d], t)
				}
			}
		}
	}
	p.Collect = job.Aggregate.Steps
	if len(p.Collect) == 0 {
		p.Collect = sinks(job.Steps)
	}
	return p, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// sinks are the steps no other step waits for.
func sinks(steps []events.Step) []string {
	waited := map[string]bool{}
	for _, s := range steps {
		for _, d := range s.After {
			waited[d] = true
		}
	}
	var out []string
	for _, s := range steps {
		if !waited[s.ID] {
			out = append(out, s.ID)
		}
	}
	return out
}

// stepDepths returns, per step, the length of the longest chain of steps that
// starts with it (the job is known to be acyclic).
func stepDepths(steps []events.Step, index map[string]int) []int {
	dependents := make([][]int, len(steps))
	for i, s := range steps {
		for _, d := range s.After {
			dependents[index[d]] = append(dependents[index[d]], i)
		}
	}
	depth := make([]int, len(steps))
	var walk func(i int) int
	walk = func(i int) int {
		if depth[i] > 0 {
			return depth[i]
		}
		best := 0
		for _, k := range dependents[i] {
			best = max(best, walk(k))
		}
		depth[i] = best + 1
		return depth[i]
	}
	for i := range steps {
		walk(i)
	}
	return depth
}

func stepInputs(ctx context.Context, s events.Step, field string, decomposers map[string]Decomposer, room int) (inputs, error) {
	var inputs []json.RawMessage
	switch {
	case s.Decompose != "":
		d, ok := decomposers[s.Decompose]
		if !ok {
			return nil, &events.ValidationError{Field: field + ".decompose", Reason: fmt.Sprintf("no decomposer is registered as %q", s.Decompose)}
		}
		var err error
		if inputs, err = d.Decompose(ctx, s); err != nil {
			return nil, &events.ValidationError{Field: field + ".decompose", Reason: err.Error()}
		}
		for k, in := range inputs {
			if !json.Valid(in) {
				return nil, &events.ValidationError{Field: field + ".decompose", Reason: fmt.Sprintf("decomposer %q gave task %d an input that is not JSON", s.Decompose, k)}
			}
		}
	case s.Split > 0 && s.SplitBy == events.SplitRange:
		r, err := rangeOf(s.Input, s.Split, room)
		if err != nil {
			return nil, &events.ValidationError{Field: field + ".input", Reason: err.Error()}
		}
		return r, nil
	case s.Split > 0:
		var err error
		if inputs, err = Split(s.Input, s.Split, s.SplitBy); err != nil {
			return nil, &events.ValidationError{Field: field + ".input", Reason: err.Error()}
		}
	default:
		in := s.Input
		if len(in) == 0 {
			in = json.RawMessage("null")
		}
		inputs = []json.RawMessage{in}
	}
	if len(inputs) == 0 {
		return nil, &events.ValidationError{Field: field + ".input", Reason: fmt.Sprintf("step %q has nothing to do: its input splits into no tasks", s.ID)}
	}
	return listInputs(inputs), nil
}

// Split cuts a JSON list into lists of size items, or a JSON string into
// strings of size words (by "words", the default) or lines (by "lines").
func Split(input json.RawMessage, size int, by string) ([]json.RawMessage, error) {
	if size <= 0 {
		return nil, fmt.Errorf("cannot split into chunks of %d: the size must be at least 1", size)
	}
	switch firstByte(input) {
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(input, &items); err != nil {
			return nil, fmt.Errorf("cannot split: %v", err)
		}
		var out []json.RawMessage
		for i := 0; i < len(items); i += size {
			chunk, err := json.Marshal(items[i:min(i+size, len(items))])
			if err != nil {
				return nil, fmt.Errorf("cannot split: %v", err)
			}
			out = append(out, chunk)
		}
		return out, nil
	case '"':
		var text string
		if err := json.Unmarshal(input, &text); err != nil {
			return nil, fmt.Errorf("cannot split: %v", err)
		}
		var parts []string
		sep := " "
		if by == "lines" {
			sep = "\n"
			for _, l := range strings.Split(text, "\n") {
				if strings.TrimSpace(l) != "" {
					parts = append(parts, l)
				}
			}
		} else {
			parts = strings.Fields(text)
		}
		var out []json.RawMessage
		for i := 0; i < len(parts); i += size {
			chunk, _ := json.Marshal(strings.Join(parts[i:min(i+size, len(parts))], sep))
			out = append(out, chunk)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("can only split a list or a text input")
	}
}

// MaxRange bounds a range input's count (its numbers take at most 15
// bytes each: 150 MB in all), and MaxRangeFrom its start.
const (
	MaxRange     = 10_000_000
	MaxRangeFrom = 1 << 40
)

// SplitRange cuts a range input, {"from": A, "count": N}, into lists of
// size consecutive integers. A range that would make more than room tasks
// is refused before anything is made; the chunks share one buffer.
func SplitRange(input json.RawMessage, size, room int) ([]json.RawMessage, error) {
	r, err := rangeOf(input, size, room)
	if err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, r.Len())
	for k := range out {
		out[k] = r.At(k)
	}
	return out, nil
}

// inputs are a step's task inputs: a list, or a range made up on demand.
type inputs interface {
	Len() int
	At(k int) json.RawMessage
}

type listInputs []json.RawMessage

func (l listInputs) Len() int                 { return len(l) }
func (l listInputs) At(k int) json.RawMessage { return l[k] }

// rangeInputs are the chunks of a range input: no memory per task.
type rangeInputs struct {
	from, count int64
	size        int
}

func (r rangeInputs) Len() int { return int((r.count + int64(r.size) - 1) / int64(r.size)) }

// At is chunk k: "[from+k*size,…]".
func (r rangeInputs) At(k int) json.RawMessage {
	i := int64(k) * int64(r.size)
	end := min(i+int64(r.size), r.count)
	buf := make([]byte, 0, 2+16*(end-i))
	buf = append(buf, '[')
	for n := i; n < end; n++ {
		if n > i {
			buf = append(buf, ',')
		}
		buf = strconv.AppendInt(buf, r.from+n, 10)
	}
	return append(buf, ']')
}

func rangeOf(input json.RawMessage, size, room int) (rangeInputs, error) {
	var r struct {
		From  *int64 `json:"from"`
		Count *int64 `json:"count"`
	}
	d := json.NewDecoder(bytes.NewReader(input))
	d.DisallowUnknownFields()
	err := d.Decode(&r)
	if err == nil && len(bytes.Trim(input[d.InputOffset():], " \t\n\r")) > 0 {
		// More misses a stray '}' or ']', and TrimSpace would pass a '\f'
		// that JSON does not count as space
		err = errors.New("data after it")
	}
	if err != nil {
		return rangeInputs{}, fmt.Errorf("a range is {\"from\": A, \"count\": N}: %v", err)
	}
	from := int64(0)
	if r.From != nil {
		from = *r.From
	}
	switch {
	case size <= 0:
		return rangeInputs{}, fmt.Errorf("cannot split into chunks of %d: the size must be at least 1", size)
	case r.Count == nil || *r.Count < 1 || *r.Count > MaxRange:
		return rangeInputs{}, fmt.Errorf("a range needs a count from 1 to %d", MaxRange)
	case from < -MaxRangeFrom || from > MaxRangeFrom:
		return rangeInputs{}, fmt.Errorf("a range starts between %d and %d", -int64(MaxRangeFrom), int64(MaxRangeFrom))
	}
	ri := rangeInputs{from: from, count: *r.Count, size: size}
	if ri.Len() > room {
		return rangeInputs{}, fmt.Errorf("the range makes %d tasks: the job would have too many", ri.Len())
	}
	return ri, nil
}

func firstByte(raw json.RawMessage) byte {
	for _, b := range raw {
		switch b {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return b
	}
	return 0
}
