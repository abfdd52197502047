package planner

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
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

// PlannedTask is one task of a plan.
type PlannedTask struct {
	ID          string
	Step        string
	Index       int
	Chunks      int
	Type        string
	Priority    int
	Input       json.RawMessage
	Deps        []int // indices of the tasks it waits for
	Dependents  []int // indices of the tasks waiting for it
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
	// Key (expanded from this task's input), Limit, Rate and Burst are the
	// step's synchronisation points (events.Task carries them).
	Key   string
	Limit int
	Rate  string
	Burst int
}

// Plan is a job decomposed into tasks.
type Plan struct {
	Tasks   []PlannedTask
	ByID    map[string]int
	Collect []string // steps whose results form the output
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
	p := &Plan{ByID: map[string]int{}}
	first := make([][]int, len(job.Steps)) // task indices of each step
	for i, s := range job.Steps {
		f := fmt.Sprintf("steps[%d]", i)
		inputs, err := stepInputs(ctx, s, f, decomposers)
		if err != nil {
			return nil, err
		}
		if len(p.Tasks)+len(inputs) > maxTasks {
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
		for k, in := range inputs {
			id := s.ID
			if len(inputs) > 1 || s.Split > 0 || s.Decompose != "" {
				id = fmt.Sprintf("%s-%d", s.ID, k)
			}
			if !events.ValidToken(id) {
				return nil, &events.ValidationError{Field: f + ".id", Reason: fmt.Sprintf("task id %q is too long; shorten the step id", id)}
			}
			if _, dup := p.ByID[id]; dup {
				return nil, &events.ValidationError{Field: f + ".id", Reason: fmt.Sprintf("task id %q is also the id of another step's task; rename step %q", id, s.ID)}
			}
			p.ByID[id] = len(p.Tasks)
			first[i] = append(first[i], len(p.Tasks))
			p.Tasks = append(p.Tasks, PlannedTask{
				ID: id, Step: s.ID, Index: k, Chunks: len(inputs), Type: typ, Priority: prio, Input: in,
				MaxAttempts: retries + 1,
				Backoff:     orDefault(s.Backoff.D(), events.DefaultBackoff),
				MaxBackoff:  orDefault(s.MaxBackoff.D(), events.DefaultMaxBackoff),
				Timeout:     orDefault(s.Timeout.D(), events.DefaultTimeout),
				Fallback:    fallback, Critical: s.Critical, Depth: depth[i],
				Rate: s.Rate, Burst: s.Burst,
				Requires: requires, CPUMilli: res.CPUMilli(), Memory: int64(res.Memory),
			})
			if keyT != nil {
				pt := &p.Tasks[len(p.Tasks)-1]
				if pt.Key, err = keyT.Expand(in); err != nil {
					return nil, &events.ValidationError{Field: f + ".concurrency.key", Reason: fmt.Sprintf("task %s: %v", id, err)}
				}
				pt.Limit = s.Concurrency.Limit
			}
		}
	}
	for i, s := range job.Steps {
		for k, dep := range s.After {
			if slices.Contains(s.After[:k], dep) {
				continue // listed twice: still one dependency
			}
			for _, t := range first[i] {
				for _, d := range first[stepIndex[dep]] {
					p.Tasks[t].Deps = append(p.Tasks[t].Deps, d)
					p.Tasks[d].Dependents = append(p.Tasks[d].Dependents, t)
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

func stepInputs(ctx context.Context, s events.Step, field string, decomposers map[string]Decomposer) ([]json.RawMessage, error) {
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
	return inputs, nil
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
