package builtin

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode"

	"github.com/baton-dev/baton/pkg/agent"
	"github.com/baton-dev/baton/pkg/events"
)

// Keyword is a word and how often it occurs.
type Keyword struct {
	Word  string `json:"word"`
	Count int    `json:"count"`
}

// ResearchResult is what the research type returns for a chunk of text.
type ResearchResult struct {
	Chunk    int       `json:"chunk"`
	Words    int       `json:"words"`
	Keywords []Keyword `json:"keywords"`
}

// stopwords are left out of keywords.
var stopwords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`a an and are as at be but by for from has have he her his i in is it its
		of on or our she that the their them they this to was we were what when which who will with you your not no
		so than then there these those been into can could would should may might also about over such only other`) {
		stopwords[w] = true
	}
}

// Research counts the words of a text chunk (a JSON string, or a list of
// strings) and returns its ten most frequent keywords.
func Research(ctx context.Context, t *agent.Task) (any, error) {
	text, err := textInput(t)
	if err != nil {
		return nil, err
	}
	words := Words(text)
	counts := map[string]int{}
	for _, w := range words {
		if !stopwords[w] && len(w) > 2 {
			counts[w]++
		}
	}
	return ResearchResult{Chunk: t.Index, Words: len(words), Keywords: TopKeywords(counts, 10)}, nil
}

// Words splits text into lower-case words of letters and digits.
func Words(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
	})
}

// TopKeywords returns the n most frequent words, ties broken alphabetically.
func TopKeywords(counts map[string]int, n int) []Keyword {
	out := make([]Keyword, 0, len(counts))
	for w, c := range counts {
		out = append(out, Keyword{w, c})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Word < out[j].Word
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

func textInput(t *agent.Task) (string, error) {
	var s string
	if err := json.Unmarshal(t.Input, &s); err == nil {
		return s, nil
	}
	var list []string
	if err := json.Unmarshal(t.Input, &list); err == nil {
		return strings.Join(list, "\n"), nil
	}
	return "", agent.Permanent(fmt.Errorf("task %s: want a text or a list of texts as input", t.ID))
}

// Summary is what the write type returns.
type Summary struct {
	Summary  string    `json:"summary"`
	Sources  int       `json:"sources"`
	Missing  []string  `json:"missing,omitempty"`
	Words    int       `json:"words,omitempty"`
	Keywords []Keyword `json:"keywords,omitempty"`
	Stats    *Stats    `json:"stats,omitempty"`
}

// Write composes a summary from its dependencies' results: research results
// are merged into word totals and keywords, data statistics are combined.
// Failed dependencies are listed as missing. An optional input string is
// used as the title.
func Write(ctx context.Context, t *agent.Task) (any, error) {
	var title string
	_ = json.Unmarshal(t.Input, &title)
	out := Summary{}
	counts := map[string]int{}
	var stats []Stats
	for _, d := range t.Deps {
		if d.Status != events.StateCompleted {
			out.Missing = append(out.Missing, d.Task)
			continue
		}
		out.Sources++
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(d.Data, &probe); err != nil {
			continue
		}
		if _, ok := probe["keywords"]; ok {
			var r ResearchResult
			if json.Unmarshal(d.Data, &r) == nil {
				out.Words += r.Words
				for _, k := range r.Keywords {
					counts[k.Word] += k.Count
				}
			}
		}
		if _, ok := probe["mean"]; ok {
			var s Stats
			if json.Unmarshal(d.Data, &s) == nil {
				stats = append(stats, s)
			}
		}
	}
	out.Keywords = TopKeywords(counts, 10)
	if len(stats) > 0 {
		c := CombineStats(stats)
		out.Stats = &c
	}
	var b strings.Builder
	if title != "" {
		fmt.Fprintf(&b, "%s: ", title)
	}
	fmt.Fprintf(&b, "%d of %d sources", out.Sources, len(t.Deps))
	if out.Words > 0 {
		fmt.Fprintf(&b, ", %d words", out.Words)
	}
	if len(out.Keywords) > 0 {
		ks := make([]string, 0, 5)
		for _, k := range out.Keywords[:min(5, len(out.Keywords))] {
			ks = append(ks, fmt.Sprintf("%s (%d)", k.Word, k.Count))
		}
		fmt.Fprintf(&b, "; top keywords: %s", strings.Join(ks, ", "))
	}
	if out.Stats != nil {
		fmt.Fprintf(&b, "; %d values, mean %.4g, min %.4g, max %.4g", out.Stats.Count, out.Stats.Mean, out.Stats.Min, out.Stats.Max)
	}
	if len(out.Missing) > 0 {
		fmt.Fprintf(&b, "; missing: %s", strings.Join(out.Missing, ", "))
	}
	out.Summary = b.String() + "."
	return out, nil
}
