//go:build !unix

package embedded

import "os"

// lockFile is a no-op where flock does not exist: the store is not
// protected against a second process there.
func lockFile(*os.File) error { return nil }
