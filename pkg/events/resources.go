package events

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Capability routing. A step that requires capabilities ("requires":
// ["gpu", "lang:de"]) queues its tasks on a capability lane: the priority
// token of the lane subject carries a key of the sorted set,
// "baton.tasks.<type>.<priority>-c<key>.<wf>.<task>". An agent consumes
// the lanes of every subset of the capabilities it advertises (the empty
// set is the plain lane), so a task runs only on an agent that has all it
// requires. An agent advertising k capabilities serves 2^k lanes per type
// and priority: MaxCapabilities bounds k.
const (
	// MaxCapabilities bounds the capabilities a step may require and an
	// agent may advertise for routing: 4 means at most 16 lanes per type
	// and priority on an agent.
	MaxCapabilities = 4
	// MaxCapabilityBytes bounds one capability's name.
	MaxCapabilityBytes = 64
)

// ValidCapability reports whether s can name a capability: 1 to 64 of
// A-Z, a-z, 0-9, '_', '-', ':' and '.'.
func ValidCapability(s string) bool {
	if len(s) == 0 || len(s) > MaxCapabilityBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == ':' || c == '.') {
			return false
		}
	}
	return true
}

// CheckCapabilities validates a capability list (a step's requires, an
// agent's capabilities): at most MaxCapabilities valid names, no repeats.
// field names the list in the error.
func CheckCapabilities(field string, caps []string) error {
	if len(caps) > MaxCapabilities {
		return invalid(field, "%d capabilities, more than the limit of %d (an agent serves 2^k lanes per type and priority)", len(caps), MaxCapabilities)
	}
	for i, c := range caps {
		if !ValidCapability(c) {
			return invalid(fmt.Sprintf("%s[%d]", field, i), "%q: use 1-%d letters, digits, '-', '_', ':' or '.'", c, MaxCapabilityBytes)
		}
		if slices.Index(caps, c) != i {
			return invalid(fmt.Sprintf("%s[%d]", field, i), "%q is listed twice", c)
		}
	}
	return nil
}

// CapKey is the lane key of a capability set: "" for none, else "c" and
// 12 hex digits of the SHA-256 of the sorted set. Order does not matter.
func CapKey(caps []string) string {
	if len(caps) == 0 {
		return ""
	}
	sorted := slices.Sorted(slices.Values(caps))
	sum := sha256.Sum256([]byte(strings.Join(sorted, "\n")))
	return "c" + hex.EncodeToString(sum[:6])
}

// LaneToken is the priority token of a lane subject: "3" for the plain
// lane, "3-c<key>" for the lane of tasks that require capabilities.
func LaneToken(priority int, caps []string) string {
	if k := CapKey(caps); k != "" {
		return strconv.Itoa(priority) + "-" + k
	}
	return strconv.Itoa(priority)
}

// ParseLaneToken reads a lane token back: its priority and capability key
// ("" for a plain lane).
func ParseLaneToken(tok string) (priority int, capKey string, ok bool) {
	p, key, found := strings.Cut(tok, "-")
	prio, err := strconv.Atoi(p)
	if err != nil || p != strconv.Itoa(prio) || prio < PriorityHighest || prio > PriorityLowest {
		return 0, "", false
	}
	if found && (len(key) != 13 || key[0] != 'c' || !isHex(key[1:])) {
		return 0, "", false
	}
	return prio, key, true
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// Subsets lists every subset of caps (the empty one first), each sorted:
// the capability sets whose lanes an agent advertising caps serves.
func Subsets(caps []string) [][]string {
	sorted := slices.Sorted(slices.Values(caps))
	out := make([][]string, 0, 1<<len(sorted))
	for mask := 0; mask < 1<<len(sorted); mask++ {
		var s []string
		for i, c := range sorted {
			if mask&(1<<i) != 0 {
				s = append(s, c)
			}
		}
		out = append(out, s)
	}
	return out
}

// HasAll reports whether have holds every capability of need.
func HasAll(have, need []string) bool {
	for _, c := range need {
		if !slices.Contains(have, c) {
			return false
		}
	}
	return true
}

// Resources is what one task of a step needs: CPUs (cores, fractions
// allowed) and Memory (bytes). Zero means nothing declared. An agent with
// a capacity (--cpus, --memory) runs at once only tasks whose needs fit
// what its running tasks leave.
type Resources struct {
	CPUs   float64  `json:"cpus,omitempty"`
	Memory ByteSize `json:"memory,omitempty"`
}

// UnmarshalJSON decodes strictly, so that an error names the field inside
// resources at fault ("resources.memory").
func (r *Resources) UnmarshalJSON(b []byte) error {
	type plain Resources
	var p plain
	if err := strictJSON(b, &p); err != nil {
		return jsonError("resources", err)
	}
	*r = Resources(p)
	return nil
}

// Bounds of a step's resources.
const (
	MaxCPUs   = 4096
	MaxMemory = 1 << 50 // 1 PiB
)

// CPUMilli is the CPUs in thousandths of a core, as tasks carry them.
func (r Resources) CPUMilli() int64 { return int64(math.Round(r.CPUs * 1000)) }

func (r Resources) validate(field string) error {
	switch {
	case r.CPUs < 0 || r.CPUs > MaxCPUs || math.IsNaN(r.CPUs):
		return invalid(field+".cpus", "%v is out of range 0..%d", r.CPUs, MaxCPUs)
	case r.CPUs > 0 && r.CPUMilli() == 0:
		return invalid(field+".cpus", "%v is below the smallest unit, 0.001", r.CPUs)
	case r.Memory < 0 || r.Memory > MaxMemory:
		return invalid(field+".memory", "%d bytes is out of range 0..1PiB", int64(r.Memory))
	}
	return nil
}

// ByteSize is a size in bytes, written in JSON as a number of bytes or a
// string such as "512MiB", "1.5GB", "64k".
type ByteSize int64

var byteUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1e3, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1e6, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1e9, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1e12, "tib": 1 << 40,
}

// ParseByteSize reads "512MiB", "1.5GB", "64k" or "1048576". K, M, G and
// T alone are powers of 1024, as in `--memory 2G` of container runtimes.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mul, ok := byteUnits[unit]
	v, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || num == "" {
		return 0, fmt.Errorf("size %q: want a number of bytes or a form like \"512MiB\", \"2GB\", \"64k\"", Short(s))
	}
	b := v * mul
	if b > MaxMemory {
		return 0, fmt.Errorf("size %q: more than 1PiB", Short(s))
	}
	return ByteSize(math.Round(b)), nil
}

// UnmarshalJSON accepts a number of bytes or a string ParseByteSize reads.
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		v, err := ParseByteSize(s)
		if err != nil {
			return err
		}
		*b = v
		return nil
	}
	var n float64
	if err := json.Unmarshal(data, &n); err != nil {
		return fmt.Errorf("size: want a number of bytes or a string like \"512MiB\"")
	}
	if n < 0 || n > MaxMemory {
		return fmt.Errorf("size %v: out of range 0..1PiB", n)
	}
	*b = ByteSize(math.Round(n))
	return nil
}

// Need is one distinct demand of a workflow's tasks: a type, the
// capabilities it requires and the resources one task needs. The workflow
// record lists them, so that submit and status can say when no live agent
// meets one.
type Need struct {
	Type     string   `json:"type"`
	Requires []string `json:"requires,omitempty"`
	CPUMilli int64    `json:"cpu_milli,omitempty"`
	Memory   int64    `json:"memory,omitempty"`
}

// MaxNeeds bounds the needs a workflow record lists: beyond it, submit and
// status do not check a job's further distinct demands.
const MaxNeeds = 64

// ValidNeeds keeps, of needs read from a record anyone may have written,
// at most MaxNeeds that a planner could have written: a valid type, valid
// capabilities, resources in range.
func ValidNeeds(needs []Need) []Need {
	var out []Need
	for _, n := range needs {
		if len(out) == MaxNeeds {
			break
		}
		if ValidToken(n.Type) && CheckCapabilities("requires", n.Requires) == nil &&
			n.CPUMilli >= 0 && n.CPUMilli <= MaxCPUs*1000 && n.Memory >= 0 && n.Memory <= MaxMemory {
			out = append(out, n)
		}
	}
	return out
}

// MaxWarnings bounds the warnings a submit reply or a workflow view lists.
const MaxWarnings = 16

// Offers indexes what live agents offer, by type, for checking needs: built
// once from a registry listing, it answers each need in time bounded by the
// agents of its type. An entry that routes on more than MaxCapabilities
// (no agent does) is left out. Use NewOffers.
type Offers struct {
	byType map[string][]offer
}

type offer struct {
	routing  []string
	cpu, mem int64
}

// NewOffers indexes the agents that have not failed.
func NewOffers(agents []AgentInfo) Offers {
	o := Offers{byType: map[string][]offer{}}
	for _, a := range agents {
		if a.Status == AgentFailed || len(a.Routing) > MaxCapabilities {
			continue
		}
		for _, t := range a.Types {
			o.byType[t] = append(o.byType[t], offer{routing: a.Routing, cpu: a.CPUMilli, mem: a.Memory})
		}
	}
	return o
}

// Meets reports whether a live agent can run a task of n: it serves the
// type, routes on every capability required, and its capacity (where
// declared) holds the task's needs.
func (o Offers) Meets(n Need) bool {
	for _, a := range o.byType[n.Type] {
		if HasAll(a.routing, n.Requires) && (a.cpu <= 0 || n.CPUMilli <= a.cpu) && (a.mem <= 0 || n.Memory <= a.mem) {
			return true
		}
	}
	return false
}

// Unmet lists, at most MaxWarnings, warnings for the needs no agent meets;
// a need whose type no agent serves at all is left to the type check.
func (o Offers) Unmet(needs []Need) []string {
	var out []string
	for _, n := range needs {
		if len(n.Requires) == 0 && n.CPUMilli == 0 && n.Memory == 0 {
			continue
		}
		if len(o.byType[n.Type]) == 0 || o.Meets(n) {
			continue
		}
		var want []string
		if len(n.Requires) > 0 {
			want = append(want, "capabilities "+strings.Join(n.Requires, ", "))
		}
		if n.CPUMilli > 0 {
			want = append(want, fmt.Sprintf("%g cpus", float64(n.CPUMilli)/1000))
		}
		if n.Memory > 0 {
			want = append(want, fmt.Sprintf("%d bytes of memory", n.Memory))
		}
		out = append(out, fmt.Sprintf("no live agent of type %q has %s: its tasks wait on their lane until one starts", n.Type, strings.Join(want, " and ")))
		if len(out) == MaxWarnings {
			break
		}
	}
	return out
}
