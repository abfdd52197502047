package expression_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/baton-dev/baton/pkg/expression"
)

func TestCompile_Rejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, src string
		env       expression.Env
		says      string
	}{
		{name: "empty", src: "  ", says: "empty expression"},
		{name: "too long", src: strings.Repeat("1+", 600) + "1", says: "1201 bytes, more than the limit of 1024"},
		{name: "too many nodes", src: strings.Repeat("1+", 300) + "1", says: "exceeds maximum allowed nodes"},
		{name: "syntax", src: "item.score +", says: "line 1, column 12: unexpected token EOF"},
		{name: "unknown name", src: "itme.score", says: "line 1, column 1: unknown name itme"},
		{name: "position on a later line", src: "item.score\n  * nope", says: "line 2, column 5: unknown name nope"},
		{name: "item in a field expression", src: "item.score", env: expression.Fields, says: "unknown name item"},
		{name: "items in an item expression", src: "len(items)", says: "unknown name items"},
		{name: "clock", src: "now()", says: "unknown name now"},
		{name: "text builder", src: `repeat("x", 9)`, says: "unknown name repeat"},
		{name: "upper", src: `upper(item.name)`, says: "unknown name upper"},
		{name: "join", src: `join(["a"], ",")`, says: "unknown name join"},
		{name: "type error", src: `"a" - 1`, says: "line 1, column 5: invalid operation: - (mismatched types string and int)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := expression.Compile(tc.src, tc.env)
			if !errors.Is(err, expression.ErrCompile) || errors.Is(err, expression.ErrRun) {
				t.Fatalf("error %v does not wrap ErrCompile", err)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
		})
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	item := map[string]any{"score": 0.42, "name": "a", "tags": []any{"x", "y"}}
	for _, tc := range []struct {
		src  string
		want any
	}{
		{src: "item.score * 100", want: 42.0},
		{src: "round(item.score * 10) / 10", want: 0.4},
		{src: `item.score > 0.8 ? "high" : "low"`, want: "low"},
		{src: `item.name + "-" + string(index)`, want: nil}, // string is not allowed: see below
		{src: `item.name + "!"`, want: "a!"},
		{src: "len(item.tags)", want: 2.0},
		{src: "index", want: 3.0},
		{src: "item.missing ?? 0", want: 0.0},
		{src: "{score: item.score, n: 1}", want: map[string]any{"score": 0.42, "n": 1.0}},
		{src: "[1] + [2]", want: []any{1.0, 2.0}},
	} {
		p, err := expression.Compile(tc.src, expression.Item)
		if tc.want == nil {
			if err == nil {
				t.Errorf("%s compiles", tc.src)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.src, err)
		}
		got, err := p.RunItem(item, 3, time.Time{})
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s = %#v, %v; want %#v", tc.src, got, err, tc.want)
		}
	}
	p, err := expression.Compile("mean(map(items, #.score)) * fields.n", expression.Fields)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.RunFields([]any{map[string]any{"score": 1.0}, map[string]any{"score": 3.0}}, map[string]any{"n": 10.0}, time.Time{})
	if err != nil || got != 20.0 {
		t.Errorf("field expression = %v, %v; want 20", got, err)
	}
	if _, err := p.RunItem(item, 0, time.Time{}); !errors.Is(err, expression.ErrRun) {
		t.Errorf("a field expression run on an item: %v", err)
	}
}

// TestRun_Hostile: expressions that would grow without bound, loop for
// long or return what JSON cannot hold fail with a clear error, quickly.
func TestRun_Hostile(t *testing.T) {
	t.Parallel()
	text := map[string]any{"text": strings.Repeat("x", 40_000)}
	list := map[string]any{"list": make([]any, 5000)}
	for _, tc := range []struct {
		name, src string
		item      any
		says      string
	}{
		{name: "doubling a text", src: `reduce(1..40, #acc + #acc, "abcdefgh")`, says: "text longer than 65536 bytes"},
		{name: "doubling a list", src: `reduce(1..40, #acc + #acc, [1])`, says: "list longer than 10000 items"},
		{name: "doubling the input", src: `item.text + item.text`, item: text, says: "text longer than 65536 bytes"},
		{name: "nested loops", src: `map(1..5000, map(1..5000, #))`, says: "memory budget exceeded"},
		{name: "loops over the input", src: `all(item.list, all(item.list, all(item.list, true)))`, item: list, says: "more than 10000 loop iterations"},
		{name: "slow searches", src: `all(1..9990, ` + strings.Repeat("lastIndexOf(item.t, item.u) < 0 && ", 12) + `true)`,
			item: map[string]any{"t": strings.Repeat("x", 32_000), "u": strings.Repeat("x", 15_999) + "y"}, says: "out of time"},
		{name: "big range", src: `len(1..1000000000)`, says: "memory budget exceeded"},
		{name: "references to a big item", src: `map(1..4000, item)`, item: map[string]any{"t": strings.Repeat("x", 1000)}, says: "the value is more than 65536 bytes"},
		{name: "escapes beyond the bound", src: `item.t + item.t`, item: map[string]any{"t": strings.Repeat("<", 20_000)}, says: "the value is more than 65536 bytes"},
		{name: "the inserted functions called by hand", src: `_baton_plus(1) ?? _baton_loop()`, says: "+: want two operands"},
		{name: "item too big", src: `1`, item: map[string]any{"t": strings.Repeat("x", 70_000)}, says: "the item is more than 65536 bytes"},
		{name: "infinity", src: `1 / 0`, says: "cannot be written as JSON"},
		{name: "type error at run time", src: `item.name - 1`, item: map[string]any{"name": "a"}, says: "line 1, column 11: invalid operation"},
		{name: "field of a number", src: `item.a.b`, item: map[string]any{"a": 1.0}, says: "line 1, column 8: cannot fetch b from float64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := expression.Compile(tc.src, expression.Item)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			v, err := p.RunItem(tc.item, 0, time.Time{})
			if !errors.Is(err, expression.ErrRun) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("= %.40v, %v; want an ErrRun saying %q", v, err, tc.says)
			}
			if d := time.Since(start); d > expression.MaxRunTime+time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}
