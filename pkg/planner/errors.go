package planner

import "errors"

// ErrConfig is wrapped by every Config.Validate error.
var ErrConfig = errors.New("planner: invalid config")
