package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/sagaflow/sagaflow/contract"
)

// devServerArgs are the dev server's flags: in memory, one task queue
// partition (as `make demo` and the tests run it, so a poller sees every
// task), the sagas' search attributes, and eager workflow start allowed,
// which the eager-start variant needs and nothing else uses. A positive
// transferPollRPS raises history.transferProcessorMaxPollRPS (default 20):
// how often the history service may read its transfer queue, whose tasks
// (dispatch a workflow or activity task, start a child, deliver a signal)
// each step of a saga waits for.
func devServerArgs(hostPort string, transferPollRPS int) []string {
	host, port, _ := net.SplitHostPort(hostPort)
	args := []string{"server", "start-dev", "--ip", host, "--port", port, "--headless",
		"--namespace", "default", "--log-level", "warn",
		"--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
		"--dynamic-config-value", "matching.numTaskqueueWritePartitions=1",
		"--dynamic-config-value", "system.enableEagerWorkflowStart=true",
	}
	if transferPollRPS > 0 {
		args = append(args, "--dynamic-config-value", fmt.Sprintf("history.transferProcessorMaxPollRPS=%d", transferPollRPS))
	}
	for _, sa := range contract.SearchAttributes() {
		args = append(args, "--search-attribute", sa)
	}
	return args
}

// devServer is a running `temporal server start-dev`.
type devServer struct {
	HostPort string
	cmd      *exec.Cmd
	done     chan struct{}
	logPath  string
}

// startDevServer starts the dev server from the Temporal CLI at cli and
// waits until it answers health checks. The port is chosen free and then
// bound by the server, so another process can take it in between (the
// cluster row's nodes open connections on ephemeral ports): a server that
// exits while starting is started again on another port, up to three
// times.
func startDevServer(ctx context.Context, cli, dir string, transferPollRPS int) (*devServer, error) {
	var errs []error
	for attempt := 1; attempt <= 3; attempt++ {
		s, err := startDevServerOnce(ctx, cli, dir, transferPollRPS, attempt)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil || !errors.Is(err, errExitedWhileStarting) {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// errExitedWhileStarting is what a dev server that ended before it answered
// fails with.
var errExitedWhileStarting = errors.New("temporal dev server exited while starting")

func startDevServerOnce(ctx context.Context, cli, dir string, transferPollRPS, attempt int) (*devServer, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s := &devServer{HostPort: addr, done: make(chan struct{}), logPath: filepath.Join(dir, fmt.Sprintf("temporal-%s-%d-%d.log", strings.ReplaceAll(addr, ":", "-"), transferPollRPS, attempt))}
	logFile, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	// Not bound to ctx: the server must outlive a Ctrl-C until the worker
	// stopped, and stop() ends it.
	s.cmd = command(context.WithoutCancel(ctx), cli, devServerArgs(addr, transferPollRPS)...)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s: %w", cli, err)
	}
	go func() { _ = s.cmd.Wait(); _ = logFile.Close(); close(s.done) }()

	c, err := s.dial(ctx)
	if err != nil {
		_ = s.stop()
		return nil, err
	}
	c.Close()
	return s, nil
}

// dial connects a client, retrying until the server answers (it takes a
// few seconds to start) or 60 s passed.
func (s *devServer) dial(ctx context.Context) (client.Client, error) {
	deadline := time.Now().Add(60 * time.Second)
	logger := tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return nil, fmt.Errorf("%w; see %s\n%s", errExitedWhileStarting, s.logPath, tailFile(s.logPath, 20))
		case <-ctx.Done():
			return nil, ctx.Err()
		default:
		}
		c, err := client.Dial(client.Options{HostPort: s.HostPort, Namespace: "default", Logger: logger})
		if err == nil {
			hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err = c.CheckHealth(hctx, &client.CheckHealthRequest{})
			cancel()
			if err == nil {
				return c, nil
			}
			c.Close()
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return nil, fmt.Errorf("temporal dev server at %s not healthy after 60s: %v; see %s", s.HostPort, last, s.logPath)
}

// Addr is the server's gRPC host:port.
func (s *devServer) Addr() string { return s.HostPort }

// PID is the server's process id.
func (s *devServer) PIDs() []int { return []int{s.cmd.Process.Pid} }

// stop interrupts the server, as Ctrl-C in its terminal would.
func (s *devServer) stop() error {
	return stopProcess(s.cmd, s.done, syscall.SIGINT, 20*time.Second)
}
