package builtin_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/baton-dev/baton/internal/natstest"
	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/builtin"
	"github.com/baton-dev/baton/pkg/events"
)

// task returns a task of workflow "wf", id "t-1", step "s", chunk 1, on its
// second attempt, run by agent "agent-7".
func task(input string) *agent.Task {
	return &agent.Task{
		Task:    events.Task{Workflow: "wf", ID: "t-1", Step: "s", Index: 1, Input: json.RawMessage(input)},
		Attempt: 2, Agent: "agent-7",
	}
}

func isPermanent(err error) bool {
	var p *agent.PermanentError
	return errors.As(err, &p)
}

// wantPermanent fails unless err is a permanent error.
func wantPermanent(tb testing.TB, err error) {
	tb.Helper()
	if !isPermanent(err) {
		tb.Errorf("error %v, want a permanent error", err)
	}
}

// wantRetryable fails unless err is an error that is retried with backoff.
func wantRetryable(tb testing.TB, err error) {
	tb.Helper()
	var snooze *agent.RetryAfterError
	switch {
	case err == nil:
		tb.Error("no error, want a retryable one")
	case isPermanent(err):
		tb.Errorf("error %v is permanent, want a retryable one", err)
	case errors.As(err, &snooze):
		tb.Errorf("error %v asks for a fixed delay, want backoff", err)
	}
}

func TestTypes(t *testing.T) {
	t.Parallel()
	want := []string{"data", "exec", "http", "noop", "research", "sleep", "write"}
	if got := builtin.Types(); !slices.Equal(got, want) {
		t.Errorf("Types() = %q, want %q", got, want)
	}
}

func TestRegister(t *testing.T) {
	t.Parallel()
	nc, _ := natstest.Connect(t, natstest.Start(t))
	for _, tc := range []struct {
		name      string
		types     []string
		opts      builtin.Options
		wantErr   error
		wantTypes []string
	}{
		{name: "plain types", types: []string{"write", "research", "data", "sleep", "noop"}, wantTypes: []string{"data", "noop", "research", "sleep", "write"}},
		{name: "configured exec and http", types: []string{"exec", "http"}, opts: builtin.Options{Exec: []string{"cat"}, URL: "http://127.0.0.1:1"}, wantTypes: []string{"exec", "http"}},
		{name: "unknown type", types: []string{"research", "ocr"}, wantErr: builtin.ErrUnknownType},
		{name: "exec without a command", types: []string{"exec"}, opts: builtin.Options{URL: "http://127.0.0.1:1"}, wantErr: builtin.ErrNotConfigured},
		{name: "http without a URL", types: []string{"http"}, opts: builtin.Options{Exec: []string{"cat"}}, wantErr: builtin.ErrNotConfigured},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, err := agent.New(nc, agent.Config{ID: "builtin-test"})
			if err != nil {
				t.Fatalf("agent.New: %v", err)
			}
			err = builtin.Register(a, tc.types, tc.opts)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("Register: %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && !slices.Equal(a.Types(), tc.wantTypes) {
				t.Errorf("registered %q, want %q", a.Types(), tc.wantTypes)
			}
		})
	}
}

func TestResearch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		input string
		want  builtin.ResearchResult
	}{
		{
			// "the", "and" and "a" are stopwords.
			name:  "counts words and keywords",
			input: `"The queue, the QUEUE and a worker's queue."`,
			want:  builtin.ResearchResult{Chunk: 1, Words: 8, Keywords: []builtin.Keyword{{Word: "queue", Count: 3}, {Word: "worker's", Count: 1}}},
		},
		{
			// Words of two letters are no keywords.
			name:  "list of texts",
			input: `["Go go GO", "rust"]`,
			want:  builtin.ResearchResult{Chunk: 1, Words: 4, Keywords: []builtin.Keyword{{Word: "rust", Count: 1}}},
		},
		{
			name:  "digits and accents",
			input: `"Café café 2024 2024 2024 x-ray"`,
			want:  builtin.ResearchResult{Chunk: 1, Words: 7, Keywords: []builtin.Keyword{{Word: "2024", Count: 3}, {Word: "café", Count: 2}, {Word: "ray", Count: 1}}},
		},
		{
			name:  "ten keywords at most, ties alphabetical",
			input: `"zeta zeta kilo juliet india hotel golf foxtrot echo delta charlie bravo alpha"`,
			want: builtin.ResearchResult{Chunk: 1, Words: 13, Keywords: []builtin.Keyword{
				{Word: "zeta", Count: 2}, {Word: "alpha", Count: 1}, {Word: "bravo", Count: 1}, {Word: "charlie", Count: 1}, {Word: "delta", Count: 1},
				{Word: "echo", Count: 1}, {Word: "foxtrot", Count: 1}, {Word: "golf", Count: 1}, {Word: "hotel", Count: 1}, {Word: "india", Count: 1},
			}},
		},
		{
			name:  "only stopwords",
			input: `"it is what it is"`,
			want:  builtin.ResearchResult{Chunk: 1, Words: 5, Keywords: []builtin.Keyword{}},
		},
		{
			name:  "empty text",
			input: `""`,
			want:  builtin.ResearchResult{Chunk: 1, Words: 0, Keywords: []builtin.Keyword{}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := builtin.Research(context.Background(), task(tc.input))
			if err != nil {
				t.Fatalf("Research: %v", err)
			}
			got, ok := out.(builtin.ResearchResult)
			if !ok {
				t.Fatalf("result %T, want builtin.ResearchResult", out)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestResearch_BadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, input string }{
		{name: "number", input: `42`},
		{name: "object", input: `{"text":"hello"}`},
		{name: "list of numbers", input: `[1,2]`},
		{name: "no input", input: ``},
		{name: "malformed", input: `"unterminated`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := builtin.Research(context.Background(), task(tc.input))
			if out != nil {
				t.Errorf("result %v, want none", out)
			}
			wantPermanent(t, err)
		})
	}
}

func TestWords(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{name: "punctuation splits", text: "Hello, world! (again)", want: []string{"hello", "world", "again"}},
		{name: "apostrophes stay", text: "it's Bob's", want: []string{"it's", "bob's"}},
		{name: "hyphens split", text: "x-ray e-mail", want: []string{"x", "ray", "e", "mail"}},
		{name: "digits are words", text: "v2 in 2024", want: []string{"v2", "in", "2024"}},
		{name: "unicode letters", text: "Größe ÉTÉ", want: []string{"größe", "été"}},
		{name: "nothing", text: " ,.; ", want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := builtin.Words(tc.text); !slices.Equal(got, tc.want) {
				t.Errorf("Words(%q) = %q, want %q", tc.text, got, tc.want)
			}
		})
	}
}

func TestTopKeywords(t *testing.T) {
	t.Parallel()
	counts := map[string]int{"b": 2, "a": 2, "c": 5, "d": 1}
	for _, tc := range []struct {
		name string
		n    int
		want []builtin.Keyword
	}{
		{name: "all", n: 10, want: []builtin.Keyword{{Word: "c", Count: 5}, {Word: "a", Count: 2}, {Word: "b", Count: 2}, {Word: "d", Count: 1}}},
		{name: "cut inside a tie", n: 2, want: []builtin.Keyword{{Word: "c", Count: 5}, {Word: "a", Count: 2}}},
		{name: "none", n: 0, want: []builtin.Keyword{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := builtin.TopKeywords(counts, tc.n); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// near reports whether two statistics are equal, to within rounding.
func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }

func sameStats(a, b builtin.Stats) bool {
	return a.Chunk == b.Chunk && a.Count == b.Count && a.Sum == b.Sum && a.Min == b.Min && a.Max == b.Max &&
		a.SumSq == b.SumSq && near(a.Mean, b.Mean) && near(a.StdDev, b.StdDev)
}

func TestData(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		input string
		want  builtin.Stats
	}{
		{
			// mean 2.5; stddev √(30/4 − 2.5²) = √1.25.
			name: "nested lists flattened", input: `[[1,2],[3],4]`,
			want: builtin.Stats{Chunk: 1, Count: 4, Sum: 10, Min: 1, Max: 4, Mean: 2.5, SumSq: 30, StdDev: math.Sqrt(1.25)},
		},
		{
			name: "textbook stddev", input: `[2,4,4,4,5,5,7,9]`,
			want: builtin.Stats{Chunk: 1, Count: 8, Sum: 40, Min: 2, Max: 9, Mean: 5, SumSq: 232, StdDev: 2},
		},
		{
			name: "negatives", input: `[-3, 3]`,
			want: builtin.Stats{Chunk: 1, Count: 2, Sum: 0, Min: -3, Max: 3, Mean: 0, SumSq: 18, StdDev: 3},
		},
		{
			name: "one number", input: `7`,
			want: builtin.Stats{Chunk: 1, Count: 1, Sum: 7, Min: 7, Max: 7, Mean: 7, SumSq: 49, StdDev: 0},
		},
		{
			name: "fractions", input: `[0.5, 1.5]`,
			want: builtin.Stats{Chunk: 1, Count: 2, Sum: 2, Min: 0.5, Max: 1.5, Mean: 1, SumSq: 2.5, StdDev: 0.5},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := builtin.Data(context.Background(), task(tc.input))
			if err != nil {
				t.Fatalf("Data: %v", err)
			}
			got, ok := out.(builtin.Stats)
			if !ok {
				t.Fatalf("result %T, want builtin.Stats", out)
			}
			if !sameStats(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestData_BadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, input string }{
		{name: "empty list", input: `[]`},
		{name: "empty nested lists", input: `[[],[]]`},
		{name: "a string", input: `["x"]`},
		{name: "a number as text", input: `[1,"2"]`},
		{name: "object", input: `{"a":1}`},
		{name: "null", input: `null`},
		{name: "no input", input: ``},
		{name: "malformed", input: `nope`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := builtin.Data(context.Background(), task(tc.input))
			wantPermanent(t, err)
		})
	}
}

func TestData_Cancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := builtin.Data(ctx, task(`[1,2,3]`)); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

func TestCombineStats(t *testing.T) {
	t.Parallel()
	// Combining the statistics of chunks gives those of the whole input.
	for _, tc := range []struct {
		name   string
		chunks []string
		all    string
	}{
		{name: "two chunks", chunks: []string{`[1,2,3,4]`, `[5,15]`}, all: `[1,2,3,4,5,15]`},
		{name: "uneven chunks", chunks: []string{`[-2]`, `[7,7,7]`, `[0,1]`}, all: `[-2,7,7,7,0,1]`},
		{name: "one chunk", chunks: []string{`[3,9]`}, all: `[3,9]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var parts []builtin.Stats
			for _, c := range tc.chunks {
				out, err := builtin.Data(context.Background(), task(c))
				if err != nil {
					t.Fatalf("Data(%s): %v", c, err)
				}
				parts = append(parts, out.(builtin.Stats))
			}
			out, err := builtin.Data(context.Background(), task(tc.all))
			if err != nil {
				t.Fatalf("Data(%s): %v", tc.all, err)
			}
			want := out.(builtin.Stats)
			want.Chunk = 0
			if got := builtin.CombineStats(parts); !sameStats(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
	// By hand: count 6, sum 30, mean 5, sum of squares 280, stddev √(280/6 − 25).
	got := builtin.CombineStats([]builtin.Stats{
		{Count: 4, Sum: 10, Min: 1, Max: 4, SumSq: 30},
		{Count: 2, Sum: 20, Min: 5, Max: 15, SumSq: 250},
	})
	want := builtin.Stats{Count: 6, Sum: 30, Min: 1, Max: 15, Mean: 5, SumSq: 280, StdDev: math.Sqrt(280.0/6 - 25)}
	if !sameStats(got, want) {
		t.Errorf("by hand: got %+v, want %+v", got, want)
	}
}

func TestWrite(t *testing.T) {
	t.Parallel()
	completed := func(task, data string) events.DepResult {
		return events.DepResult{Task: task, Status: events.StateCompleted, Data: json.RawMessage(data)}
	}
	for _, tc := range []struct {
		name  string
		input string
		deps  []events.DepResult
		want  builtin.Summary
	}{
		{
			name:  "research, data, failures and plain results",
			input: `"Report"`,
			deps: []events.DepResult{
				completed("r-0", `{"chunk":0,"words":5,"keywords":[{"word":"queue","count":2},{"word":"agent","count":1}]}`),
				{Task: "x-0", Status: events.StateFailed, Error: "boom"},
				completed("r-1", `{"chunk":1,"words":3,"keywords":[{"word":"agent","count":2}]}`),
				completed("d-0", `{"count":2,"sum":6,"min":2,"max":4,"mean":3,"sumsq":20}`),
				completed("d-1", `{"count":1,"sum":10,"min":10,"max":10,"mean":10,"sumsq":100}`),
				{Task: "y-0", Status: events.StateCancelled},
				completed("p-0", `"just text"`),
			},
			// Words 5+3; agent 1+2, queue 2; values 2+1 with sum 16, min 2,
			// max 10, mean 16/3, sum of squares 120.
			want: builtin.Summary{
				Summary: "Report: 5 of 7 sources, 8 words; top keywords: agent (3), queue (2); 3 values, mean 5.333, min 2, max 10; missing: x-0, y-0.",
				Sources: 5, Missing: []string{"x-0", "y-0"}, Words: 8,
				Keywords: []builtin.Keyword{{Word: "agent", Count: 3}, {Word: "queue", Count: 2}},
				Stats:    &builtin.Stats{Count: 3, Sum: 16, Min: 2, Max: 10, Mean: 16.0 / 3, SumSq: 120, StdDev: math.Sqrt(120.0/3 - 256.0/9)},
			},
		},
		{
			name:  "the summary names the top five keywords",
			input: `"Top"`,
			deps:  []events.DepResult{completed("r-0", `{"words":21,"keywords":[{"word":"echo","count":2},{"word":"alpha","count":6},{"word":"foxtrot","count":1},{"word":"bravo","count":5},{"word":"delta","count":3},{"word":"charlie","count":4}]}`)},
			want: builtin.Summary{
				Summary: "Top: 1 of 1 sources, 21 words; top keywords: alpha (6), bravo (5), charlie (4), delta (3), echo (2).",
				Sources: 1, Words: 21,
				Keywords: []builtin.Keyword{{Word: "alpha", Count: 6}, {Word: "bravo", Count: 5}, {Word: "charlie", Count: 4}, {Word: "delta", Count: 3}, {Word: "echo", Count: 2}, {Word: "foxtrot", Count: 1}},
			},
		},
		{
			name: "no title, nothing to write about",
			want: builtin.Summary{Summary: "0 of 0 sources.", Keywords: []builtin.Keyword{}},
		},
		{
			name:  "every source missing",
			input: `"T"`,
			deps:  []events.DepResult{{Task: "a", Status: events.StateFailed}, {Task: "b", Status: events.StateFailed}},
			want:  builtin.Summary{Summary: "T: 0 of 2 sources; missing: a, b.", Missing: []string{"a", "b"}, Keywords: []builtin.Keyword{}},
		},
		{
			name:  "a title that is not text is ignored",
			input: `{"title":"x"}`,
			deps:  []events.DepResult{completed("a", `[1,2]`)},
			want:  builtin.Summary{Summary: "1 of 1 sources.", Sources: 1, Keywords: []builtin.Keyword{}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tk := task(tc.input)
			tk.Deps = tc.deps
			out, err := builtin.Write(context.Background(), tk)
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			got, ok := out.(builtin.Summary)
			if !ok {
				t.Fatalf("result %T, want builtin.Summary", out)
			}
			gotStats, wantStats := got.Stats, tc.want.Stats
			got.Stats, tc.want.Stats = nil, nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if (gotStats == nil) != (wantStats == nil) || gotStats != nil && !sameStats(*gotStats, *wantStats) {
				t.Errorf("stats %+v, want %+v", gotStats, wantStats)
			}
		})
	}
}

func TestSleep(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		input string
		want  int64
	}{
		{name: "number", input: `1`, want: 1},
		{name: "one-item list", input: `[2]`, want: 2},
		{name: "object", input: `{"ms": 1}`, want: 1},
		{name: "zero", input: `0`, want: 0},
		{name: "fraction truncated in the report", input: `1.9`, want: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := builtin.Sleep(context.Background(), task(tc.input))
			if err != nil {
				t.Fatalf("Sleep: %v", err)
			}
			if got, want := out, (builtin.SleepResult{SleptMS: tc.want, Agent: "agent-7"}); got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestSleep_BadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, input string }{
		{name: "text", input: `"soon"`},
		{name: "two-item list", input: `[1,2]`},
		{name: "empty list", input: `[]`},
		{name: "object without ms", input: `{"s":1}`},
		{name: "no input", input: ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := builtin.Sleep(context.Background(), task(tc.input))
			wantPermanent(t, err)
		})
	}
}

func TestSleep_Cancelled(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{name: "cancelled before", want: context.Canceled, ctx: func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}},
		{name: "deadline while sleeping", want: context.DeadlineExceeded, ctx: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 20*time.Millisecond)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := tc.ctx()
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := builtin.Sleep(ctx, task(`{"ms": 600000}`))
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, tc.want) {
					t.Errorf("error %v, want %v", err, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("a ten-minute sleep did not end with its context")
			}
		})
	}
}

func TestNoop(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, input, want string }{
		{name: "echoes its input", input: `{"a":[1,2]}`, want: `{"a":[1,2]}`},
		{name: "no input is null", input: ``, want: `null`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := builtin.Noop(context.Background(), task(tc.input))
			raw, ok := out.(json.RawMessage)
			if err != nil || !ok || string(raw) != tc.want {
				t.Errorf("got %v (%T), %v; want %s", out, out, err, tc.want)
			}
		})
	}
}
