package cli

import "syscall"

// childAttr makes the kernel kill a child of bench --suite when this
// process dies, so that an interrupted benchmark leaves nothing running.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
