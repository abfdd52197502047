package streams

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ConfirmWait bounds how long a publish waits for the server's
// acknowledgement; past it the message counts as not stored (publishing
// it again is safe: its Nats-Msg-Id stores it once). It is as long as
// nats.go waits for a publish's acknowledgement by default. An
// acknowledgement is lost when the stream's leader node dies with the
// message in flight, and everything the planner dispatches waits that
// long then: 10 s made a failover of the TASKS leader cost 12–16 s
// against 6.4 s undisturbed.
const ConfirmWait = 5 * time.Second

// Confirms publishes messages to streams without waiting for their
// acknowledgements: each goes out with a reply subject of the
// connection's own inbox, and its settle function learns whether the
// stream stored it. One subscription takes every answer, and one sweep a
// second gives up on those older than ConfirmWait: no timer, goroutine or
// future is spent per message, and the usual answer is read without a
// JSON decoder. It is what the agents' results, the planner's tasks and
// the aggregator's partial outputs go out with.
type Confirms struct {
	nc     *nats.Conn
	prefix string // <inbox>.
	sub    *nats.Subscription

	mu      sync.Mutex
	next    uint64
	pending map[uint64]*pendingAck
	stop    chan struct{}
	swept   sync.WaitGroup
}

// pendingAck is one message waiting for its acknowledgement; settle is
// called once, with whether stream stored it.
type pendingAck struct {
	stream string
	sent   time.Time
	settle func(stored bool, err error)
}

// OpenConfirms subscribes to a fresh inbox of nc (its inbox prefix, which
// a role's permissions allow) and starts the sweep; Close stops both.
func OpenConfirms(nc *nats.Conn) (*Confirms, error) {
	c := &Confirms{nc: nc, prefix: nc.NewInbox() + ".", pending: map[uint64]*pendingAck{}, stop: make(chan struct{})}
	sub, err := nc.Subscribe(c.prefix+"*", c.onAck)
	if err != nil {
		return nil, fmt.Errorf("acknowledgement subscription: %w", err)
	}
	// A busy process must not lose acknowledgements to the default pending
	// limits: each is one small message per message in flight.
	if err := sub.SetPendingLimits(-1, 64<<20); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("acknowledgement subscription: %w", err)
	}
	c.sub = sub
	c.swept.Go(c.sweep)
	return c, nil
}

// Publish sends msg, which stream stores, on the connection the Confirms
// was opened on, with a reply subject of its own,
// and calls settle once its acknowledgement comes, the publish fails, or
// ConfirmWait passes. settle runs on the subscription's goroutine (or the
// caller's, when the publish fails at once) and must not block.
func (c *Confirms) Publish(msg *nats.Msg, stream string, settle func(stored bool, err error)) {
	c.mu.Lock()
	c.next++
	id := c.next
	c.pending[id] = &pendingAck{stream: stream, sent: time.Now(), settle: settle}
	c.mu.Unlock()
	msg.Reply = c.prefix + strconv.FormatUint(id, 10)
	if err := c.nc.PublishMsg(msg); err != nil {
		if p := c.take(id); p != nil {
			p.settle(false, err)
		}
	}
}

func (c *Confirms) take(id uint64) *pendingAck {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending[id]
	delete(c.pending, id)
	return p
}

// onAck reads one acknowledgement. Only the answer of the message's own
// stream with a sequence counts: anything else on the inbox (an error, a
// no responders status, a forged message) is a failure, so nothing is
// taken as stored that was not.
func (c *Confirms) onAck(m *nats.Msg) {
	id, err := strconv.ParseUint(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:], 10, 64)
	if err != nil {
		return
	}
	p := c.take(id)
	if p == nil {
		return // given up on already, or never ours
	}
	if storedAck(m.Data, p.stream) {
		p.settle(true, nil)
		return
	}
	var ack struct {
		Stream string `json:"stream"`
		Seq    uint64 `json:"seq"`
		Error  *struct {
			Code        int                 `json:"code"`
			ErrCode     jetstream.ErrorCode `json:"err_code"`
			Description string              `json:"description"`
		} `json:"error"`
	}
	switch {
	case len(m.Data) == 0 && m.Header.Get("Status") == "503":
		p.settle(false, jetstream.ErrNoStreamResponse)
	case json.Unmarshal(m.Data, &ack) != nil:
		p.settle(false, fmt.Errorf("unreadable acknowledgement %.64q", m.Data))
	case ack.Error != nil:
		p.settle(false, &jetstream.APIError{Code: ack.Error.Code, ErrorCode: ack.Error.ErrCode, Description: ack.Error.Description})
	case ack.Stream != p.stream || ack.Seq == 0:
		p.settle(false, fmt.Errorf("acknowledgement from stream %q, not %q", ack.Stream, p.stream))
	default:
		p.settle(true, nil)
	}
}

// sweep gives up, once a second, on acknowledgements older than ConfirmWait.
func (c *Confirms) sweep() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		var late []*pendingAck
		c.mu.Lock()
		for id, p := range c.pending {
			if time.Since(p.sent) > ConfirmWait {
				late = append(late, p)
				delete(c.pending, id)
			}
		}
		c.mu.Unlock()
		for _, p := range late {
			p.settle(false, fmt.Errorf("no acknowledgement within %v", ConfirmWait))
		}
	}
}

// Close stops the sweep and the subscription, settling what is pending as
// not stored.
func (c *Confirms) Close() {
	close(c.stop)
	c.swept.Wait()
	_ = c.sub.Unsubscribe()
	c.mu.Lock()
	left := c.pending
	c.pending = map[uint64]*pendingAck{}
	c.mu.Unlock()
	for _, p := range left {
		p.settle(false, fmt.Errorf("stopped before the acknowledgement"))
	}
}

// storedAck reads the server's usual acknowledgement without a JSON
// decoder: {"stream":"<stream>","seq":<n>} with, at most, a
// ,"duplicate":true before the brace. Any other form goes to the decoder.
func storedAck(data []byte, stream string) bool {
	const head, seq = `{"stream":"`, `","seq":`
	rest, ok := bytes.CutPrefix(data, []byte(head))
	if !ok {
		return false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(stream)); !ok {
		return false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(seq)); !ok {
		return false
	}
	digits := 0
	for digits < len(rest) && rest[digits] >= '0' && rest[digits] <= '9' {
		digits++
	}
	if digits == 0 || digits > 19 || rest[0] == '0' { // JSON has no leading zeros; seq 0 is none
		return false
	}
	rest = rest[digits:]
	rest, _ = bytes.CutPrefix(rest, []byte(`,"duplicate":true`))
	return string(rest) == "}"
}
