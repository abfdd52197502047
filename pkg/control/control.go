package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// HandlerFunc answers one request. ctx ends when the service stops.
type HandlerFunc func(ctx context.Context, body []byte) (any, error)

// Service describes a control service.
type Service struct {
	Name        string
	Version     string // semantic; "0.0.0" if not
	Description string
	Subjects    events.Subjects
	Handlers    map[string]HandlerFunc // verb → handler
}

// Errorf builds a *events.ControlError with a code and a message.
func Errorf(code int, format string, args ...any) error {
	return &events.ControlError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Start registers the service on nc. Handlers run on the service's
// goroutines with a context that ends with ctx. The caller stops the
// service with Stop.
func Start(ctx context.Context, nc *nats.Conn, s Service) (micro.Service, error) {
	svc, err := micro.AddService(nc, micro.Config{Name: s.Name, Version: Semver(s.Version), Description: s.Description})
	if err != nil {
		return nil, fmt.Errorf("control: service %s: %w", s.Name, err)
	}
	for verb, h := range s.Handlers {
		err := svc.AddEndpoint(verb, micro.HandlerFunc(func(r micro.Request) {
			v, err := h(ctx, r.Data())
			respond(r, v, err, nc.MaxPayload())
		}),
			micro.WithEndpointSubject(s.Subjects.Control(verb)))
		if err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("control: service %s: %w", s.Name, err)
		}
	}
	return svc, nil
}

// Reply is a handler's answer with headers besides its JSON body (a page
// of a list says in headers how much it left out, where the body is a bare
// list).
type Reply struct {
	Body   any
	Header map[string]string
}

func respond(r micro.Request, v any, err error, maxPayload int64) {
	if err == nil {
		err = respondValue(r, v, maxPayload)
		if err == nil {
			return
		}
	}
	var ve *events.ValidationError
	if errors.As(err, &ve) {
		body, _ := json.Marshal(events.SubmitReply{Error: ve})
		_ = r.Error("400", ve.Error(), body)
		return
	}
	var ce *events.ControlError
	if !errors.As(err, &ce) {
		ce = &events.ControlError{Code: 500, Message: err.Error()}
	}
	body, _ := json.Marshal(ce)
	_ = r.Error(strconv.Itoa(ce.Code), ce.Message, body)
}

// headerRoom is what a reply's headers may take of the max payload.
const headerRoom = 4 << 10

// respondValue sends v as the reply. A reply too large for the server's
// max payload is an error to answer with, not silence that leaves the
// requester waiting for its timeout.
func respondValue(r micro.Request, v any, maxPayload int64) error {
	hdr := micro.Headers{}
	if reply, ok := v.(Reply); ok {
		for k, val := range reply.Header {
			hdr[k] = []string{val}
		}
		v = reply.Body
	}
	body, ok := v.(json.RawMessage)
	if ok {
		hdr[events.HeaderContentType] = []string{events.ContentJSON}
	} else {
		var err error
		if body, err = json.Marshal(v); err != nil {
			return fmt.Errorf("control: encode reply: %w", err)
		}
	}
	if maxPayload > 0 && int64(len(body)) > maxPayload-headerRoom {
		return Errorf(500, "the reply would be %d bytes, more than the server's max payload of %d: ask for less", len(body), maxPayload)
	}
	var opts []micro.RespondOpt
	if len(hdr) > 0 {
		opts = append(opts, micro.WithHeaders(hdr))
	}
	_ = r.Respond(body, opts...) // if it fails, the requester or the connection is gone: nobody to tell
	return nil
}

// Request parses a control request body, answering a bad one with a 400.
func Request(body []byte) (*events.ControlRequest, error) {
	req, err := events.ParseControl(body)
	if err != nil {
		return nil, &events.ControlError{Code: 400, Message: err.Error()}
	}
	return req, nil
}

// Semver returns v without a leading "v" if it is a semantic version
// (major.minor.patch), as the service protocol requires, else "0.0.0".
func Semver(v string) string {
	v = trimV(v)
	n, parts := 0, 0
	for i := 0; i <= len(v); i++ {
		if i == len(v) || v[i] == '.' {
			if n == 0 {
				return "0.0.0"
			}
			parts, n = parts+1, 0
			continue
		}
		if v[i] < '0' || v[i] > '9' {
			return "0.0.0"
		}
		n++
	}
	if parts != 3 {
		return "0.0.0"
	}
	return v
}

func trimV(v string) string {
	if len(v) > 0 && v[0] == 'v' {
		return v[1:]
	}
	return v
}
