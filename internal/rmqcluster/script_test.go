package rmqcluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/internal/repo"
	"github.com/sagaflow/sagaflow/internal/testenv"
)

const scriptPrefix = "sagaflowscripttest"

// TestScript runs internal/scripts/cluster.sh (`make cluster`, `make
// cluster-stop`) on ports of its own: start forms the cluster and prints
// its AMQP_URL, a second start and a second stop change nothing, stop
// leaves no VM behind, and bad settings are refused in one line.
func TestScript(t *testing.T) {
	root, err := repo.Root()
	require.NoError(t, err)
	script := filepath.Join(root, "internal", "scripts", "cluster.sh")
	run := func(t *testing.T, env []string, arg string) (string, error) {
		t.Helper()
		cmd := exec.Command("bash", script, arg)
		cmd.Env = append(os.Environ(), env...)
		cmd.WaitDelay = time.Second
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	t.Run("refuses bad settings", func(t *testing.T) {
		tests := []struct{ env, want string }{
			{"CLUSTER_PORT_BASE=5670", "overlap the machine's broker"},
			{"CLUSTER_PORT_BASE=50000", "must lie in 1024..65535"},
			{"CLUSTER_PORT_BASE=abc", "want a port number"},
			{"CLUSTER_PREFIX=rabbit", "CLUSTER_PREFIX rabbit"},
		}
		for _, tt := range tests {
			out, err := run(t, []string{tt.env}, "start")
			require.Error(t, err, tt.env)
			require.Contains(t, out, tt.want, tt.env)
			require.Equal(t, 1, strings.Count(strings.TrimSpace(out), "\n")+1, "one line: %q", out)
		}
		out, err := run(t, nil, "restart")
		require.Error(t, err)
		require.Contains(t, out, "usage:")
	})

	if testing.Short() {
		t.Skip("starts RabbitMQ nodes")
	}
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		testenv.Unavailable(t, "rabbitmq-server", "install RabbitMQ (apt-get install rabbitmq-server)")
	}
	base := freeBase(t)
	dir, err := os.MkdirTemp("", "rmqcluster-script-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755), "reachable by the user the nodes run as")
	env := []string{"CLUSTER_PORT_BASE=" + strconv.Itoa(base), "CLUSTER_PREFIX=" + scriptPrefix, "CLUSTER_DIR=" + dir}

	// The cluster as the script lays it out, to look at it.
	c := &Cluster{opts: Options{Nodes: 3, Prefix: scriptPrefix, BasePort: base, Dir: dir}}
	c.opts.setDefaults()
	for i := range 3 {
		name := fmt.Sprintf("%s%d", scriptPrefix, i+1)
		c.nodes = append(c.nodes, &Node{
			Name: name + "@localhost", Port: base + i, DistPort: base + DistPortOffset + i,
			dir: filepath.Join(dir, name), cluster: c,
		})
	}
	t.Cleanup(func() {
		if out, err := run(t, env, "stop"); err != nil {
			t.Errorf("cluster.sh stop: %v: %s", err, out)
		}
		if err := c.Remove(); err != nil {
			t.Error(err)
		}
	})

	amqpURL := regexp.MustCompile(`(?m)^AMQP_URL=(\S+)$`)
	out, err := run(t, env, "start")
	require.NoError(t, err, "cluster.sh start: %s", out)
	m := amqpURL.FindStringSubmatch(out)
	require.NotNil(t, m, "cluster.sh start prints AMQP_URL: %s", out)
	require.Equal(t, c.URL(), m[1])

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, c.WaitHealthy(ctx), "the script's nodes form one cluster")
	for _, u := range strings.Split(m[1], ",") {
		conn, err := amqp091.Dial(u)
		require.NoError(t, err, u)
		require.NoError(t, conn.Close())
	}

	out, err = run(t, env, "start")
	require.NoError(t, err, "cluster.sh start again: %s", out)
	require.Contains(t, out, "already running")
	require.Equal(t, m[0], amqpURL.FindString(out))

	out, err = run(t, env, "stop")
	require.NoError(t, err, "cluster.sh stop: %s", out)
	for _, n := range c.nodes {
		require.Contains(t, out, n.Name+" stopped.")
		require.Empty(t, n.pids(), "%s's VM is left", n.Name)
	}
	out, err = run(t, env, "stop")
	require.NoError(t, err, "cluster.sh stop when stopped: %s", out)
	require.Contains(t, out, scriptPrefix+"1@localhost is not running.")
}

// freeBase returns a port base whose AMQP and distribution ports are free.
func freeBase(t *testing.T) int {
	t.Helper()
	for range 100 {
		base := 11000 + rand.IntN(3000)
		free := true
		for _, p := range []int{base, base + 1, base + 2, base + DistPortOffset, base + DistPortOffset + 1, base + DistPortOffset + 2} {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				free = false
				break
			}
			_ = l.Close()
		}
		if free {
			return base
		}
	}
	t.Fatal("no free port base in 11000..13999")
	return 0
}
