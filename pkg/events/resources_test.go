package events_test

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/baton-dev/baton/pkg/events"
)

func TestCapKey_OrderFreeAndDistinct(t *testing.T) {
	t.Parallel()
	if events.CapKey(nil) != "" || events.LaneToken(3, nil) != "3" {
		t.Fatalf("no capabilities: key %q, token %q", events.CapKey(nil), events.LaneToken(3, nil))
	}
	a, b := events.CapKey([]string{"gpu", "lang:de"}), events.CapKey([]string{"lang:de", "gpu"})
	if a != b || len(a) != 13 || a[0] != 'c' {
		t.Fatalf("keys %q and %q", a, b)
	}
	if a == events.CapKey([]string{"gpu"}) || a == events.CapKey([]string{"gpu", "lang"}) {
		t.Fatal("distinct sets share a key")
	}
	tok := events.LaneToken(2, []string{"gpu"})
	prio, key, ok := events.ParseLaneToken(tok)
	if !ok || prio != 2 || key != events.CapKey([]string{"gpu"}) {
		t.Fatalf("ParseLaneToken(%q) = %d, %q, %v", tok, prio, key, ok)
	}
	for _, bad := range []string{"", "0", "6", "02", "2-", "2-x", "2-c12", "2-c0123456789ag", "2-d0123456789ab", "x-c0123456789ab"} {
		if _, _, ok := events.ParseLaneToken(bad); ok {
			t.Errorf("ParseLaneToken(%q) accepted", bad)
		}
	}
}

func TestSubsets(t *testing.T) {
	t.Parallel()
	got := events.Subsets([]string{"ssd", "gpu"})
	want := [][]string{nil, {"gpu"}, {"ssd"}, {"gpu", "ssd"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("Subsets = %v, want %v", got, want)
	}
	if n := len(events.Subsets([]string{"a", "b", "c", "d"})); n != 16 {
		t.Fatalf("%d subsets of 4", n)
	}
}

func TestUnmet(t *testing.T) {
	t.Parallel()
	gpu := events.AgentInfo{ID: "g", Types: []string{"x"}, Routing: []string{"gpu"}, Status: events.AgentIdle, CPUMilli: 2000}
	plain := events.AgentInfo{ID: "p", Types: []string{"x", "gpu"}, Capabilities: []string{"x", "gpu"}, Status: events.AgentIdle}
	dead := events.AgentInfo{ID: "d", Types: []string{"x"}, Routing: []string{"tpu"}, Status: events.AgentFailed}
	needs := []events.Need{
		{Type: "x", Requires: []string{"gpu"}},                 // met by g
		{Type: "x", Requires: []string{"tpu"}},                 // only a failed agent has it
		{Type: "x", Requires: []string{"gpu"}, CPUMilli: 3000}, // more than g's capacity; p has gpu as a type, not a capability
		{Type: "x", Memory: 1 << 40},                           // p declares no memory capacity: fits
		{Type: "y", Requires: []string{"gpu"}},                 // no agent serves y: the type warning says so
	}
	got := events.NewOffers([]events.AgentInfo{gpu, plain, dead}).Unmet(needs)
	if len(got) != 2 || !strings.Contains(got[0], "capabilities tpu") || !strings.Contains(got[1], "3 cpus") {
		t.Fatalf("Unmet = %q", got)
	}
	// An entry routing on more capabilities than any agent may is not an
	// offer: it cannot meet a need (and cannot make checking slow).
	forged := events.AgentInfo{ID: "f", Types: []string{"x"}, Routing: make([]string, 100_000), Status: events.AgentIdle}
	forged.Routing[0] = "tpu"
	if events.NewOffers([]events.AgentInfo{forged}).Meets(events.Need{Type: "x", Requires: []string{"tpu"}}) {
		t.Error("an entry with 100,000 capabilities meets a need")
	}
	many := make([]events.Need, 40)
	for i := range many {
		many[i] = events.Need{Type: "x", Requires: []string{"tpu"}}
	}
	if n := len(events.NewOffers([]events.AgentInfo{gpu}).Unmet(many)); n != events.MaxWarnings {
		t.Fatalf("%d warnings, want at most %d", n, events.MaxWarnings)
	}
}

func TestParseByteSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]events.ByteSize{
		"512MiB": 512 << 20, "1.5GB": 1_500_000_000, "64k": 64 << 10, "2G": 2 << 30, "100": 100, "1 TiB": 1 << 40, "7b": 7,
	} {
		if got, err := events.ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "1.2.3M", "-1", "5 parsecs", "2048TiB", "0x10"} {
		if _, err := events.ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", bad)
		}
	}
}

// TestResourceTotals_AddRefusesNonsense: a result's usage comes from an
// agent; a negative, huge or NaN figure counts as 0, so the totals stay
// finite and the output encodable.
func TestResourceTotals_AddRefusesNonsense(t *testing.T) {
	t.Parallel()
	var tot events.ResourceTotals
	tot.Add(nil)
	tot.Add(&events.TaskUsage{CPUMS: 1.5, ExecCPUMS: 2, ExecMaxRSS: 10})
	tot.Add(&events.TaskUsage{CPUMS: math.NaN(), ExecCPUMS: math.Inf(1), ExecMaxRSS: math.MaxInt64})
	tot.Add(&events.TaskUsage{CPUMS: -5, ExecCPUMS: 1e300, ExecMaxRSS: -1})
	want := events.ResourceTotals{Measured: 3, CPUMS: 1.5, ExecCPUMS: 2, ExecMaxRSS: 10}
	if tot != want {
		t.Fatalf("totals %+v, want %+v", tot, want)
	}
	if _, err := json.Marshal(tot); err != nil {
		t.Fatal(err)
	}
}

// TestValidNeeds: needs read from a workflow record keep only what a
// planner writes, at most MaxNeeds.
func TestValidNeeds(t *testing.T) {
	t.Parallel()
	good := events.Need{Type: "x", Requires: []string{"gpu"}, CPUMilli: 500}
	in := []events.Need{
		good,
		{Type: "x y"},
		{Type: "x", Requires: []string{strings.Repeat("g", 1<<20)}},
		{Type: "x", Requires: []string{"a", "b", "c", "d", "e"}},
		{Type: "x", CPUMilli: -1},
		{Type: "x", Memory: math.MaxInt64},
	}
	for range 100 {
		in = append(in, good)
	}
	got := events.ValidNeeds(in)
	if len(got) != events.MaxNeeds {
		t.Fatalf("%d needs kept, want %d", len(got), events.MaxNeeds)
	}
	for _, n := range got {
		if n.Type != "x" || len(n.Requires) != 1 || n.Requires[0] != "gpu" {
			t.Fatalf("kept %+v", n)
		}
	}
}

func TestResourceTotals_Remove(t *testing.T) {
	t.Parallel()
	var tot events.ResourceTotals
	failed := &events.TaskUsage{CPUMS: 4, ExecCPUMS: 6, ExecMaxRSS: 100}
	tot.Add(failed)
	tot.Remove(failed) // superseded by a later run
	tot.Remove(nil)
	tot.Add(&events.TaskUsage{CPUMS: 1, ExecCPUMS: 2, ExecMaxRSS: 50})
	if want := (events.ResourceTotals{Measured: 1, CPUMS: 1, ExecCPUMS: 2, ExecMaxRSS: 100}); tot != want {
		t.Fatalf("totals %+v, want %+v", tot, want)
	}
}
