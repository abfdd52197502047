package aggregator

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/baton-dev/baton/pkg/events"
)

// outputRoom is what an output message's subject and headers may take of
// the server's max payload.
const outputRoom = 1024

// errPartialTooLarge says a partial output holds too many task results for
// one message: fewer go in each.
var errPartialTooLarge = errors.New("partial output larger than a message may be")

// maxOutput is how many bytes an output's JSON may take.
func (a *Aggregator) maxOutput() int { return int(a.nc.MaxPayload()) - outputRoom }

// encodeOutput is out as JSON of at most max bytes. A partial output that
// would be larger is errPartialTooLarge (sendPartials splits it); a final
// or ready output is made to fit (fitOutput).
func encodeOutput(out events.Output, max int) ([]byte, error) {
	b, err := json.Marshal(out)
	if err != nil || len(b) <= max {
		return b, err
	}
	if out.Kind == events.OutputPartial {
		return nil, errPartialTooLarge
	}
	return fitOutput(out, max, len(b))
}

// fitPartial returns how many of results, from the first, the next partial
// output holds, and its encoding: at most most, and few enough that
// encode(n) fits. A result whose data alone is too much loses it
// (DataTooLarge: the final output and its stored result have it); one too
// much even so is errPartialTooLarge.
func fitPartial(results []events.TaskOutput, most int, encode func(n int) ([]byte, error)) (int, []byte, error) {
	n := min(len(results), most)
	for {
		b, err := encode(n)
		switch {
		case !errors.Is(err, errPartialTooLarge):
			return n, b, err
		case n > 1:
			n /= 2
		case results[0].Data != nil:
			results[0].Data, results[0].DataTooLarge = nil, true
		default:
			return 0, nil, err
		}
	}
}

// fitOutput makes a final or ready output of size bytes fit in max: a
// workflow whose results add up to more than one message may hold still
// gets its final output, rather than one retried forever. The data goes
// first (each task's data stays in its stored result: baton results), then
// halves of the longest lists, errors included, until it fits. An error of
// kind too_large, first among the errors, says what was left out.
func fitOutput(out events.Output, max, size int) ([]byte, error) {
	out.Data = nil
	errs := out.Errors
	var cut struct{ errors, missing, interpolated, agents int }
	md := out.Metadata
	if md != nil {
		c := *md // not the caller's
		md = &c
		out.Metadata = md
	}
	for {
		what := fmt.Sprintf("the output was %d bytes, more than the %d a message may take here: its data is left out", size, max)
		if cut.errors+cut.missing+cut.interpolated+cut.agents > 0 {
			what += fmt.Sprintf(", and %d errors, %d missing tasks, %d interpolated tasks and %d agents of its lists", cut.errors, cut.missing, cut.interpolated, cut.agents)
		}
		out.Errors = append([]events.TaskError{{Status: out.Status, Kind: events.KindTooLarge, Message: what,
			Remediation: "read each task's result (baton results " + out.Workflow + "); have tasks return references to large data rather than the data"}}, errs...)
		b, err := json.Marshal(out)
		if err != nil || len(b) <= max {
			return b, err
		}
		switch {
		case len(errs) >= len(out.Missing) && halve(&errs, &cut.errors):
		case halve(&out.Missing, &cut.missing):
		case md != nil && halve(&md.Interpolated, &cut.interpolated):
		case md != nil && halve(&md.Agents, &cut.agents):
		default:
			return b, nil // nothing left to cut: the server refuses it, and says so
		}
	}
}

// halve cuts the second half off list and counts it into cut; false if
// list is empty.
func halve[T any](list *[]T, cut *int) bool {
	n := len(*list)
	if n == 0 {
		return false
	}
	*cut += n - n/2
	*list = (*list)[:n/2]
	return true
}
