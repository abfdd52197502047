package builtin

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/baton-dev/baton/pkg/agent"
)

// Options configures the handlers that need it.
type Options struct {
	// Exec is the command (program and arguments, no shell) the exec type
	// runs per task.
	Exec []string
	// URL is where the http type POSTs each task.
	URL string
}

// ErrUnknownType is returned by Register for a type with no built-in handler.
var ErrUnknownType = errors.New("no built-in handler")

// ErrNotConfigured is returned by Register for exec or http without options.
var ErrNotConfigured = errors.New("built-in handler needs configuration")

var constructors = map[string]func(Options) (agent.Handler, error){
	"research": func(Options) (agent.Handler, error) { return agent.HandlerFunc(Research), nil },
	"data": func(Options) (agent.Handler, error) {
		return agent.CPUBound(0)(agent.HandlerFunc(Data)), nil
	},
	"write": func(Options) (agent.Handler, error) { return agent.HandlerFunc(Write), nil },
	"sleep": func(Options) (agent.Handler, error) { return agent.HandlerFunc(Sleep), nil },
	"noop":  func(Options) (agent.Handler, error) { return agent.HandlerFunc(Noop), nil },
	"exec": func(o Options) (agent.Handler, error) {
		if len(o.Exec) == 0 {
			return nil, fmt.Errorf("%w: exec needs a command", ErrNotConfigured)
		}
		return Exec(o.Exec), nil
	},
	"http": func(o Options) (agent.Handler, error) {
		if o.URL == "" {
			return nil, fmt.Errorf("%w: http needs a URL", ErrNotConfigured)
		}
		return HTTP(o.URL, nil), nil
	},
}

// Types lists the built-in task types.
func Types() []string {
	out := make([]string, 0, len(constructors))
	for t := range constructors {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Register adds the built-in handler of each type to a.
func Register(a *agent.Agent, types []string, o Options) error {
	for _, t := range types {
		mk, ok := constructors[t]
		if !ok {
			return fmt.Errorf("%w for type %q (built-in types: %s)", ErrUnknownType, t, strings.Join(Types(), ", "))
		}
		h, err := mk(o)
		if err != nil {
			return err
		}
		a.Handle(t, h)
	}
	return nil
}
