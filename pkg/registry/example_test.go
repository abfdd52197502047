package registry_test

import (
	"fmt"
	"slices"
	"strings"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/baton-dev/baton/pkg/registry"
)

// A failed agent's types do not count as served.
func ExampleServedTypes() {
	agents := []events.AgentInfo{
		{ID: "a", Types: []string{"research", "write"}, Status: events.AgentBusy},
		{ID: "b", Types: []string{"data"}, Status: events.AgentFailed},
	}
	var served []string
	for t := range registry.ServedTypes(agents) {
		served = append(served, t)
	}
	slices.Sort(served)
	fmt.Println(strings.Join(served, ","), len(registry.Live(agents)))
	// Output: research,write 1
}
