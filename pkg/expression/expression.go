package expression

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"

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
	// MaxValueBytes bounds a text built by "+" and the JSON of a result.
	MaxValueBytes = 64 << 10
	// MaxValueItems bounds a list built by "+".
	MaxValueItems = 10_000
	// MaxInputBytes bounds the JSON of the item an expression reads.
	MaxInputBytes = 64 << 10
)

// Builtins are the functions an expression may call: those of expr whose
// cost is within the bounds above. Functions that build texts or lists from
// their input (upper, repeat, replace, join, split, concat, toJSON, …) and
// those that read the clock are left out.
var Builtins = []string{
	"all", "none", "any", "one", "filter", "map", "find", "findIndex", "findLast", "findLastIndex",
	"count", "sum", "reduce", "sortBy", "sort", "len", "type",
	"abs", "ceil", "floor", "round", "int", "float", "max", "min", "mean", "median",
	"trim", "trimPrefix", "trimSuffix", "indexOf", "lastIndexOf", "hasPrefix", "hasSuffix",
	"first", "last", "get", "keys", "values", "reverse", "uniq", "take",
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

// Program is a compiled expression.
type Program struct {
	env Env
	p   *vm.Program
}

// addName is the function every "+" is rewritten to, so that it is bounded.
const addName = "_add"

// Compile checks and compiles src for env.
func Compile(src string, env Env) (*Program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &Error{Message: "empty expression"}
	}
	if len(src) > MaxLength {
		return nil, &Error{Message: fmt.Sprintf("%d bytes, more than the limit of %d", len(src), MaxLength)}
	}
	opts := []expr.Option{
		expr.MaxNodes(MaxNodes),
		expr.DisableAllBuiltins(),
		expr.Patch(addPatch{}),
		expr.Function(addName, add),
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
	return &Program{env: env, p: p}, nil
}

// positioned turns an expr error into an *Error.
func positioned(err error, run bool) *Error {
	var fe *file.Error
	if errors.As(err, &fe) {
		msg := strings.ReplaceAll(fe.Message, addName, "+")
		if fe.Line > 0 {
			return &Error{Line: fe.Line, Column: fe.Column + 1, Message: msg, run: run}
		}
		return &Error{Message: msg, run: run}
	}
	return &Error{Message: strings.ReplaceAll(err.Error(), addName, "+"), run: run}
}

// RunItem computes the value of an Item expression for one item. The value
// is made of what JSON decodes to: nil, bool, float64, string, []any and
// map[string]any.
func (p *Program) RunItem(item any, index int) (any, error) {
	if p.env != Item {
		return nil, &Error{Message: "not an item expression", run: true}
	}
	if n := sizeOf(item, MaxInputBytes+1); n > MaxInputBytes {
		return nil, &Error{Message: fmt.Sprintf("the item is more than %d bytes: too big for an expression", MaxInputBytes), run: true}
	}
	return p.run(ItemVars{Item: item, Index: index})
}

// RunFields computes the value of a Fields expression, as RunItem does.
func (p *Program) RunFields(items []any, fields map[string]any) (any, error) {
	if p.env != Fields {
		return nil, &Error{Message: "not a field expression", run: true}
	}
	if items == nil {
		items = []any{}
	}
	return p.run(FieldVars{Items: items, Fields: fields})
}

func (p *Program) run(vars any) (any, error) {
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
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, &Error{Message: "the value cannot be read back from JSON: " + err.Error(), run: true}
	}
	return v, nil
}

// addPatch rewrites every "+" into a call of the bounded add.
type addPatch struct{}

func (addPatch) Visit(node *ast.Node) {
	if b, ok := (*node).(*ast.BinaryNode); ok && b.Operator == "+" {
		ast.Patch(node, &ast.CallNode{
			Callee:    &ast.IdentifierNode{Value: addName},
			Arguments: []ast.Node{b.Left, b.Right},
		})
	}
}

// add is expr's "+", refusing texts and lists beyond the bounds: without it
// an expression that adds a value to itself in a loop doubles it each time.
func add(args ...any) (any, error) {
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
