// Package examples holds the example jobs, embedded so that `baton demo`
// runs them from any directory.
package examples

import "embed"

// Jobs holds every *.json file of this directory.
//
//go:embed *.json
var Jobs embed.FS

// Job returns the example job called name (without ".json").
func Job(name string) ([]byte, error) { return Jobs.ReadFile(name + ".json") }
