package temporalcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"
)

// reservePorts finds a block of processes*portsPerProcess free ports from
// base upward and takes its lock file, which the cluster holds until
// Close: another cluster starting at the same time skips the block even
// before our processes bind it.
func reservePorts(base, processes int) (int, *os.File, error) {
	size := processes * portsPerProcess
	for b := base; b+size <= 65535 && b < base+100*size; b += size {
		lock, err := os.OpenFile(filepath.Join(os.TempDir(), fmt.Sprintf("sagaflow-temporalcluster-%d.lock", b)), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return 0, nil, err
		}
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			_ = lock.Close()
			continue
		}
		if blockFree(b, size) {
			return b, lock, nil
		}
		_ = lock.Close()
	}
	return 0, nil, fmt.Errorf("no block of %d free ports on 127.0.0.1 from %d upward", size, base)
}

func blockFree(base, size int) bool {
	for p := base; p < base+size; p++ {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		_ = ln.Close()
	}
	return true
}

// sqlTool runs temporal-sql-tool on a database of the local PostgreSQL.
func (c *Cluster) sqlTool(ctx context.Context, db string, args ...string) error {
	_, err := c.sqlToolOutput(ctx, db, args...)
	return err
}

func (c *Cluster) sqlToolOutput(ctx context.Context, db string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.opts.SQLToolPath, append(c.sqlToolArgs(db), args...)...)
	if c.opts.PostgresPassword != "" {
		cmd.Env = append(os.Environ(), "SQL_PASSWORD="+c.opts.PostgresPassword)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("temporal-sql-tool %s on %s: %v\n%s", strings.Join(args, " "), db, err, lastLines(string(out), 10))
	}
	return string(out), nil
}

func (c *Cluster) sqlToolArgs(db string) []string {
	host, port, err := net.SplitHostPort(c.opts.PostgresAddr)
	if err != nil {
		host, port = c.opts.PostgresAddr, "5432"
	}
	return []string{"--endpoint", host, "--port", port, "--user", c.opts.PostgresUser, "--plugin", "postgres12", "--database", db}
}

// schemas are the release's schemas of each database, embedded in the SQL
// tool: its versioned directories (schema/postgresql/v12/...).
var schemas = [...]string{"postgresql/v12/temporal", "postgresql/v12/visibility"}

// setUpDatabases creates the two databases and brings their schemas to
// the release's version. Databases that exist already (a named pair
// started before) are only updated.
func (c *Cluster) setUpDatabases(ctx context.Context) error {
	for i, db := range []string{c.db, c.visDB} {
		created := true
		if out, err := c.sqlToolOutput(ctx, db, "create-database", "--defaultdb", "postgres"); err != nil {
			if c.ownDBs || !strings.Contains(out, "already exists") {
				return err
			}
			created = false
		}
		if created {
			if err := c.sqlTool(ctx, db, "setup-schema", "--version", "0.0"); err != nil {
				return err
			}
		}
		if err := c.sqlTool(ctx, db, "update-schema", "--schema-name", schemas[i]); err != nil {
			return err
		}
	}
	return nil
}

// startWatchdog starts a shell loop that outlives a test binary that dies
// without closing the cluster (a panic, a timeout, a SIGKILL): it kills
// the processes listed in the pids file and drops the databases.
func (c *Cluster) startWatchdog() error {
	tool := func(db string) string {
		args := append([]string{c.opts.SQLToolPath}, c.sqlToolArgs(db)...)
		args = append(args, "drop-database", "--defaultdb", "postgres", "-f")
		return shellJoin(args) + " >/dev/null 2>&1"
	}
	var drop string
	if c.ownDBs {
		drop = tool(c.db) + "; " + tool(c.visDB) + ";"
	}
	script := fmt.Sprintf(`while kill -0 %d 2>/dev/null; do sleep 1; done
if [ -f %[2]s ]; then while read -r pid name; do kill -9 "$pid" 2>/dev/null; done < %[2]s; fi
sleep 1; %[3]s`, os.Getpid(), shellQuote(filepath.Join(c.dir, "pids")), drop)
	if c.ownDir {
		script += " rm -rf " + shellQuote(c.dir)
	}
	cmd := exec.Command("sh", "-c", script)
	// Its own process group: a Ctrl-C of the test run must not end it first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the watchdog: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	c.watchdog = cmd
	return nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// dial connects the cluster's client once the frontend answers.
func (c *Cluster) dial(ctx context.Context) error {
	var last error
	for {
		cl, err := client.DialContext(ctx, client.Options{
			HostPort:  c.FrontendHostPort(),
			Namespace: c.opts.Namespace,
			Logger:    c.opts.ClientLogger,
		})
		if err == nil {
			c.client = cl
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("the frontend at %s does not serve: %v\n%s", c.FrontendHostPort(), last, Tail(c.Service("frontend").LogPath, 30))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// register creates the namespace and its search attributes, then waits
// until a workflow started with them is found by them: the frontend and a
// history host then know both, and visibility on PostgreSQL serves.
func (c *Cluster) register(ctx context.Context) error {
	ns := c.opts.Namespace
	nsc, err := client.NewNamespaceClient(client.Options{HostPort: c.FrontendHostPort(), Logger: c.opts.ClientLogger})
	if err != nil {
		return err
	}
	defer nsc.Close()
	if err := retry(ctx, "register namespace "+ns, func(ctx context.Context) error {
		err := nsc.Register(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace:                        ns,
			WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour),
		})
		if _, ok := errors.AsType[*serviceerror.NamespaceAlreadyExists](err); ok {
			return nil
		}
		return err
	}); err != nil {
		return err
	}
	attrs := map[string]enumspb.IndexedValueType{}
	for _, sa := range c.opts.SearchAttributes {
		name, typ, _ := strings.Cut(sa, "=")
		v, err := enumspb.IndexedValueTypeFromString(typ)
		if err != nil {
			return fmt.Errorf("search attribute %s: %w", name, err)
		}
		attrs[name] = v
	}
	if len(attrs) > 0 {
		if err := retry(ctx, "add search attributes", func(ctx context.Context) error {
			_, err := c.client.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
				Namespace: ns, SearchAttributes: attrs,
			})
			if _, ok := errors.AsType[*serviceerror.AlreadyExists](err); ok {
				return nil
			}
			return err
		}); err != nil {
			return err
		}
	}
	return c.probe(ctx, attrs)
}

// probe starts a workflow carrying every search attribute on a task queue
// no worker polls, waits until visibility finds it by them, and
// terminates it.
func (c *Cluster) probe(ctx context.Context, attrs map[string]enumspb.IndexedValueType) error {
	id := "temporalcluster-probe-" + randomHex(4)
	var query []string
	sas := map[string]any{}
	for name, typ := range attrs {
		if typ != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
			continue
		}
		sas[name] = id
		query = append(query, fmt.Sprintf("%s = '%s'", name, id))
	}
	q := strings.Join(append(query, fmt.Sprintf("WorkflowId = '%s'", id)), " AND ")
	if err := retry(ctx, "start the probe workflow", func(ctx context.Context) error {
		//nolint:staticcheck // untyped search attributes: the names come as strings.
		_, err := c.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: id, TaskQueue: "temporalcluster-probe", SearchAttributes: sas,
			WorkflowExecutionTimeout: time.Minute,
		}, "temporalcluster-probe")
		if _, ok := errors.AsType[*serviceerror.WorkflowExecutionAlreadyStarted](err); ok {
			return nil
		}
		return err
	}); err != nil {
		return err
	}
	if err := retry(ctx, "find the probe workflow by "+q, func(ctx context.Context) error {
		resp, err := c.client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: c.opts.Namespace, Query: q})
		if err != nil {
			return err
		}
		if len(resp.GetExecutions()) == 0 {
			return errors.New("not visible yet")
		}
		return nil
	}); err != nil {
		return err
	}
	return retry(ctx, "terminate the probe workflow", func(ctx context.Context) error {
		err := c.client.TerminateWorkflow(ctx, id, "", "temporalcluster: probe done")
		if _, ok := errors.AsType[*serviceerror.NotFound](err); ok {
			return nil
		}
		return err
	})
}

// retry runs f until it succeeds or ctx ends, returning the last error.
func retry(ctx context.Context, what string, f func(context.Context) error) error {
	for {
		attempt, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := f(attempt)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
