package builtin

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/baton-dev/baton/pkg/agent"
)

// Stats are the statistics the data type returns.
type Stats struct {
	Chunk  int     `json:"chunk"`
	Count  int     `json:"count"`
	Sum    float64 `json:"sum"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	Mean   float64 `json:"mean"`
	StdDev float64 `json:"stddev"`
	// SumSq lets statistics of chunks be combined exactly.
	SumSq float64 `json:"sumsq"`
}

// Data computes statistics of a list of numbers (nested lists are flattened).
func Data(ctx context.Context, t *agent.Task) (any, error) {
	var raw any
	if err := json.Unmarshal(t.Input, &raw); err != nil {
		return nil, agent.Permanent(fmt.Errorf("task %s: input: %w", t.ID, err))
	}
	var nums []float64
	var walk func(v any) error
	walk = func(v any) error {
		switch x := v.(type) {
		case float64:
			nums = append(nums, x)
		case []any:
			for _, e := range x {
				if err := walk(e); err != nil {
					return err
				}
			}
		default:
			return agent.Permanent(fmt.Errorf("task %s: want numbers, got %T", t.ID, v))
		}
		return nil
	}
	if err := walk(raw); err != nil {
		return nil, err
	}
	if len(nums) == 0 {
		return nil, agent.Permanent(fmt.Errorf("task %s: no numbers in the input", t.ID))
	}
	s := Stats{Chunk: t.Index, Count: len(nums), Min: math.Inf(1), Max: math.Inf(-1)}
	for i, x := range nums {
		if i%4096 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.Sum += x
		s.SumSq += x * x
		s.Min, s.Max = math.Min(s.Min, x), math.Max(s.Max, x)
	}
	finish(&s)
	return s, nil
}

func finish(s *Stats) {
	s.Mean = s.Sum / float64(s.Count)
	s.StdDev = math.Sqrt(math.Max(0, s.SumSq/float64(s.Count)-s.Mean*s.Mean))
}

// CombineStats merges the statistics of several chunks into those of all.
func CombineStats(parts []Stats) Stats {
	out := Stats{Min: math.Inf(1), Max: math.Inf(-1)}
	for _, p := range parts {
		out.Count += p.Count
		out.Sum += p.Sum
		out.SumSq += p.SumSq
		out.Min, out.Max = math.Min(out.Min, p.Min), math.Max(out.Max, p.Max)
	}
	if out.Count > 0 {
		finish(&out)
	}
	return out
}
