//go:build !linux

package cli

import "syscall"

// childAttr is nothing special where Pdeathsig does not exist.
func childAttr() *syscall.SysProcAttr { return nil }
