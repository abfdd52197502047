package service

import "errors"

// ErrContext is wrapped by Connect's error when the nats context that
// --context or NATS_CONTEXT names cannot be read or used: no context of
// that name, a file that is not a context, or a file the context names (its
// creds, nkey seed, certificates) that cannot be loaded.
var ErrContext = errors.New("--context")
