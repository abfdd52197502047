package service

import "syscall"

var sigterm = syscall.SIGTERM
