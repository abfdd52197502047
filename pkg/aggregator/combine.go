package aggregator

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/baton-dev/baton/pkg/events"
)

// items spreads a result's data into items: a list gives its elements, any
// other value is one item.
func items(data json.RawMessage) []any {
	if len(data) == 0 {
		return nil
	}
	if f, ok := plainNumber(data); ok {
		return []any{f}
	}
	return decodedItems(data)
}

// decodedItems is items by encoding/json alone.
func decodedItems(data json.RawMessage) []any {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil
	}
	if list, ok := v.([]any); ok {
		return list
	}
	return []any{v}
}

// plainNumber reads data that is one JSON number and nothing else, as a
// result's data often is, to the float64 encoding/json would make of it
// (strconv.ParseFloat, as it uses), without its reflection: one decode per
// result. Anything else, or a number out of range, is left to
// encoding/json.
func plainNumber(data []byte) (float64, bool) {
	i, n := 0, len(data)
	digits := func() int {
		start := i
		for i < n && data[i] >= '0' && data[i] <= '9' {
			i++
		}
		return i - start
	}
	if i < n && data[i] == '-' {
		i++
	}
	switch {
	case i < n && data[i] == '0':
		i++
	case digits() == 0:
		return 0, false
	}
	if i < n && data[i] == '.' {
		i++
		if digits() == 0 {
			return 0, false
		}
	}
	if i < n && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < n && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0, false
		}
	}
	if i != n {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(data), 64)
	return f, err == nil
}

// field reads a dotted path from an item; "." is the item itself.
func field(item any, path string) (any, bool) {
	if path == "." || path == "" {
		return item, true
	}
	cur := item
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// Reducer folds one numeric field over items as they arrive, in constant
// memory.
type Reducer struct {
	Op, Field string
	Count     int     `json:"count"`
	Skipped   int     `json:"skipped"`
	sum       float64 // also for avg
	min, max  float64
}

// Add folds the items of one result.
func (r *Reducer) Add(data json.RawMessage) {
	for _, it := range items(data) {
		r.addItem(it)
	}
}

// addItem folds one item.
func (r *Reducer) addItem(it any) {
	if r.Op == "count" && (r.Field == "" || r.Field == ".") {
		r.Count++
		return
	}
	v, ok := field(it, r.Field)
	x, isNum := v.(float64)
	if !ok || !isNum {
		r.Skipped++
		return
	}
	if r.Count == 0 {
		r.min, r.max = x, x
	}
	r.Count++
	r.sum += x
	r.min, r.max = math.Min(r.min, x), math.Max(r.max, x)
}

// Value is the reduction as output data.
func (r *Reducer) Value() json.RawMessage {
	out := map[string]any{"op": r.Op, "field": r.Field, "count": r.Count, "skipped": r.Skipped, "value": r.result()}
	b, _ := json.Marshal(out)
	return b
}

// result is the reduced value alone: a number, or nil when no item had one
// (or the value is beyond float64).
func (r *Reducer) result() any {
	var v float64
	switch {
	case r.Op == "count":
		return r.Count
	case r.Count == 0:
		return nil
	case r.Op == "sum":
		v = r.sum
	case r.Op == "avg":
		v = r.sum / float64(r.Count)
	case r.Op == "min":
		v = r.min
	case r.Op == "max":
		v = r.max
	default:
		return nil
	}
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return nil // beyond float64: JSON cannot carry it
	}
	return v
}

// Combine builds the output data of merge and transform from the collected
// results in plan order: concatenate items, transform them, drop duplicates,
// sort.
func Combine(a events.Aggregate, ordered []json.RawMessage) (json.RawMessage, error) {
	var all []entry
	for _, d := range ordered {
		for _, it := range items(d) {
			all = append(all, entry{v: it})
		}
	}
	b, err := json.Marshal(values(shape(shapingOf(a), all, nil)))
	if err != nil {
		return nil, fmt.Errorf("aggregate: %w", err)
	}
	return b, nil
}

// shape transforms items (select, then computed fields, run by ev), drops
// duplicates and sorts them: what merge and transform do.
func shape(sp shaping, all []entry, ev *evaluator) []entry {
	if sp.strategy == events.StrategyTransform {
		for i, it := range all {
			out := map[string]any{}
			if m, ok := it.v.(map[string]any); ok && len(sp.sel) == 0 {
				maps.Copy(out, m) // compute alone adds to the item's fields
			}
			for to, from := range sp.sel {
				if v, ok := field(it.v, from); ok {
					out[to] = v
				} else {
					out[to] = nil
				}
			}
			if ev != nil {
				for _, name := range slices.Sorted(maps.Keys(sp.compute)) {
					out[name] = ev.item(sp.path+".compute."+name, sp.compute[name], it, i)
				}
			}
			all[i].v = out
		}
	}
	if sp.dedupeBy != "" {
		seen := map[string]bool{}
		kept := all[:0]
		for _, it := range all {
			v, ok := field(it.v, sp.dedupeBy)
			if !ok {
				kept = append(kept, it)
				continue
			}
			k, _ := json.Marshal(v)
			if !seen[string(k)] {
				seen[string(k)] = true
				kept = append(kept, it)
			}
		}
		all = kept
	}
	if sp.sortBy != "" {
		slices.SortStableFunc(all, func(x, y entry) int {
			vx, _ := field(x.v, sp.sortBy)
			vy, _ := field(y.v, sp.sortBy)
			return compareValues(vx, vy, sp.desc)
		})
	}
	return all
}

// values are the items of entries; never nil.
func values(all []entry) []any {
	out := make([]any, len(all))
	for i, e := range all {
		out[i] = e.v
	}
	return out
}

// compareValues orders numbers numerically, strings lexically (descending
// with desc), and puts missing values and other kinds last either way.
func compareValues(x, y any, desc bool) int {
	rank := func(v any) int {
		switch v.(type) {
		case float64:
			return 0
		case string:
			return 1
		default:
			return 2
		}
	}
	if rx, ry := rank(x), rank(y); rx != ry {
		return cmp.Compare(rx, ry)
	}
	c := 0
	switch a := x.(type) {
	case float64:
		c = cmp.Compare(a, y.(float64))
	case string:
		c = strings.Compare(a, y.(string))
	}
	if desc {
		return -c
	}
	return c
}

// Remedy suggests what to do about a task that did not complete, and
// whether retrying it is worth it.
func Remedy(kind, status string) (string, bool) {
	switch kind {
	case events.KindTimeout:
		return "raise the step's timeout, or make the handler faster; a retry may pass if the slowness was transient", true
	case events.KindPermanent:
		return "the handler rejected the input or request as invalid: fix the input; a retry fails the same way", false
	case events.KindPanic:
		return "the handler crashed (panic): fix the handler before retrying", false
	case events.KindLost:
		return "the agents running it died or stalled: check agent health and capacity, then retry", true
	case events.KindDependency:
		return "it never ran because a critical task failed: fix that task, then retry the workflow", true
	case events.KindDeadline:
		return "the workflow's deadline passed before it finished: give the job a longer deadline, or more agents of its type, and retry", true
	case events.KindCancelled:
		return "it was cancelled by request: restart the workflow or resubmit the task if the work is still needed", true
	case events.KindExpression:
		return "an expression of the job's aggregate failed on this value, which is null in the output: fix the expression; the task itself needs no retry", false
	case events.KindStopWhen:
		return "not needed: the job's stop_when held before it finished; drop stop_when if every task is wanted", false
	case events.KindTooLarge:
		return "more than a message may take: have the task return a reference to large data, not the data; a retry fails the same way", false
	case events.KindUnknown:
		return "the task message could not be decoded: check the producer's wire protocol version", false
	}
	if status == events.StateCancelled {
		return "it was cancelled: resubmit it if the work is still needed", true
	}
	return "the handler kept failing: read the message; if the cause was transient, retry, otherwise fix the input or add a fallback type", true
}
