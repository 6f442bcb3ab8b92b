package main

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// command is exec.CommandContext for the run's child processes. Each gets
// a process group of its own, so a Ctrl-C on the terminal reaches only the
// benchmark, which then stops its children in order (the worker before the
// dev server, the vhost last). When ctx ends the whole group is killed,
// `go test`'s test binary included. The kernel kills the child if the
// benchmark itself dies without cleaning up.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return killGroup(cmd, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// killGroup sends sig to the process group of a started cmd.
func killGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	if cmd.Process == nil {
		return nil
	}
	return syscall.Kill(-cmd.Process.Pid, sig)
}

// stopProcess sends sig to cmd's process group and waits for done to
// close; after grace it kills the group.
func stopProcess(cmd *exec.Cmd, done <-chan struct{}, sig syscall.Signal, grace time.Duration) error {
	select {
	case <-done:
		return nil
	default:
	}
	_ = killGroup(cmd, sig)
	select {
	case <-done:
		return nil
	case <-time.After(grace):
		_ = killGroup(cmd, syscall.SIGKILL)
		<-done
		return fmt.Errorf("%s did not stop within %s of %s; killed", filepath.Base(cmd.Path), grace, sig)
	}
}

// freeAddr returns a loopback host:port nobody listens on right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}
