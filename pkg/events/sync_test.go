package events_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/baton-dev/baton/pkg/events"
)

func TestKeyTemplate_Expand(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, tmpl, input, want, fails string
	}{
		{name: "literal", tmpl: "warehouse-db", input: `null`, want: "warehouse-db"},
		{name: "field", tmpl: "customer-{input.customer}", input: `{"customer":"acme"}`, want: "customer-acme"},
		{name: "nested and index", tmpl: "c-{input.0.who.id}", input: `[{"who":{"id":42}}]`, want: "c-42"},
		{name: "whole input", tmpl: "n{input}", input: `7`, want: "n7"},
		{name: "bool", tmpl: "{input.ok}", input: `{"ok":true}`, want: "true"},
		{name: "unsafe value hashed", tmpl: "c-{input.c}", input: `{"c":"a.b>*"}`, want: "c-h"},
		{name: "long value hashed", tmpl: "c-{input.c}", input: `{"c":"` + strings.Repeat("x", 65) + `"}`, want: "c-h"},
		{name: "missing field", tmpl: "c-{input.customer}", input: `{"name":"x"}`, fails: `no field "customer"`},
		{name: "index out of range", tmpl: "c-{input.3}", input: `[1]`, fails: "a list of 1 items"},
		{name: "field of a scalar", tmpl: "c-{input.a}", input: `"text"`, fails: `no field "a"`},
		{name: "no input", tmpl: "c-{input}", input: ``, fails: "not JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kt, err := events.ParseKeyTemplate(tc.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			got, err := kt.Expand(json.RawMessage(tc.input))
			if tc.fails != "" {
				if err == nil || !strings.Contains(err.Error(), tc.fails) {
					t.Fatalf("got %q, %v; want an error saying %q", got, err, tc.fails)
				}
				return
			}
			if err != nil || !strings.HasPrefix(got, tc.want) || !events.ValidKey(got) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
			if strings.HasSuffix(tc.want, "-h") && len(got) != len(tc.want)+16 {
				t.Errorf("hashed key %q: want the prefix and 16 hex digits", got)
			}
		})
	}
	// Distinct unsafe values stay distinct keys.
	kt, _ := events.ParseKeyTemplate("{input}")
	a, _ := kt.Expand(json.RawMessage(`"a.b"`))
	b, _ := kt.Expand(json.RawMessage(`"a/b"`))
	if a == b {
		t.Errorf("two values share the key %q", a)
	}
}

func TestCheckRate(t *testing.T) {
	t.Parallel()
	r, err := events.CheckRate("20/s", 0)
	if err != nil || r.N != 20 || r.Per != time.Second || r.PerSecond() != 20 {
		t.Fatalf("20/s: %+v, %v", r, err)
	}
	if r, err := events.CheckRate("3600/h", 3600); err != nil || r.PerSecond() != 1 {
		t.Fatalf("3600/h burst 3600: %+v, %v", r, err)
	}
	if _, err := events.CheckRate("3600/h", 3601); err == nil {
		t.Fatal("3600/h burst 3601 takes over an hour to refill, accepted")
	}
}

func TestDecodeTask_RefusesBadSyncFields(t *testing.T) {
	t.Parallel()
	base := func() *events.Task {
		return &events.Task{Workflow: "w", ID: "i", Type: "t", Priority: 1, MaxAttempts: 1}
	}
	for name, mod := range map[string]func(*events.Task){
		"key with a dot":    func(t *events.Task) { t.Key, t.Limit = "a.b", 1 },
		"key too long":      func(t *events.Task) { t.Key, t.Limit = strings.Repeat("k", events.MaxKey+1), 1 },
		"limit too high":    func(t *events.Task) { t.Key, t.Limit = "k", events.MaxConcurrencyLimit+1 },
		"limit without key": func(t *events.Task) { t.Limit = 1 },
		"bad rate":          func(t *events.Task) { t.Rate = "1/d" },
		"burst alone":       func(t *events.Task) { t.Burst = 2 },
	} {
		task := base()
		mod(task)
		b, err := events.Encode(task)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := events.DecodeTask(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}
