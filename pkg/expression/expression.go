package expression

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"github.com/expr-lang/expr/vm/runtime"
)

// Bounds of an expression.
const (
	// MaxLength bounds the text of an expression, in bytes.
	MaxLength = 1024
	// MaxNodes bounds the size of its syntax tree.
	MaxNodes = 200
	// MemoryBudget bounds one run: every loop iteration (map, filter, all,
	// reduce, …), every element of a range, list or map it builds costs one
	// unit.
	MemoryBudget = 10_000
	// MaxSteps bounds the loop iterations of one run: every evaluation of
	// the body of all, any, map, filter, reduce, … counts one.
	MaxSteps = 10_000
	// MaxRunTime bounds the time of one run: the loops stop after it (a
	// run without loops is bounded by MaxNodes and MaxInputBytes).
	MaxRunTime = 100 * time.Millisecond
	// MaxValueBytes bounds a text built by "+" and the JSON of a result.
	MaxValueBytes = 64 << 10
	// MaxValueItems bounds a list built by "+".
	MaxValueItems = 10_000
	// MaxInputBytes bounds the JSON of the item an expression reads.
	MaxInputBytes = 64 << 10
)

// Builtins are the functions an expression may call: those of expr whose
// cost is within the bounds above. Functions that build texts or lists from
// their input (upper, repeat, replace, join, split, concat, toJSON, …),
// those that sort (sort, sortBy, uniq) and those that read the clock are
// left out.
var Builtins = []string{
	"all", "none", "any", "one", "filter", "map", "find", "findIndex", "findLast", "findLastIndex",
	"count", "sum", "reduce", "len", "type",
	"abs", "ceil", "floor", "round", "int", "float", "max", "min", "mean", "median",
	"trim", "trimPrefix", "trimSuffix", "indexOf", "lastIndexOf", "hasPrefix", "hasSuffix",
	"first", "last", "get", "keys", "values", "reverse", "take",
}

// ErrCompile is wrapped by every Compile error, ErrRun by every Run error.
var (
	ErrCompile = errors.New("expression does not compile")
	ErrRun     = errors.New("expression failed")
)

// Env says which variables an expression sees.
type Env int

const (
	// Item expressions compute a field of one item: they see "item" (the
	// item: a number, text, boolean, null, list or object decoded from a
	// result's JSON) and "index" (its position among the items, from 0).
	Item Env = iota
	// Fields expressions compute a named output field: they see "items"
	// (every item of the collected results, in plan order) and "fields" (an
	// object holding the values of the named fields that are not
	// expressions).
	Fields
)

// ItemVars are the variables of an Item expression.
type ItemVars struct {
	Item  any `expr:"item"`
	Index int `expr:"index"`
}

// FieldVars are the variables of a Fields expression.
type FieldVars struct {
	Items  []any          `expr:"items"`
	Fields map[string]any `expr:"fields"`
}

// Error is a compile or run error with its position in the expression.
type Error struct {
	Line, Column int // from 1; 0 when unknown
	Message      string
	run          bool
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return e.Message
	}
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Message)
}

// Unwrap lets errors.Is(err, ErrCompile) or ErrRun hold.
func (e *Error) Unwrap() error {
	if e.run {
		return ErrRun
	}
	return ErrCompile
}

// Program is a compiled expression. Its runs take turns.
type Program struct {
	env Env
	p   *vm.Program
	mu  sync.Mutex
	run *runState // of the current run
}

// runState is what the loops of a run check.
type runState struct {
	steps    int
	deadline time.Time
}

// Names of the functions the compiler inserts: every "+" becomes a call of
// the bounded add, every loop body a call of tick, which counts it.
const (
	addName  = "_baton_plus"
	tickName = "_baton_loop"
)

// Compile checks and compiles src for env.
func Compile(src string, env Env) (*Program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &Error{Message: "empty expression"}
	}
	if len(src) > MaxLength {
		return nil, &Error{Message: fmt.Sprintf("%d bytes, more than the limit of %d", len(src), MaxLength)}
	}
	rs := &runState{}
	tick := func(args ...any) (any, error) {
		if len(args) != 1 {
			return nil, errors.New("loop: want one argument")
		}
		if rs.steps++; rs.steps > MaxSteps {
			return nil, fmt.Errorf("more than %d loop iterations", MaxSteps)
		}
		if time.Now().After(rs.deadline) {
			return nil, errors.New("out of time")
		}
		return args[0], nil
	}
	opts := []expr.Option{
		expr.MaxNodes(MaxNodes),
		expr.DisableAllBuiltins(),
		expr.Patch(boundPatch{}),
		expr.Function(addName, add),
		expr.Function(tickName, tick),
	}
	for _, b := range Builtins {
		opts = append(opts, expr.EnableBuiltin(b))
	}
	switch env {
	case Item:
		opts = append(opts, expr.Env(ItemVars{}))
	default:
		opts = append(opts, expr.Env(FieldVars{}))
	}
	p, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, positioned(err, false)
	}
	return &Program{env: env, p: p, run: rs}, nil
}

// positioned turns an expr error into an *Error.
func positioned(err error, run bool) *Error {
	var fe *file.Error
	if errors.As(err, &fe) {
		msg := strings.ReplaceAll(strings.ReplaceAll(fe.Message, addName, "+"), tickName, "loop")
		if fe.Line > 0 {
			return &Error{Line: fe.Line, Column: fe.Column + 1, Message: msg, run: run}
		}
		return &Error{Message: msg, run: run}
	}
	return &Error{Message: strings.ReplaceAll(strings.ReplaceAll(err.Error(), addName, "+"), tickName, "loop"), run: run}
}

// RunItem computes the value of an Item expression for one item. The value
// is made of what JSON decodes to: nil, bool, float64, string, []any and
// map[string]any. Its loops stop at deadline, or MaxRunTime from now if
// that is sooner.
func (p *Program) RunItem(item any, index int, deadline time.Time) (any, error) {
	if p.env != Item {
		return nil, &Error{Message: "not an item expression", run: true}
	}
	if n := sizeOf(item, MaxInputBytes+1); n > MaxInputBytes {
		return nil, &Error{Message: fmt.Sprintf("the item is more than %d bytes: too big for an expression", MaxInputBytes), run: true}
	}
	return p.exec(ItemVars{Item: item, Index: index}, deadline)
}

// RunFields computes the value of a Fields expression, as RunItem does.
func (p *Program) RunFields(items []any, fields map[string]any, deadline time.Time) (any, error) {
	if p.env != Fields {
		return nil, &Error{Message: "not a field expression", run: true}
	}
	if items == nil {
		items = []any{}
	}
	return p.exec(FieldVars{Items: items, Fields: fields}, deadline)
}

func (p *Program) exec(vars any, deadline time.Time) (any, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.run.steps = 0
	p.run.deadline = deadline
	if soon := time.Now().Add(MaxRunTime); deadline.IsZero() || soon.Before(deadline) {
		p.run.deadline = soon
	}
	machine := vm.VM{MemoryBudget: MemoryBudget}
	out, err := machine.Run(p.p, vars)
	if err != nil {
		return nil, positioned(err, true)
	}
	if n := sizeOf(out, MaxValueBytes+1); n > MaxValueBytes {
		return nil, &Error{Message: fmt.Sprintf("the value is more than %d bytes", MaxValueBytes), run: true}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, &Error{Message: "the value cannot be written as JSON: " + err.Error(), run: true}
	}
	if len(b) > MaxValueBytes { // escapes make JSON longer than sizeOf's estimate
		return nil, &Error{Message: fmt.Sprintf("the value is more than %d bytes", MaxValueBytes), run: true}
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, &Error{Message: "the value cannot be read back from JSON: " + err.Error(), run: true}
	}
	return v, nil
}

// boundPatch rewrites every "+" into a call of the bounded add, and wraps
// every loop body in a call of tick.
type boundPatch struct{}

func (boundPatch) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BinaryNode:
		if n.Operator == "+" {
			ast.Patch(node, &ast.CallNode{
				Callee:    &ast.IdentifierNode{Value: addName},
				Arguments: []ast.Node{n.Left, n.Right},
			})
		}
	case *ast.PredicateNode:
		if c, ok := n.Node.(*ast.CallNode); ok {
			if id, ok := c.Callee.(*ast.IdentifierNode); ok && id.Value == tickName {
				return // already wrapped
			}
		}
		n.Node = &ast.CallNode{Callee: &ast.IdentifierNode{Value: tickName}, Arguments: []ast.Node{n.Node}}
	}
}

// add is expr's "+", refusing texts and lists beyond the bounds: without it
// an expression that adds a value to itself in a loop doubles it each time.
func add(args ...any) (any, error) {
	if len(args) != 2 {
		return nil, errors.New("+: want two operands")
	}
	a, b := args[0], args[1]
	switch x := a.(type) {
	case string:
		if y, ok := b.(string); ok && len(x)+len(y) > MaxValueBytes {
			return nil, fmt.Errorf("text longer than %d bytes", MaxValueBytes)
		}
	case []any:
		if y, ok := b.([]any); ok && len(x)+len(y) > MaxValueItems {
			return nil, fmt.Errorf("list longer than %d items", MaxValueItems)
		}
		if y, ok := b.([]any); ok {
			return slices.Concat(x, y), nil
		}
	}
	return runtime.Add(a, b), nil
}

// sizeOf estimates the JSON size of v, stopping once it passes limit.
func sizeOf(v any, limit int) int {
	n := 0
	var walk func(r reflect.Value)
	walk = func(r reflect.Value) {
		if n > limit {
			return
		}
		switch r.Kind() {
		case reflect.Invalid:
			n += 4
		case reflect.Interface, reflect.Pointer:
			if r.IsNil() {
				n += 4
				return
			}
			walk(r.Elem())
		case reflect.String:
			n += len(r.String()) + 2
		case reflect.Slice, reflect.Array:
			n += 2
			for i := 0; i < r.Len() && n <= limit; i++ {
				n++
				walk(r.Index(i))
			}
		case reflect.Map:
			n += 2
			it := r.MapRange()
			for it.Next() && n <= limit {
				n += 2
				walk(it.Key())
				walk(it.Value())
			}
		case reflect.Float32, reflect.Float64:
			if f := r.Float(); math.IsInf(f, 0) || math.IsNaN(f) {
				n += 4
				return
			}
			n += 8
		default:
			n += 8
		}
	}
	walk(reflect.ValueOf(v))
	return n
}
