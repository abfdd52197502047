package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Synchronisation points a step may ask for (see package permit, which
// enforces them system-wide): a concurrency key with a limit (a lock when
// the limit is 1), and a rate.

// Concurrency bounds how many tasks holding Key run at once, system-wide.
// Key may name fields of each task's input ("customer-{input.customer}"),
// so that each value gets a key (and a limit) of its own.
type Concurrency struct {
	Key   string `json:"key"`
	Limit int    `json:"limit,omitempty"`
}

// Bounds of the synchronisation fields.
const (
	// MaxConcurrencyLimit bounds a concurrency limit: a task looks for a
	// free slot among Limit of them.
	MaxConcurrencyLimit = 256
	// MaxKeyTemplate bounds a key template's length.
	MaxKeyTemplate = 128
	// MaxKeyPlaceholders bounds the placeholders of a key template.
	MaxKeyPlaceholders = 4
	// MaxBurst bounds a rate's burst.
	MaxBurst = 10_000
	// MaxRatePerSecond bounds a rate (per second, whatever its unit).
	MaxRatePerSecond = 100_000
	// MaxRateRefill bounds burst ÷ rate: how long an idle rate's state must
	// be kept (the rates bucket keeps an entry at most this long).
	MaxRateRefill = time.Hour
)

// Rate is a parsed "N/unit" rate: N tasks per Per.
type Rate struct {
	N   int
	Per time.Duration
}

// PerSecond is the rate in tasks per second.
func (r Rate) PerSecond() float64 { return float64(r.N) / r.Per.Seconds() }

// ParseRate reads "20/s", "300/m" or "1000/h".
func ParseRate(s string) (Rate, error) {
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("%q: want a form like \"20/s\", \"300/m\" or \"1000/h\"", Short(s))
	}
	var per time.Duration
	switch unit {
	case "s":
		per = time.Second
	case "m":
		per = time.Minute
	case "h":
		per = time.Hour
	default:
		return Rate{}, fmt.Errorf("%q: the unit must be s, m or h", Short(s))
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || num != strconv.Itoa(n) {
		return Rate{}, fmt.Errorf("%q: the count must be a whole number from 1", Short(s))
	}
	r := Rate{N: n, Per: per}
	if r.PerSecond() > MaxRatePerSecond {
		return Rate{}, fmt.Errorf("%q: more than %d per second", Short(s), MaxRatePerSecond)
	}
	return r, nil
}

// CheckRate checks a rate and its burst (0: the default, 1) together: the
// burst refills within MaxRateRefill.
func CheckRate(rate string, burst int) (Rate, error) {
	r, err := ParseRate(rate)
	if err != nil {
		return r, err
	}
	if burst < 0 || burst > MaxBurst {
		return r, fmt.Errorf("burst %d is out of range 1..%d", burst, MaxBurst)
	}
	if refill := time.Duration(float64(max(burst, 1)) / r.PerSecond() * float64(time.Second)); refill > MaxRateRefill {
		return r, fmt.Errorf("burst %d at %s takes %v to refill, more than %v", max(burst, 1), rate, refill.Round(time.Second), MaxRateRefill)
	}
	return r, nil
}

// KeyTemplate is a parsed concurrency key: literal parts and placeholders
// ({input} or {input.a.b}, a path of field names or list indices).
type KeyTemplate struct {
	parts []keyPart
}

type keyPart struct {
	lit  string
	path []string // nil for a literal; empty (non-nil) for the whole input
}

// ParseKeyTemplate checks a key template: literal text of letters, digits,
// '-' and '_', and at most MaxKeyPlaceholders placeholders.
func ParseKeyTemplate(s string) (*KeyTemplate, error) {
	if s == "" {
		return nil, fmt.Errorf("missing: name the key, e.g. \"warehouse-db\" or \"customer-{input.customer}\"")
	}
	if len(s) > MaxKeyTemplate {
		return nil, fmt.Errorf("%d bytes, more than the limit of %d", len(s), MaxKeyTemplate)
	}
	kt := &KeyTemplate{}
	rest := s
	for rest != "" {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			i = len(rest)
		}
		if lit := rest[:i]; lit != "" {
			for k := 0; k < len(lit); k++ {
				if !tokenByte(lit[k]) {
					return nil, fmt.Errorf("%q: use letters, digits, '-', '_' and {input...} placeholders", Short(s))
				}
			}
			kt.parts = append(kt.parts, keyPart{lit: lit})
		}
		rest = rest[i:]
		if rest == "" {
			break
		}
		j := strings.IndexByte(rest, '}')
		if j < 0 {
			return nil, fmt.Errorf("%q: a '{' without its '}'", Short(s))
		}
		name := rest[1:j]
		rest = rest[j+1:]
		path, ok := strings.CutPrefix(name, "input")
		if !ok || (path != "" && path[0] != '.') {
			return nil, fmt.Errorf("%q: a placeholder is {input} or {input.field}", Short(s))
		}
		p := []string{}
		if path != "" {
			p = strings.Split(path[1:], ".")
			for _, seg := range p {
				if seg == "" || strings.ContainsAny(seg, "{}") {
					return nil, fmt.Errorf("%q: an empty or malformed field name in a placeholder", Short(s))
				}
			}
		}
		kt.parts = append(kt.parts, keyPart{path: p})
		if n := kt.placeholders(); n > MaxKeyPlaceholders {
			return nil, fmt.Errorf("%q: more than %d placeholders", Short(s), MaxKeyPlaceholders)
		}
	}
	return kt, nil
}

func (kt *KeyTemplate) placeholders() int {
	n := 0
	for _, p := range kt.parts {
		if p.path != nil {
			n++
		}
	}
	return n
}

func tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// Expand fills the placeholders from a task's input. A value that is a
// string of letters, digits, '-' and '_' (at most 64 bytes), or a number or
// boolean, is used as it is; any other value (longer, other characters, an
// object) is replaced by "h" and 16 hex digits of its SHA-256, so every
// key is valid and bounded while distinct values stay distinct keys. A
// field the input lacks is an error.
func (kt *KeyTemplate) Expand(input json.RawMessage) (string, error) {
	var b strings.Builder
	var doc any
	decoded := false
	for _, p := range kt.parts {
		if p.path == nil {
			b.WriteString(p.lit)
			continue
		}
		if !decoded {
			d := json.NewDecoder(bytes.NewReader(input))
			d.UseNumber()
			if err := d.Decode(&doc); err != nil {
				return "", fmt.Errorf("the input is not JSON: %v", err)
			}
			decoded = true
		}
		v := doc
		for _, seg := range p.path {
			switch x := v.(type) {
			case map[string]any:
				next, ok := x[seg]
				if !ok {
					return "", fmt.Errorf("the input has no field %q", Short(seg))
				}
				v = next
			case []any:
				k, err := strconv.Atoi(seg)
				if err != nil || k < 0 || k >= len(x) {
					return "", fmt.Errorf("the input is a list of %d items: %q is not an index of it", len(x), Short(seg))
				}
				v = x[k]
			default:
				return "", fmt.Errorf("the input has no field %q", Short(seg))
			}
		}
		b.WriteString(keyValue(v))
	}
	return b.String(), nil
}

// keyValue is a value as a key fragment.
func keyValue(v any) string {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case json.Number:
		s = x.String()
	case bool:
		s = strconv.FormatBool(x)
	case nil:
		s = "null"
	default:
		raw, _ := json.Marshal(x)
		s = string(raw)
	}
	if s != "" && ValidToken(s) {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return "h" + hex.EncodeToString(sum[:8])
}

// MaxKey bounds an expanded key: a template's literals (MaxKeyTemplate)
// plus 64 bytes per placeholder.
const MaxKey = MaxKeyTemplate + MaxKeyPlaceholders*64

// ValidKey reports whether s can be a concurrency key: 1 to MaxKey letters,
// digits, '-' or '_'. A task message naming any other key is not from the
// planner.
func ValidKey(s string) bool {
	if len(s) == 0 || len(s) > MaxKey {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenByte(s[i]) {
			return false
		}
	}
	return true
}

// validateSync checks a step's concurrency, rate and burst; f is the
// step's field path.
func (s *Step) validateSync(f string) error {
	if c := s.Concurrency; c != nil {
		if _, err := ParseKeyTemplate(c.Key); err != nil {
			return &ValidationError{Field: f + ".concurrency.key", Reason: err.Error()}
		}
		switch {
		case c.Limit < 0 || c.Limit > MaxConcurrencyLimit:
			return invalid(f+".concurrency.limit", "%d is out of range 1..%d", c.Limit, MaxConcurrencyLimit)
		case c.Limit == 0 && s.Rate == "":
			return invalid(f+".concurrency.limit", "missing: how many tasks holding the key may run at once (1 for a lock), 1..%d", MaxConcurrencyLimit)
		}
	}
	if s.Burst != 0 && s.Rate == "" {
		return invalid(f+".burst", "a burst needs a rate")
	}
	if s.Rate != "" {
		if _, err := CheckRate(s.Rate, s.Burst); err != nil {
			field := f + ".rate"
			if strings.HasPrefix(err.Error(), "burst") {
				field = f + ".burst"
			}
			return &ValidationError{Field: field, Reason: err.Error()}
		}
	}
	return nil
}

// CheckSync checks the synchronisation fields of a task message the way
// the planner writes them; an agent refuses a task that fails it.
func (t *Task) CheckSync() error {
	if t.Key != "" && !ValidKey(t.Key) {
		return fmt.Errorf("concurrency key %q: use 1-%d letters, digits, '-' or '_'", Short(t.Key), MaxKey)
	}
	if t.Limit < 0 || t.Limit > MaxConcurrencyLimit || (t.Limit > 0 && t.Key == "") {
		return fmt.Errorf("concurrency limit %d: want 1..%d with a key", t.Limit, MaxConcurrencyLimit)
	}
	if t.Rate != "" {
		if _, err := CheckRate(t.Rate, t.Burst); err != nil {
			return fmt.Errorf("rate: %w", err)
		}
	} else if t.Burst != 0 {
		return fmt.Errorf("burst %d without a rate", t.Burst)
	}
	return nil
}
