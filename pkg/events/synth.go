package events

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/baton-dev/baton/pkg/expression"
)

// NamedField is one field of an output made of named fields
// (Aggregate.Fields): the items of the collected results aggregated on
// their own, by one of three kinds chosen by what is set.
//
//   - Expr: an expression over every item ("items") and the values of the
//     other, non-expression fields ("fields").
//   - Op (strategy "reduce"): a number folded from Field of each item, as
//     the reduce strategy does; the field's value is the number alone.
//   - otherwise (strategy "merge", the default, or "transform"): the items,
//     transformed, deduplicated and sorted as the strategies of the same
//     names do; then, when Field is set, each item's Field (items without
//     it are left out); then, when Join is set, the texts among them joined
//     into one text with Join between them.
type NamedField struct {
	Strategy string            `json:"strategy,omitempty"`
	Field    string            `json:"field,omitempty"`
	Op       string            `json:"op,omitempty"`
	DedupeBy string            `json:"dedupe_by,omitempty"`
	SortBy   string            `json:"sort_by,omitempty"`
	Desc     bool              `json:"desc,omitempty"`
	Select   map[string]string `json:"select,omitempty"`
	Compute  map[string]string `json:"compute,omitempty"`
	Join     *string           `json:"join,omitempty"`
	Expr     string            `json:"expr,omitempty"`
}

// Interpolation methods for Aggregate.Fallback.
const (
	InterpolateMean     = "mean"
	InterpolateMedian   = "median"
	InterpolatePrevious = "previous"
)

// Bounds of the synthesis options.
const (
	MaxNamedFields = 32 // entries in aggregate.fields
	MaxComputed    = 32 // entries in a compute map
	MaxJoinBytes   = 256
)

// Interpolation returns the interpolation method the fallback asks for, or
// "" when the fallback is a literal value (or absent). A fallback is an
// interpolation when it is a JSON object whose only key is "interpolate".
func (a Aggregate) Interpolation() string {
	m, ok := a.interpolation()
	if !ok {
		return ""
	}
	s, _ := m.(string)
	return s
}

// interpolation returns the value of the fallback's "interpolate" key when
// the fallback is an object with that key alone.
func (a Aggregate) interpolation() (any, bool) {
	if firstByte(a.Fallback) != '{' {
		return nil, false
	}
	var m map[string]any
	if err := json.Unmarshal(a.Fallback, &m); err != nil || len(m) != 1 {
		return nil, false
	}
	v, ok := m["interpolate"]
	return v, ok
}

// NeedsItems reports whether the output needs the data of every collected
// result kept until the end: named fields, computed fields, interpolation.
func (a Aggregate) NeedsItems() bool {
	return a.Fields != nil || a.Strategy == StrategyTransform && len(a.Compute) > 0 || a.Interpolation() != ""
}

// parseAggregate decodes the aggregate strictly, each named field on its
// own, so that an error names the field it is in.
func parseAggregate(raw json.RawMessage, a *Aggregate) error {
	var env struct {
		Aggregate
		Fields map[string]json.RawMessage `json:"fields"`
	}
	if err := strictJSON(raw, &env); err != nil {
		ve := jsonError("aggregate", err)
		ve.Field = strings.Replace(ve.Field, "aggregate.Aggregate.", "aggregate.", 1)
		return ve
	}
	*a = env.Aggregate
	// An empty map is no map: written back, it would be left out.
	a.Select, a.Compute = noEmpty(a.Select), noEmpty(a.Compute)
	if env.Fields == nil {
		return nil
	}
	if len(env.Fields) > MaxNamedFields {
		return invalid("aggregate.fields", "%d fields, more than the limit of %d", len(env.Fields), MaxNamedFields)
	}
	a.Fields = make(map[string]NamedField, len(env.Fields))
	for _, name := range sortedKeys(env.Fields) {
		if !ValidToken(name) {
			return invalid("aggregate.fields", "%q: a field name uses 1-64 letters, digits, '-' or '_'", name)
		}
		var f NamedField
		if err := strictJSON(env.Fields[name], &f); err != nil {
			return jsonError("aggregate.fields."+name, err)
		}
		f.Select, f.Compute = noEmpty(f.Select), noEmpty(f.Compute)
		a.Fields[name] = f
	}
	return nil
}

func noEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (a *Aggregate) validateFallback() error {
	v, ok := a.interpolation()
	if !ok {
		return nil
	}
	switch v {
	case InterpolateMean, InterpolateMedian, InterpolatePrevious:
		return nil
	}
	b, _ := json.Marshal(v)
	return invalid("aggregate.fallback.interpolate", "%s: want %q, %q or %q", Short(string(b)),
		InterpolateMean, InterpolateMedian, InterpolatePrevious)
}

func (a *Aggregate) validateFields() error {
	if len(a.Fields) == 0 {
		return invalid("aggregate.fields", "empty: name at least one field, or leave fields out")
	}
	if len(a.Fields) > MaxNamedFields {
		return invalid("aggregate.fields", "%d fields, more than the limit of %d", len(a.Fields), MaxNamedFields)
	}
	for _, name := range sortedKeys(a.Fields) {
		if !ValidToken(name) {
			return invalid("aggregate.fields", "%q: a field name uses 1-64 letters, digits, '-' or '_'", name)
		}
		f := a.Fields[name]
		if err := f.validate("aggregate.fields." + name); err != nil {
			return err
		}
	}
	return nil
}

func (f *NamedField) validate(path string) error {
	shaping := f.DedupeBy != "" || f.SortBy != "" || f.Desc || f.Select != nil || f.Compute != nil || f.Join != nil
	switch {
	case f.Expr != "":
		if f.Strategy != "" || f.Op != "" || f.Field != "" || shaping {
			return invalid(path+".expr", "an expression field takes nothing else: no strategy, op, field, select, compute, join, dedupe_by, sort_by or desc")
		}
		return compileError(path+".expr", f.Expr, expression.Fields)
	case f.Op != "" || f.Strategy == StrategyReduce:
		if f.Strategy != "" && f.Strategy != StrategyReduce {
			return invalid(path+".op", "an op makes a reduce field, but strategy is %q", f.Strategy)
		}
		if f.Op == "" {
			return invalid(path+".op", "missing: reduce needs one of %s", strings.Join(ReduceOps, ", "))
		}
		if !slices.Contains(ReduceOps, f.Op) {
			return invalid(path+".op", "%q: want one of %s", f.Op, strings.Join(ReduceOps, ", "))
		}
		if f.Field == "" && f.Op != "count" {
			return invalid(path+".field", "missing: which field to %s (\".\" for the value itself)", f.Op)
		}
		if shaping {
			return invalid(path, "a reduce field takes only op and field")
		}
		return nil
	case f.Strategy == "" || f.Strategy == StrategyMerge:
		if f.Select != nil || f.Compute != nil {
			return invalid(path+".strategy", "select and compute need strategy \"transform\"")
		}
	case f.Strategy == StrategyTransform:
		if len(f.Select) == 0 && len(f.Compute) == 0 {
			return invalid(path+".select", "missing: transform needs select (output → input field names) or compute")
		}
	default:
		return invalid(path+".strategy", "%q: want merge, reduce or transform", f.Strategy)
	}
	if f.Join != nil && len(*f.Join) > MaxJoinBytes {
		return invalid(path+".join", "%d bytes, more than the limit of %d", len(*f.Join), MaxJoinBytes)
	}
	return validateCompute(path, f.Compute)
}

// validateCompute checks a compute map: bounded, every expression
// compiles for one item.
func validateCompute(path string, compute map[string]string) error {
	if len(compute) > MaxComputed {
		return invalid(path+".compute", "%d fields, more than the limit of %d", len(compute), MaxComputed)
	}
	for _, name := range sortedKeys(compute) {
		if name == "" || len(name) > 64 {
			return invalid(path+".compute", "%q: a computed field's name has 1-64 bytes", name)
		}
		if err := compileError(path+".compute."+name, compute[name], expression.Item); err != nil {
			return err
		}
	}
	return nil
}

// compileError compiles src and says, for field, why it does not compile.
func compileError(field, src string, env expression.Env) error {
	if _, err := expression.Compile(src, env); err != nil {
		return &ValidationError{Field: field, Reason: Clip(err.Error(), 240)}
	}
	return nil
}
