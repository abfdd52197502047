package expression_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/baton-dev/baton/pkg/expression"
)

// FuzzCompileRun: any text either compiles or gives an error wrapping
// ErrCompile; a compiled expression run on items (one made of the fuzzed
// bytes) gives a JSON value or an error wrapping ErrRun, never a panic, and
// returns within its time bound.
func FuzzCompileRun(f *testing.F) {
	for _, s := range []string{
		"item.score * 100", `item.text + "!"`, "len(items)", "fields.a ?? 0", "map(items, #.x)",
		`reduce(1..40, #acc + #acc, "ab")`, "all(item.l, all(item.l, true))", "1 / 0", "item.a.b.c",
		"let x = [item, item]; x + x", `item.t matches "(a+)+$"`, "{a: item}", "index % 2 == 0 ? 'even' : 'odd'",
	} {
		f.Add(s, []byte(`{"score":0.5,"text":"hi","l":[1,2,3],"a":{"b":1}}`))
	}
	f.Fuzz(func(t *testing.T, src string, data []byte) {
		var decoded any
		_ = json.Unmarshal(data, &decoded)
		for _, env := range []expression.Env{expression.Item, expression.Fields} {
			p, err := expression.Compile(src, env)
			if err != nil {
				if !errors.Is(err, expression.ErrCompile) || errors.Is(err, expression.ErrRun) {
					t.Fatalf("compile error %v does not wrap ErrCompile alone", err)
				}
				if len(err.Error()) > 4*expression.MaxLength+200 {
					t.Fatalf("compile error of %d bytes", len(err.Error()))
				}
				continue
			}
			if len(src) > expression.MaxLength || strings.TrimSpace(src) == "" {
				t.Fatalf("%q compiled", src)
			}
			start := time.Now()
			for i, it := range []any{decoded, string(data), nil} {
				var v any
				if env == expression.Item {
					v, err = p.RunItem(it, i, time.Time{})
				} else {
					v, err = p.RunFields([]any{it, decoded}, map[string]any{"a": it}, time.Time{})
				}
				if err != nil {
					if !errors.Is(err, expression.ErrRun) {
						t.Fatalf("run error %v does not wrap ErrRun", err)
					}
					continue
				}
				if b, err := json.Marshal(v); err != nil || len(b) > expression.MaxValueBytes {
					t.Fatalf("value %.80q (%v) is not bounded JSON", b, err)
				}
			}
			if d := time.Since(start); d > 3*expression.MaxRunTime+time.Second {
				t.Fatalf("three runs took %v", d)
			}
		}
	})
}
