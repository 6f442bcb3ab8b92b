package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sagaflow/sagaflow/internal/temporalcluster"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
)

// selfHostedSettings names the self-hosted row's server in its settings.
const selfHostedSettings = "self-hosted Temporal on PostgreSQL (frontend, matching, worker, 2 history hosts)"

// selfHosted is a self-hosted Temporal server started for one run of a
// row: internal/temporalcluster's processes on fresh databases of the
// local PostgreSQL, with the dynamic config the tests' servers run with.
type selfHosted struct {
	c *temporalcluster.Cluster
}

// selfHostedHint is how to get the self-hosted server, or do without it.
const selfHostedHint = "run `make temporal-server`, or leave the row out with --skip-self-hosted"

// selfHostedAvailable fails with an errMissing when the server's
// binaries (where internal/temporalcluster looks for them: $TEMPORAL_SERVER
// and $TEMPORAL_SQL_TOOL, else ./bin) are not built, before any row ran.
func selfHostedAvailable(root string) error {
	for _, b := range []struct{ env, name string }{{"TEMPORAL_SERVER", "temporal-server"}, {"TEMPORAL_SQL_TOOL", "temporal-sql-tool"}} {
		p := os.Getenv(b.env)
		if p == "" {
			p = filepath.Join(root, "bin", b.name)
		}
		if info, err := os.Stat(p); err != nil || info.Mode()&0o111 == 0 {
			return &errMissing{fmt.Sprintf("self-hosted Temporal: %s is not built", p), selfHostedHint}
		}
	}
	return nil
}

func startSelfHosted(ctx context.Context, dir string) (*selfHosted, error) {
	opts := temporaltest.ClusterOptions("default")
	d, err := os.MkdirTemp(dir, "temporal-cluster-")
	if err != nil {
		return nil, err
	}
	opts.Dir = filepath.Join(d, "cluster")
	type started struct {
		c   *temporalcluster.Cluster
		err error
	}
	done := make(chan started, 1)
	go func() {
		c, err := temporalcluster.New(opts)
		done <- started{c, err}
	}()
	select {
	case s := <-done:
		if errors.Is(s.err, temporalcluster.ErrNotBuilt) {
			return nil, &errMissing{fmt.Sprintf("self-hosted Temporal: %v", s.err), selfHostedHint}
		}
		if s.err != nil {
			return nil, fmt.Errorf("start a self-hosted Temporal: %w", s.err)
		}
		return &selfHosted{c: s.c}, nil
	case <-ctx.Done():
		// New bounds its own start; what it started, Close removes.
		go func() {
			if s := <-done; s.c != nil {
				_ = s.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

func (s *selfHosted) Addr() string { return s.c.FrontendHostPort() }

// PIDs are every process of the server.
func (s *selfHosted) PIDs() []int {
	var out []int
	for _, svc := range s.c.Services() {
		if pid := svc.Pid(); pid > 0 {
			out = append(out, pid)
		}
	}
	return out
}

func (s *selfHosted) stop() error { return s.c.Close() }
