package procstat

import "errors"

// ErrUnsupported is returned where the operating system does not offer the
// figure (anything but Linux).
var ErrUnsupported = errors.New("procstat: not supported on this system")

// ErrFormat wraps a /proc file that does not read as expected.
var ErrFormat = errors.New("procstat: unexpected format")
