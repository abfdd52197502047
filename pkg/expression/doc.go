// Package expression compiles and runs the expressions a job may use to add
// computed fields to its output (aggregate "compute" and a named field's
// "expr"). The language is expr (github.com/expr-lang/expr); this package
// fixes what an expression sees (Item or Fields), which functions it may
// call (Builtins), and bounds what one costs, so that a job cannot make the
// aggregator spend unbounded time or memory.
//
// An expression is compiled when the job is submitted (Compile, called from
// the job's validation): a syntax error, an unknown name or a function that
// is not allowed is reported there with its line and column. At run time an
// expression fails, rather than grows without bound, when its loops run
// more than MaxSteps times or past MaxRunTime (or the caller's deadline),
// when it allocates more than MemoryBudget, builds a text or list longer
// than MaxValueBytes or MaxValueItems, reads an item bigger than
// MaxInputBytes, or returns a value whose JSON exceeds MaxValueBytes.
package expression
