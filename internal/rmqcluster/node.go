package rmqcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// markerFlag is the Erlang VM argument that names the node on its command
// line (rabbit's VMs show no node name there), so that its processes can be
// found: `-sagaflow_rmqcluster <node>`. internal/scripts/cluster.sh uses it
// too.
const markerFlag = "-sagaflow_rmqcluster"

// Node is one node of a Cluster.
type Node struct {
	// Name is the Erlang node name, e.g. sagaflowtest1@localhost.
	Name string
	// Port is the node's AMQP port on 127.0.0.1.
	Port int
	// DistPort is the node's Erlang distribution port on 127.0.0.1.
	DistPort int

	dir     string
	cluster *Cluster
}

// URL returns the node's AMQP URL as guest.
func (n *Node) URL() string { return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", n.Port) }

func (n *Node) shortName() string { name, _, _ := strings.Cut(n.Name, "@"); return name }

func (n *Node) path(name string) string { return filepath.Join(n.dir, name) }

// writeFiles lays out the node's configuration and directories.
func (n *Node) writeFiles() error {
	files := map[string]string{
		"rabbitmq.conf": fmt.Sprintf("listeners.tcp.local = 127.0.0.1:%d\n", n.Port),
		// No plugins: the management plugin would want a port of its own.
		"enabled_plugins": "[].\n",
		// In place of /etc/rabbitmq/rabbitmq-env.conf, which names the
		// machine's own node.
		"rabbitmq-env.conf": "ERL_EPMD_ADDRESS=127.0.0.1\n",
	}
	for _, d := range []string{"mnesia", "log"} {
		if err := os.MkdirAll(n.path(d), 0o755); err != nil {
			return fmt.Errorf("rmqcluster: %w", err)
		}
	}
	for name, content := range files {
		if err := os.WriteFile(n.path(name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("rmqcluster: %w", err)
		}
	}
	return nil
}

// env is the environment of the node's server and of rabbitmqctl calls on
// it: the caller's, without its RabbitMQ and Erlang settings.
func (n *Node) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RABBITMQ_") && !strings.HasPrefix(kv, "ERL_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"RABBITMQ_NODENAME="+n.Name,
		"RABBITMQ_CONF_ENV_FILE="+n.path("rabbitmq-env.conf"),
		"RABBITMQ_CONFIG_FILE="+n.path("rabbitmq.conf"),
		"RABBITMQ_MNESIA_BASE="+n.path("mnesia"),
		"RABBITMQ_LOG_BASE="+n.path("log"),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(n.DistPort),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+n.path("enabled_plugins"),
		"RABBITMQ_PID_FILE="+n.path("pid"),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1} "+markerFlag+" "+n.Name,
	)
}

// run runs a RabbitMQ tool in the node's environment, killing it and its
// children when ctx ends, and returns its output.
func (n *Node) run(ctx context.Context, tool string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(tool, args...)
	cmd.Env = n.env()
	cmd.Stdout, cmd.Stderr = &out, &out
	// rabbitmqctl is a script that runs `su`, which runs erl: kill the
	// whole process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return out.String(), fmt.Errorf("%w: %s", err, errorLine(out.String()))
		}
		return out.String(), nil
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return out.String(), fmt.Errorf("%s %s: %w", tool, strings.Join(args, " "), ctx.Err())
	}
}

// ctl runs `rabbitmqctl -n NODE args...`.
func (n *Node) ctl(ctx context.Context, args ...string) (string, error) {
	return n.run(ctx, "rabbitmqctl", append([]string{"-n", n.Name}, args...)...)
}

// ctlTimed runs rabbitmqctl bounded by the cluster's CommandTimeout.
func (n *Node) ctlTimed(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), n.cluster.opts.CommandTimeout)
	defer cancel()
	return n.ctl(ctx, args...)
}

// Start boots the node's VM and RabbitMQ (after Kill, or for the first
// time) and waits until RabbitMQ runs. A node that was a cluster member
// rejoins its cluster.
func (n *Node) Start() error {
	if len(n.pids()) > 0 {
		return n.errorf("start: already running")
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cluster.opts.StartTimeout)
	defer cancel()
	// -detached returns once the VM is spawned; the VM holds on to the
	// output file, so it must not be a pipe Wait would wait on.
	startup, err := os.OpenFile(n.path("startup.out"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return n.errorf("start: %w", err)
	}
	defer startup.Close()
	cmd := exec.CommandContext(ctx, "rabbitmq-server", "-detached")
	cmd.Env = n.env()
	cmd.Stdout, cmd.Stderr = startup, startup
	if err := cmd.Run(); err != nil {
		return n.errorf("rabbitmq-server -detached: %w", err)
	}
	// await_startup fails at once while the VM has not registered with
	// epmd, so it is retried as long as the VM lives.
	for {
		_, err := n.ctl(ctx, "await_startup", "--timeout", strconv.Itoa(max(1, int(time.Until(deadline(ctx)).Seconds()))))
		if err == nil {
			return nil
		}
		if len(n.pids()) == 0 {
			return n.errorf("start: the VM exited: %w", err)
		}
		select {
		case <-ctx.Done():
			return n.errorf("start: not up within %s: %w", n.cluster.opts.StartTimeout, err)
		case <-time.After(200 * time.Millisecond): // polling: nothing announces the VM's registration
		}
	}
}

func deadline(ctx context.Context) time.Time {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Now().Add(time.Minute)
	}
	return d
}

// StopApp stops RabbitMQ on the node, leaving its VM running, as a node
// leaving the cluster for maintenance does: its connections close and its
// queue replicas go offline.
func (n *Node) StopApp() error {
	if _, err := n.ctlTimed("stop_app"); err != nil {
		return n.errorf("stop_app: %w", err)
	}
	return nil
}

// StartApp starts RabbitMQ again on a node stopped by StopApp and waits
// until it runs.
func (n *Node) StartApp() error {
	if _, err := n.ctlTimed("start_app"); err != nil {
		return n.errorf("start_app: %w", err)
	}
	return nil
}

// Stop stops the node's VM cleanly (`rabbitmqctl stop`).
func (n *Node) Stop() error {
	pids := n.pids()
	if _, err := n.ctlTimed("stop"); err != nil {
		return n.errorf("stop: %w", err)
	}
	return n.waitGone(pids)
}

// Kill kills the node's Erlang VM with SIGKILL, as a crash or a power loss
// would, and waits until it is gone.
func (n *Node) Kill() error {
	if len(n.pids()) == 0 {
		return n.errorf("kill: not running")
	}
	return n.killVM()
}

// killVM kills whatever VM of the node runs, if any, and waits until it is
// gone.
func (n *Node) killVM() error {
	pids := n.pids()
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return n.errorf("kill %d: %w", pid, err)
		}
	}
	return n.waitGone(pids)
}

// waitGone waits until no VM of the node runs, and none of pids: a dying
// VM loses its command line before it is gone.
func (n *Node) waitGone(pids []int) error {
	end := time.Now().Add(n.cluster.opts.CommandTimeout)
	for {
		left := n.pids()
		for _, pid := range pids {
			if alive(pid) && !slices.Contains(left, pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(end) {
			return n.errorf("VM %v still running after %s", left, n.cluster.opts.CommandTimeout)
		}
		time.Sleep(50 * time.Millisecond) // polling: a process of another user cannot be waited for
	}
}

// alive reports whether a process runs: it exists and is not a zombie
// waiting for its parent to reap it.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...
	_, rest, ok := strings.Cut(string(b), ") ")
	return ok && !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}

// Running reports whether RabbitMQ runs on the node: its VM lives and its
// rabbit application is up (false after StopApp, Kill or Stop).
func (n *Node) Running() bool {
	if len(n.pids()) == 0 {
		return false
	}
	out, err := n.ctlTimed("eval", "rabbit:is_running().")
	return err == nil && strings.TrimSpace(out) == "true"
}

// RunningNodes returns the cluster members the node sees running
// (`rabbitmqctl cluster_status`).
func (n *Node) RunningNodes() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), n.cluster.opts.CommandTimeout)
	defer cancel()
	return n.runningNodes(ctx)
}

func (n *Node) runningNodes(ctx context.Context) ([]string, error) {
	out, err := n.ctl(ctx, "cluster_status", "-q", "--formatter", "json")
	if err != nil {
		return nil, n.errorf("cluster_status: %w", err)
	}
	var status struct {
		RunningNodes []string `json:"running_nodes"`
	}
	if err := json.Unmarshal([]byte(out), &status); err != nil {
		return nil, n.errorf("cluster_status: %w in %q", err, firstLine(out))
	}
	return status.RunningNodes, nil
}

// pids returns the processes of the node's Erlang VM, found by the marker
// on their command line, or where there is no /proc by the pid file the
// node writes at boot.
func (n *Node) pids() []int {
	if _, err := os.Stat("/proc/self/cmdline"); err == nil {
		return markedPIDs(n.Name)
	}
	b, err := os.ReadFile(n.path("pid"))
	if err != nil {
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return nil
	}
	// EPERM: it exists, as another user's.
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return nil
	}
	return []int{pid}
}

// markedPIDs lists the processes whose command line carries the marker
// for node.
func markedPIDs(node string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		for i := 0; i+1 < len(args); i++ {
			if args[i] == markerFlag && args[i+1] == node {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// epmdNames returns the short node names epmd has registered, or none when
// epmd cannot be asked.
func epmdNames() map[string]bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "epmd", "-names").Output()
	names := map[string]bool{}
	if err != nil {
		return names
	}
	// name sagaflowtest1 at port 25681
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "name" {
			names[f[1]] = true
		}
	}
	return names
}

// errorf returns a one-line error naming the node, with its log's tail.
func (n *Node) errorf(format string, args ...any) error {
	return fmt.Errorf("rmqcluster: %s: %w (log: %s)", n.Name, fmt.Errorf(format, args...), n.logTail(3, " | "))
}

// logTail returns the last lines of the node's log, or of its startup
// output when it wrote no log.
func (n *Node) logTail(lines int, sep string) string {
	for _, f := range []string{filepath.Join(n.path("log"), n.Name+".log"), n.path("startup.out")} {
		b, err := os.ReadFile(f)
		if err != nil || len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		all := strings.Split(strings.TrimSpace(string(b)), "\n")
		return strings.Join(all[max(0, len(all)-lines):], sep)
	}
	return "none"
}

// errorLine picks what a failed tool said, on one line: rabbitmqctl prints
// "Error:" and the reason on the next lines.
func errorLine(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			keep = append(keep, l)
		}
		if len(keep) == 3 {
			break
		}
	}
	if len(keep) == 0 {
		return "no output"
	}
	return strings.Join(keep, " ")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
