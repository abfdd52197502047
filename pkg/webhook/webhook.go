package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/baton-dev/baton/pkg/events"
)

// ErrBusy is the Outcome.Err of a notification dropped because MaxInFlight
// were already being sent.
var ErrBusy = errors.New("webhook: too many notifications in flight")

// ErrTooLarge is the Outcome.Err of a payload over MaxBytes.
var ErrTooLarge = errors.New("webhook: payload too large")

// Config tunes a Sender. The zero value is usable.
type Config struct {
	// Timeout bounds one POST; default 5s.
	Timeout time.Duration
	// Attempts bounds the POSTs of one notification; default 3, at most 5.
	Attempts int
	// Backoff is the wait before the second attempt, doubling after;
	// default 500ms.
	Backoff time.Duration
	// MaxInFlight bounds the notifications being sent at once; default 8.
	MaxInFlight int
	// MaxBytes bounds a payload; default 16 KiB.
	MaxBytes int
	// Client sends the requests; default one with no redirects followed.
	Client *http.Client
}

func (c *Config) setDefaults() {
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Attempts <= 0 {
		c.Attempts = 3
	}
	c.Attempts = min(c.Attempts, 5)
	if c.Backoff <= 0 {
		c.Backoff = 500 * time.Millisecond
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 8
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 16 << 10
	}
	if c.Client == nil {
		// A redirect could send the POST anywhere: not followed.
		c.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
}

// Outcome is what became of one notification.
type Outcome struct {
	URL      string
	Key      string // what the caller named it by (a workflow id)
	Attempts int
	Status   int   // HTTP status of the last response; 0 if none
	Err      error // nil when a 2xx response came back
}

// Sender sends notifications. Its methods may be called from any
// goroutine.
type Sender struct {
	cfg    Config
	report func(Outcome)
	slots  chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Sender that calls report with each outcome (from the
// sending goroutine). Stop it when done.
func New(cfg Config, report func(Outcome)) *Sender {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Sender{cfg: cfg, report: report, slots: make(chan struct{}, cfg.MaxInFlight), ctx: ctx, cancel: cancel}
}

// Send POSTs body as JSON to url on a goroutine of its own and returns at
// once. The URL must pass events.CheckWebhookURL.
func (s *Sender) Send(url, key string, body []byte) {
	if err := events.CheckWebhookURL(url); err != nil {
		s.report(Outcome{URL: url, Key: key, Err: fmt.Errorf("webhook: %w", err)})
		return
	}
	if len(body) > s.cfg.MaxBytes {
		s.report(Outcome{URL: url, Key: key, Err: ErrTooLarge})
		return
	}
	select {
	case s.slots <- struct{}{}:
	default:
		s.report(Outcome{URL: url, Key: key, Err: ErrBusy})
		return
	}
	s.wg.Go(func() {
		defer func() { <-s.slots }()
		s.report(s.post(url, key, body))
	})
}

// Stop abandons the notifications in flight and waits for their
// goroutines. It may be called twice.
func (s *Sender) Stop() {
	s.cancel()
	s.wg.Wait()
}

func (s *Sender) post(url, key string, body []byte) Outcome {
	out := Outcome{URL: url, Key: key}
	wait := s.cfg.Backoff
	for out.Attempts < s.cfg.Attempts {
		if out.Attempts > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				out.Err = fmt.Errorf("webhook: stopped: %w", out.Err)
				return out
			}
			wait *= 2
		}
		out.Attempts++
		out.Status, out.Err = s.once(url, body)
		if out.Err == nil {
			return out
		}
		if out.Status >= 400 && out.Status < 500 && out.Status != http.StatusTooManyRequests {
			return out // the receiver refuses it: asking again cannot help
		}
	}
	return out
}

func (s *Sender) once(url string, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "baton-webhook")
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("webhook: %s answered %s", url, resp.Status)
	}
	return resp.StatusCode, nil
}
