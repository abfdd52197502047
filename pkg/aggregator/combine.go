package aggregator

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/baton-dev/baton/pkg/events"
)

// items spreads a result's data into items: a list gives its elements, any
// other value is one item.
func items(data json.RawMessage) []any {
	if len(data) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil
	}
	if list, ok := v.([]any); ok {
		return list
	}
	return []any{v}
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
		if r.Op == "count" && (r.Field == "" || r.Field == ".") {
			r.Count++
			continue
		}
		v, ok := field(it, r.Field)
		x, isNum := v.(float64)
		if !ok || !isNum {
			r.Skipped++
			continue
		}
		if r.Count == 0 {
			r.min, r.max = x, x
		}
		r.Count++
		r.sum += x
		r.min, r.max = math.Min(r.min, x), math.Max(r.max, x)
	}
}

// Value is the reduction as output data.
func (r *Reducer) Value() json.RawMessage {
	out := map[string]any{"op": r.Op, "field": r.Field, "count": r.Count, "skipped": r.Skipped}
	switch {
	case r.Op == "count":
		out["value"] = r.Count
	case r.Count == 0:
		out["value"] = nil
	case r.Op == "sum":
		out["value"] = r.sum
	case r.Op == "avg":
		out["value"] = r.sum / float64(r.Count)
	case r.Op == "min":
		out["value"] = r.min
	case r.Op == "max":
		out["value"] = r.max
	}
	if v, ok := out["value"].(float64); ok && (math.IsInf(v, 0) || math.IsNaN(v)) {
		out["value"] = nil // beyond float64: JSON cannot carry it
	}
	b, _ := json.Marshal(out)
	return b
}

// Combine builds the output data of merge and transform from the collected
// results in plan order: concatenate items, transform them, drop duplicates,
// sort.
func Combine(a events.Aggregate, ordered []json.RawMessage) (json.RawMessage, error) {
	var all []any
	for _, d := range ordered {
		all = append(all, items(d)...)
	}
	if a.Strategy == events.StrategyTransform {
		for i, it := range all {
			out := map[string]any{}
			for to, from := range a.Select {
				if v, ok := field(it, from); ok {
					out[to] = v
				} else {
					out[to] = nil
				}
			}
			all[i] = out
		}
	}
	if a.DedupeBy != "" {
		seen := map[string]bool{}
		kept := all[:0]
		for _, it := range all {
			v, ok := field(it, a.DedupeBy)
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
	if a.SortBy != "" {
		slices.SortStableFunc(all, func(x, y any) int {
			vx, _ := field(x, a.SortBy)
			vy, _ := field(y, a.SortBy)
			return compareValues(vx, vy, a.Desc)
		})
	}
	if all == nil {
		all = []any{}
	}
	b, err := json.Marshal(all)
	if err != nil {
		return nil, fmt.Errorf("aggregate: %w", err)
	}
	return b, nil
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
	case events.KindStopWhen:
		return "not needed: the job's stop_when held before it finished; drop stop_when if every task is wanted", false
	case events.KindUnknown:
		return "the task message could not be decoded: check the producer's wire protocol version", false
	}
	if status == events.StateCancelled {
		return "it was cancelled: resubmit it if the work is still needed", true
	}
	return "the handler kept failing: read the message; if the cause was transient, retry, otherwise fix the input or add a fallback type", true
}
