package rmqcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sagaflow/sagaflow/internal/testenv"
)

// DistPortOffset is how far above its AMQP port a node's Erlang
// distribution port lies when Options.BasePort is given (5681 → 25681),
// the layout internal/scripts/cluster.sh uses too.
const DistPortOffset = 20000

// DefaultPrefix names the nodes of a test cluster when Options.Prefix is
// empty. It differs from `make cluster`'s "sagaflow", so that a test never
// stops a user's cluster.
const DefaultPrefix = "sagaflowtest"

// Options configures a cluster. The zero value is a 3-node cluster on free
// ports.
type Options struct {
	// Nodes is the number of nodes, 1 to 9. Default 3.
	Nodes int
	// Prefix names the nodes <Prefix>1@localhost, <Prefix>2@localhost, ...
	// Runs at the same time need different prefixes: Start removes any node
	// of these names it finds. Default DefaultPrefix.
	Prefix string
	// BasePort, when set, is the first node's AMQP port: node i (from 0)
	// listens on BasePort+i and its distribution on
	// BasePort+DistPortOffset+i. Default 0: free ports picked at random.
	BasePort int
	// Dir holds the nodes' configuration, data and logs; it is emptied at
	// start and removed at the end. It must be reachable by the user the
	// nodes run as. Default <os.TempDir()>/rmqcluster-<Prefix>.
	Dir string
	// StartTimeout bounds a node's boot. Default 2m.
	StartTimeout time.Duration
	// CommandTimeout bounds every other rabbitmqctl call. Default 1m.
	CommandTimeout time.Duration
}

var prefixPattern = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,30}$`)

func (o *Options) setDefaults() {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Dir == "" {
		o.Dir = filepath.Join(os.TempDir(), "rmqcluster-"+o.Prefix)
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 2 * time.Minute
	}
	if o.CommandTimeout == 0 {
		o.CommandTimeout = time.Minute
	}
}

// Validate reports every problem of the options at once.
func (o Options) Validate() error {
	var errs []error
	if o.Nodes < 1 || o.Nodes > 9 {
		errs = append(errs, fmt.Errorf("nodes %d: want 1 to 9", o.Nodes))
	}
	if !prefixPattern.MatchString(o.Prefix) || o.Prefix == "rabbit" {
		errs = append(errs, fmt.Errorf("prefix %q: want lower-case letters, digits, '-' or '_', starting with a letter, and not %q", o.Prefix, "rabbit"))
	}
	if o.BasePort != 0 {
		last := o.BasePort + DistPortOffset + o.Nodes - 1
		switch {
		case o.BasePort < 1024 || last > 65535:
			errs = append(errs, fmt.Errorf("base port %d: ports %d..%d must lie in 1024..65535", o.BasePort, o.BasePort, last))
		case reserved(o.BasePort, o.Nodes) || reserved(o.BasePort+DistPortOffset, o.Nodes):
			errs = append(errs, fmt.Errorf("base port %d: its ports overlap the machine's broker (5672, 15672, 25672, 35672-35682)", o.BasePort))
		}
	}
	if o.Dir != "" && !filepath.IsAbs(o.Dir) {
		errs = append(errs, fmt.Errorf("dir %q: want an absolute path", o.Dir))
	}
	if o.StartTimeout < 0 || o.CommandTimeout < 0 {
		errs = append(errs, errors.New("timeouts must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rmqcluster: options: %w", err)
	}
	return nil
}

// reserved reports whether n ports from first include one of the default
// broker's: AMQP, management, distribution, or its CLI tools' range.
func reserved(first, n int) bool {
	for p := first; p < first+n; p++ {
		if p == 5672 || p == 15672 || p == 25672 || (p >= 35672 && p <= 35682) {
			return true
		}
	}
	return false
}

// Cluster is a running local RabbitMQ cluster.
type Cluster struct {
	opts  Options
	nodes []*Node
	// owner is the user the nodes' files belong to; nil: the current one.
	owner *user.User
}

// Start starts a cluster for the test and removes it when the test ends.
// It skips the test (fails it in CI) when rabbitmq-server is not
// installed, and fails it when the cluster does not form in time.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	for _, tool := range []string{"rabbitmq-server", "rabbitmqctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Unavailable(t, tool, "install RabbitMQ (apt-get install rabbitmq-server) and put its tools on PATH")
		}
	}
	if u, err := user.Lookup("rabbitmq"); err == nil && os.Geteuid() != 0 && strconv.Itoa(os.Geteuid()) != u.Uid {
		// The Debian package's tools refuse any other user.
		testenv.Unavailable(t, "running rabbitmq-server's nodes", "run the tests as root or as the rabbitmq user")
	}
	c, err := newCluster(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.nodes {
				t.Logf("rmqcluster: %s log: %s", n.Name, n.logTail(20, "\n"))
			}
		}
		if err := c.Remove(); err != nil {
			t.Error(err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.StartTimeout+time.Duration(c.opts.Nodes)*c.opts.CommandTimeout)
	defer cancel()
	if err := c.start(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// Launch starts a cluster outside a test (a benchmark, a tool); the
// caller removes it with Remove. A cluster that does not form is removed
// before Launch returns its error.
func Launch(ctx context.Context, opts Options) (*Cluster, error) {
	for _, tool := range []string{"rabbitmq-server", "rabbitmqctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("rmqcluster: %s not found on PATH (install RabbitMQ)", tool)
		}
	}
	if u, err := user.Lookup("rabbitmq"); err == nil && os.Geteuid() != 0 && strconv.Itoa(os.Geteuid()) != u.Uid {
		return nil, errors.New("rmqcluster: rabbitmq-server's nodes run only as root or as the rabbitmq user")
	}
	c, err := newCluster(opts)
	if err != nil {
		return nil, err
	}
	if err := c.start(ctx); err != nil {
		return nil, errors.Join(err, c.Remove())
	}
	return c, nil
}

// newCluster lays out the nodes' files after removing stale nodes of the
// same names; it starts nothing.
func newCluster(opts Options) (*Cluster, error) {
	opts.setDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts}
	if os.Geteuid() == 0 {
		// The Debian package's scripts run the server as the rabbitmq user.
		if u, err := user.Lookup("rabbitmq"); err == nil {
			c.owner = u
		}
	}
	amqpPorts, distPorts, err := opts.ports()
	if err != nil {
		return nil, err
	}
	for i := range opts.Nodes {
		name := fmt.Sprintf("%s%d", opts.Prefix, i+1)
		c.nodes = append(c.nodes, &Node{
			Name:     name + "@localhost",
			Port:     amqpPorts[i],
			DistPort: distPorts[i],
			dir:      filepath.Join(opts.Dir, name),
			cluster:  c,
		})
	}
	if err := c.removeStale(); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(opts.Dir); err != nil {
		return nil, fmt.Errorf("rmqcluster: %w", err)
	}
	for _, n := range c.nodes {
		if err := n.writeFiles(); err != nil {
			return nil, err
		}
	}
	if err := c.chown(opts.Dir); err != nil {
		return nil, err
	}
	return c, nil
}

// ports returns each node's AMQP and distribution port.
func (o Options) ports() (amqpPorts, distPorts []int, err error) {
	if o.BasePort != 0 {
		for i := range o.Nodes {
			amqpPorts = append(amqpPorts, o.BasePort+i)
			distPorts = append(distPorts, o.BasePort+DistPortOffset+i)
		}
		return amqpPorts, distPorts, nil
	}
	// Below the kernel's ephemeral range (32768 and up), so that no
	// outgoing connection takes a port between its choice and its use, and
	// away from 25672. The listeners stay open until all are chosen so
	// that no port is chosen twice.
	var held []net.Listener
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	pick := func() (int, error) {
		for range 200 {
			p := 10000 + rand.IntN(15000)
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				continue
			}
			held = append(held, l)
			return p, nil
		}
		return 0, errors.New("rmqcluster: no free port in 10000..24999")
	}
	for range o.Nodes {
		a, err := pick()
		if err != nil {
			return nil, nil, err
		}
		d, err := pick()
		if err != nil {
			return nil, nil, err
		}
		amqpPorts, distPorts = append(amqpPorts, a), append(distPorts, d)
	}
	return amqpPorts, distPorts, nil
}

// chown gives the tree under dir to the user the nodes run as.
func (c *Cluster) chown(dir string) error {
	if c.owner == nil {
		return nil
	}
	uid, _ := strconv.Atoi(c.owner.Uid)
	gid, _ := strconv.Atoi(c.owner.Gid)
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return fmt.Errorf("rmqcluster: chown %s to %s: %w", dir, c.owner.Username, err)
	}
	return nil
}

// removeStale stops nodes of this cluster's names left by an earlier run.
func (c *Cluster) removeStale() error {
	registered := epmdNames()
	var errs []error
	for _, n := range c.nodes {
		if registered[n.shortName()] && len(n.pids()) == 0 {
			// A VM without the marker: ask it to stop.
			ctx, cancel := context.WithTimeout(context.Background(), c.opts.CommandTimeout)
			_, _ = n.ctl(ctx, "stop")
			cancel()
		}
		if err := n.killVM(); err != nil {
			errs = append(errs, fmt.Errorf("stale node: %w", err))
		}
	}
	return errors.Join(errs...)
}

// start boots every node, then joins the others to the first.
func (c *Cluster) start(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(c.nodes))
	for i, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.Start()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	first := c.nodes[0].Name
	for _, n := range c.nodes[1:] {
		for _, args := range [][]string{{"stop_app"}, {"join_cluster", first}, {"start_app"}} {
			if _, err := n.ctl(ctx, args...); err != nil {
				return n.errorf("%s: %w", args[0], err)
			}
		}
	}
	return c.WaitHealthy(ctx)
}

// Remove stops every node, killing what does not stop in time, and
// deletes the cluster's files. Start's cleanup calls it.
func (c *Cluster) Remove() error {
	var wg sync.WaitGroup
	errs := make([]error, len(c.nodes))
	for i, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if len(n.pids()) > 0 {
				ctx, cancel := context.WithTimeout(context.Background(), c.opts.CommandTimeout)
				_, _ = n.ctl(ctx, "stop")
				cancel()
			}
			errs[i] = n.killVM()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.RemoveAll(c.opts.Dir); err != nil {
		return fmt.Errorf("rmqcluster: %w", err)
	}
	return nil
}

// Nodes returns the nodes in order: Nodes()[0] is <prefix>1@localhost.
func (c *Cluster) Nodes() []*Node { return slices.Clone(c.nodes) }

// Node returns the i-th node, from 0: Node(0) is <prefix>1@localhost.
func (c *Cluster) Node(i int) *Node { return c.nodes[i] }

// NodeNamed returns the node of an Erlang node name, or nil.
func (c *Cluster) NodeNamed(name string) *Node {
	for _, n := range c.nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// URLs returns each node's AMQP URL (guest, which may connect from
// loopback), in node order.
func (c *Cluster) URLs() []string {
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, n.URL())
	}
	return urls
}

// URL returns the nodes' AMQP URLs joined by commas, the form AMQP_URL
// takes for a cluster.
func (c *Cluster) URL() string { return strings.Join(c.URLs(), ",") }

// WaitHealthy waits until every node runs RabbitMQ, sees every other node
// running, and accepts AMQP connections.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	var last error
	for {
		last = c.healthy(ctx)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("rmqcluster: not healthy: %w", last)
		case <-time.After(250 * time.Millisecond): // polling: the nodes offer no notification
		}
	}
}

func (c *Cluster) healthy(ctx context.Context) error {
	var want []string
	for _, n := range c.nodes {
		want = append(want, n.Name)
	}
	for _, n := range c.nodes {
		running, err := n.runningNodes(ctx)
		if err != nil {
			return err
		}
		for _, w := range want {
			if !slices.Contains(running, w) {
				return n.errorf("sees %v running, not %s", running, w)
			}
		}
		d := net.Dialer{Timeout: 2 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(n.Port)))
		if err != nil {
			return n.errorf("amqp port: %w", err)
		}
		_ = conn.Close()
	}
	return nil
}

// queueInfo is a row of `rabbitmqctl list_queues --formatter json`.
type queueInfo struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Leader  string   `json:"leader"`
	Members nodeList `json:"members"`
	Online  nodeList `json:"online"`
}

// nodeList is a list of nodes in list_queues' JSON, which prints an empty
// string instead of a list for a classic queue.
type nodeList []string

func (l *nodeList) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*l = nil
		return nil
	}
	return json.Unmarshal(b, (*[]string)(l))
}

// queue returns a queue of the default vhost as the first node that
// answers sees it.
func (c *Cluster) queue(name string) (queueInfo, error) { return c.queueIn("/", name) }

// queueIn returns a queue of a vhost as the first node that answers sees
// it.
func (c *Cluster) queueIn(vhost, name string) (queueInfo, error) {
	var errs []error
	for _, n := range c.nodes {
		if len(n.pids()) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.CommandTimeout)
		out, err := n.ctl(ctx, "list_queues", "-p", vhost, "-q", "--formatter", "json", "name", "type", "leader", "members", "online")
		cancel()
		if err != nil {
			errs = append(errs, n.errorf("list_queues: %w", err))
			continue
		}
		var qs []queueInfo
		if err := json.Unmarshal([]byte(out), &qs); err != nil {
			return queueInfo{}, n.errorf("list_queues: %w in %q", err, firstLine(out))
		}
		for _, q := range qs {
			if q.Name == name {
				return q, nil
			}
		}
		return queueInfo{}, n.errorf("no queue %q in vhost %q", name, vhost)
	}
	if len(errs) == 0 {
		return queueInfo{}, errors.New("rmqcluster: no node runs")
	}
	return queueInfo{}, errors.Join(errs...)
}

// QueueLeader returns the node that leads a quorum queue of the default
// vhost (for a classic queue, the node it lives on), as the first node
// that answers sees it.
func (c *Cluster) QueueLeader(queue string) (node string, err error) {
	q, err := c.queue(queue)
	if err != nil {
		return "", err
	}
	if q.Leader == "" {
		return "", fmt.Errorf("rmqcluster: queue %q has no leader", queue)
	}
	return q.Leader, nil
}

// QueueMembers returns the nodes that hold a replica of a quorum queue of
// the default vhost, and those of them that are online.
func (c *Cluster) QueueMembers(queue string) (members, online []string, err error) {
	q, err := c.queue(queue)
	if err != nil {
		return nil, nil, err
	}
	return q.Members, q.Online, nil
}

// QueueLeaderIn is QueueLeader for a queue of another vhost.
func (c *Cluster) QueueLeaderIn(vhost, queue string) (node string, err error) {
	q, err := c.queueIn(vhost, queue)
	if err != nil {
		return "", err
	}
	if q.Leader == "" {
		return "", fmt.Errorf("rmqcluster: queue %q of vhost %q has no leader", queue, vhost)
	}
	return q.Leader, nil
}

// Ctl runs `rabbitmqctl args...` on the first node whose RabbitMQ runs,
// for what concerns the whole cluster (vhosts, users, permissions,
// connections), and returns its output.
func (c *Cluster) Ctl(args ...string) (string, error) {
	var errs []error
	for _, n := range c.nodes {
		if len(n.pids()) == 0 {
			continue
		}
		out, err := n.ctlTimed(args...)
		if err == nil {
			return out, nil
		}
		errs = append(errs, n.errorf("%s: %w", strings.Join(args, " "), err))
	}
	if len(errs) == 0 {
		return "", errors.New("rmqcluster: no node runs")
	}
	return "", errors.Join(errs...)
}
