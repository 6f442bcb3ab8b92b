package rmqcluster

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/internal/testenv"
)

// testPrefix names this package's test nodes, apart from other tests' and
// from `make cluster`'s.
const testPrefix = "sagaflowrmqtest"

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{name: "too many nodes", opts: Options{Nodes: 10}, want: "nodes 10"},
		{name: "upper-case prefix", opts: Options{Prefix: "Saga"}, want: `prefix "Saga"`},
		{name: "the machine's node", opts: Options{Prefix: "rabbit"}, want: `prefix "rabbit"`},
		{name: "ports above 65535", opts: Options{BasePort: 46000}, want: "base port 46000"},
		{name: "the machine's broker port", opts: Options{BasePort: 5670}, want: "overlap the machine's broker"},
		{name: "the CLI tools' distribution ports", opts: Options{BasePort: 15675}, want: "overlap the machine's broker"},
		{name: "relative dir", opts: Options{Dir: "data"}, want: `dir "data"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.setDefaults()
			err := o.Validate()
			require.ErrorContains(t, err, tt.want)
			require.NotContains(t, err.Error(), "\n")
		})
	}
	o := Options{BasePort: 5681}
	o.setDefaults()
	require.NoError(t, o.Validate(), "make cluster's layout")
	_, err := newCluster(Options{Nodes: 2, Prefix: "BAD", BasePort: 5672})
	require.ErrorContains(t, err, "rmqcluster: options:")
}

// TestCluster starts a 3-node cluster over a stale node of the same name,
// checks that it forms, that quorum queues span it and survive the loss of
// their leader and of a killed node, and that its removal leaves nothing
// behind and the machine's broker alone.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts RabbitMQ nodes")
	}
	defaultBroker := answers(testenv.DefaultAMQPURL)
	var names []string

	t.Run("lifecycle", func(t *testing.T) {
		stale := startStale(t)
		c := Start(t, Options{Prefix: testPrefix})
		for _, n := range c.Nodes() {
			names = append(names, n.Name)
		}
		require.Equal(t, []string{testPrefix + "1@localhost", testPrefix + "2@localhost", testPrefix + "3@localhost"}, names)
		for _, pid := range stale {
			require.False(t, alive(pid), "the stale node's VM %d was removed", pid)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()

		t.Run("forms", func(t *testing.T) {
			for _, n := range c.Nodes() {
				require.True(t, n.Running(), n.Name)
				running, err := n.RunningNodes()
				require.NoError(t, err)
				require.ElementsMatch(t, names, running, "%s's cluster_status", n.Name)
			}
			require.Len(t, c.URLs(), 3)
			for _, u := range c.URLs() {
				require.NotContains(t, u, ":5672/")
				conn, err := amqp091.Dial(u)
				require.NoError(t, err, "guest from loopback at %s", u)
				require.NoError(t, conn.Close())
			}
			require.Equal(t, c.URLs()[0]+","+c.URLs()[1]+","+c.URLs()[2], c.URL())
			list, err := amqp.ParseURLs(c.URL())
			require.NoError(t, err, "AMQP_URL=%s as the worker reads it", c.URL())
			require.Equal(t, c.URLs(), list)
		})

		queue := "rmqcluster.test.orders"
		t.Run("quorum queue on every node", func(t *testing.T) {
			ch := channel(t, c.Node(0).URL())
			_, err := ch.QueueDeclare(queue, true, false, false, false, amqp091.Table{"x-queue-type": "quorum"})
			require.NoError(t, err)
			require.NoError(t, ch.PublishWithContext(ctx, "", queue, true, false, amqp091.Publishing{
				DeliveryMode: amqp091.Persistent, Body: []byte("order-1"),
			}))
			members, online, err := c.QueueMembers(queue)
			require.NoError(t, err)
			require.ElementsMatch(t, names, members)
			require.ElementsMatch(t, names, online)
		})

		t.Run("stop_app of the leader moves the leader", func(t *testing.T) {
			leader, err := c.QueueLeader(queue)
			require.NoError(t, err)
			n := c.NodeNamed(leader)
			require.NotNil(t, n, "leader %s is a node of the cluster", leader)
			require.NoError(t, n.StopApp())
			require.False(t, n.Running(), "%s stopped", leader)

			var moved string
			require.Eventually(t, func() bool {
				moved, err = c.QueueLeader(queue)
				return err == nil && moved != leader
			}, time.Minute, 200*time.Millisecond, "leader still %s (%v)", leader, err)
			require.Contains(t, names, moved)
			// The message published before is still there, on the new leader.
			ch := channel(t, c.NodeNamed(moved).URL())
			d, ok, err := ch.Get(queue, true)
			require.NoError(t, err)
			require.True(t, ok, "the message survived the leader's loss")
			require.Equal(t, "order-1", string(d.Body))

			require.NoError(t, n.StartApp())
			require.True(t, n.Running())
			require.NoError(t, c.WaitHealthy(ctx))
		})

		t.Run("kill and start", func(t *testing.T) {
			n := c.Node(2)
			pids := n.pids()
			require.NotEmpty(t, pids)
			require.NoError(t, n.Kill())
			require.False(t, n.Running())
			for _, pid := range pids {
				require.False(t, alive(pid), "VM %d killed", pid)
			}
			running, err := c.Node(0).RunningNodes()
			require.NoError(t, err)
			require.NotContains(t, running, n.Name, "the others saw it go")

			require.NoError(t, n.Start())
			require.NoError(t, c.WaitHealthy(ctx))
			require.True(t, n.Running())
			require.Eventually(t, func() bool {
				_, online, err := c.QueueMembers(queue)
				return err == nil && slices.Contains(online, n.Name)
			}, time.Minute, 200*time.Millisecond, "the restarted node's replica is back online")
		})
	})

	require.Len(t, names, 3, "the cluster started")
	registered := epmdNames()
	for _, name := range names {
		require.Empty(t, markedPIDs(name), "a VM of %s is left", name)
		require.False(t, registered[name[:len(name)-len("@localhost")]], "%s is still registered with epmd", name)
	}
	require.NoDirExists(t, filepath.Join(os.TempDir(), "rmqcluster-"+testPrefix))
	if defaultBroker {
		require.True(t, answers(testenv.DefaultAMQPURL), "the broker at %s no longer answers", testenv.DefaultAMQPURL)
	} else {
		t.Logf("no broker at %s before the test: its being untouched is not checked", testenv.DefaultAMQPURL)
	}
}

// startStale starts, without cleanup, the first node of the test cluster
// as a crashed run would leave it, and returns its VM's processes.
func startStale(t *testing.T) []int {
	t.Helper()
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		testenv.Unavailable(t, "rabbitmq-server", "install RabbitMQ (apt-get install rabbitmq-server)")
	}
	stale, err := newCluster(Options{Nodes: 1, Prefix: testPrefix})
	require.NoError(t, err)
	n := stale.Node(0)
	if err := n.Start(); err != nil {
		_ = stale.Remove()
		t.Fatal(err)
	}
	pids := n.pids()
	require.NotEmpty(t, pids)
	return pids
}

func answers(url string) bool {
	conn, err := amqp091.Dial(url)
	if err != nil {
		return false
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return false
	}
	return ch.Close() == nil
}

func channel(t *testing.T, url string) *amqp091.Channel {
	t.Helper()
	conn, err := amqp091.Dial(url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	require.NoError(t, err)
	return ch
}

// TestErrorsNameTheNode checks that a failed call is one line naming the
// node, what failed and the node's log.
func TestErrorsNameTheNode(t *testing.T) {
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		testenv.Unavailable(t, "rabbitmqctl", "install RabbitMQ (apt-get install rabbitmq-server)")
	}
	c := &Cluster{opts: Options{Prefix: "sagaflowrmqnever"}}
	c.opts.setDefaults()
	c.opts.CommandTimeout = 30 * time.Second
	n := &Node{Name: "sagaflowrmqnever1@localhost", Port: 1, DistPort: 2, dir: t.TempDir(), cluster: c}
	c.nodes = []*Node{n}
	require.NoError(t, os.MkdirAll(filepath.Join(n.dir, "log"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(n.dir, "log", n.Name+".log"), []byte("boot\nlast words\n"), 0o644))

	for name, call := range map[string]func() error{"stop_app": n.StopApp, "kill": n.Kill} {
		err := call()
		require.Error(t, err, name)
		require.NotContains(t, err.Error(), "\n", name)
		require.Contains(t, err.Error(), "rmqcluster: "+n.Name+": "+name, name)
		require.Contains(t, err.Error(), "(log: boot | last words)", name)
	}
	require.False(t, n.Running())
	_, err := c.QueueLeader("q")
	require.ErrorContains(t, err, "no node runs")
}

// TestQueueInfoOfClassicQueue: list_queues prints a classic queue's
// members as an empty string, which must not fail the whole listing.
func TestQueueInfoOfClassicQueue(t *testing.T) {
	var qs []queueInfo
	out := `[{"name":"reply","type":"classic","leader":"a@localhost","members":"","online":""},` +
		`{"name":"ledger","type":"quorum","leader":"b@localhost","members":["a@localhost","b@localhost"],"online":["b@localhost"]}]`
	require.NoError(t, json.Unmarshal([]byte(out), &qs))
	require.Empty(t, qs[0].Members)
	require.Equal(t, nodeList{"a@localhost", "b@localhost"}, qs[1].Members)
	require.Equal(t, nodeList{"b@localhost"}, qs[1].Online)
}
