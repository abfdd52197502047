// Package lease signs every task the planner queues with an unguessable
// token and checks that each result carries its task's token.
//
// A token is an HMAC-SHA256 of the task's workflow, id, round and
// generation under a key kept in the keys bucket, which only the planner
// and the aggregator may read. An agent learns the token of the tasks it is
// given and echoes it in their results; a publisher who never received the
// task cannot make one, so it cannot complete, fail or cancel the task.
// Checking costs one HMAC: no state, no lookup.
package lease

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"sync"
	"time"

	"github.com/baton-dev/baton/pkg/events"
	"github.com/nats-io/nats.go/jetstream"
)

// KeyName is the entry of the keys bucket that holds the lease key.
const KeyName = "lease"

// keyBytes is the key's size; tokenBytes how much of the HMAC a token keeps
// (128 bits: unguessable, and short on the wire).
const (
	keyBytes   = 32
	tokenBytes = 16
)

// Key signs and checks lease tokens. Safe for concurrent use.
type Key struct {
	pool sync.Pool // of *mac, keyed with the secret
}

// mac is a keyed hash with room for its input and sum, so that a token
// costs no allocation but its string.
type mac struct {
	h   hash.Hash
	buf [128]byte
	sum [sha256.Size]byte
}

// NewKey returns a Key for secret, which must be 32 bytes.
func NewKey(secret []byte) (*Key, error) {
	if len(secret) != keyBytes {
		return nil, fmt.Errorf("lease: key is %d bytes, want %d", len(secret), keyBytes)
	}
	s := append([]byte(nil), secret...)
	k := &Key{}
	k.pool.New = func() any { return &mac{h: hmac.New(sha256.New, s)} }
	return k, nil
}

// Random returns a Key with a fresh random secret (for tests and for the
// first planner of a deployment, through Load).
func Random() (*Key, []byte) {
	secret := make([]byte, keyBytes)
	_, _ = rand.Read(secret) // never fails (crypto/rand)
	k, _ := NewKey(secret)
	return k, secret
}

// Token returns the token of one round and generation of a task.
func (k *Key) Token(workflow, task string, round, gen int) string {
	m := k.pool.Get().(*mac)
	defer k.pool.Put(m)
	m.h.Reset()
	b := append(m.buf[:0], workflow...)
	b = append(b, 0)
	b = append(b, task...)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(round), 10)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(gen), 10)
	_, _ = m.h.Write(b)
	return base64.RawURLEncoding.EncodeToString(m.h.Sum(m.sum[:0])[:tokenBytes])
}

// Checkpoint returns the MAC of a workflow's checkpoint seq, which a
// resume token carries (events.CheckpointToken). Its input has one field
// fewer than a task token's, so neither can stand for the other.
func (k *Key) Checkpoint(workflow string, seq int) string {
	m := k.pool.Get().(*mac)
	defer k.pool.Put(m)
	m.h.Reset()
	b := append(m.buf[:0], "checkpoint"...)
	b = append(b, 0)
	b = append(b, workflow...)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(seq), 10)
	_, _ = m.h.Write(b)
	return base64.RawURLEncoding.EncodeToString(m.h.Sum(m.sum[:0])[:tokenBytes])
}

// CheckCheckpoint reports, in constant time, whether mac is the MAC of
// the workflow's checkpoint seq.
func (k *Key) CheckCheckpoint(workflow string, seq int, mac string) bool {
	return hmac.Equal([]byte(k.Checkpoint(workflow, seq)), []byte(mac))
}

// Sign sets t's token.
func (k *Key) Sign(t *events.Task) { t.Lease = k.Token(t.Workflow, t.ID, t.Round, t.Gen) }

// SignResult sets the token of a result its writer decided itself (the
// planner's cancellations, for instance).
func (k *Key) SignResult(r *events.Result) { r.Lease = k.Token(r.Workflow, r.Task, r.Round, r.Gen) }

// ErrLease is wrapped by Check's error. It wraps events.ErrForged: a result
// without its task's token is forged.
var ErrLease = fmt.Errorf("%w: lease token does not match", events.ErrForged)

// Check reports whether r carries the token of its task's round and
// generation. The comparison takes constant time.
func (k *Key) Check(r *events.Result) error {
	want := k.Token(r.Workflow, r.Task, r.Round, r.Gen)
	if r.Lease == "" {
		return fmt.Errorf("%w: result for %s/%s has none", ErrLease, events.Short(r.Workflow), events.Short(r.Task))
	}
	if !hmac.Equal([]byte(want), []byte(r.Lease)) {
		return fmt.Errorf("%w: result for %s/%s round %d generation %d", ErrLease, events.Short(r.Workflow), events.Short(r.Task), r.Round, r.Gen)
	}
	return nil
}

// CheckFor is Check for a result of the workflow rec: workflows submitted
// before tokens existed (rec.Leased false) have none to check.
func (k *Key) CheckFor(rec *events.Workflow, r *events.Result) error {
	if !rec.Leased {
		return nil
	}
	return k.Check(r)
}

// Open loads the deployment's lease key from the named bucket (see Load).
func Open(ctx context.Context, js jetstream.JetStream, bucket string) (*Key, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("lease: keys bucket: %w", err)
	}
	return Load(ctx, kv)
}

// Await reads the deployment's lease key from the named bucket, waiting
// until a planner has created it: for a service whose role may read the
// key but not write it (the aggregator), which may start first. It
// returns ctx's error if ctx ends before the key exists.
func Await(ctx context.Context, js jetstream.JetStream, bucket string) (*Key, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("lease: keys bucket: %w", err)
	}
	wait := 20 * time.Millisecond
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
		}
		e, err := kv.Get(ctx, KeyName)
		switch {
		case err == nil:
			return NewKey(e.Value())
		case !errors.Is(err, jetstream.ErrKeyNotFound) && ctx.Err() == nil:
			return nil, fmt.Errorf("lease: read key: %w", err)
		}
		timer.Reset(wait)
		wait = min(2*wait, time.Second)
	}
}

// Load reads the deployment's lease key from the keys bucket, creating it
// if no planner or aggregator has yet. Any number may race: the bucket
// keeps the first key written, and every one reads that.
func Load(ctx context.Context, kv jetstream.KeyValue) (*Key, error) {
	for range 3 {
		e, err := kv.Get(ctx, KeyName)
		if err == nil {
			return NewKey(e.Value())
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("lease: read key: %w", err)
		}
		_, secret := Random()
		if _, err := kv.Create(ctx, KeyName, secret); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("lease: create key: %w", err)
		}
	}
	return nil, errors.New("lease: key neither readable nor creatable")
}
