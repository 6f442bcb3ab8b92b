package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/internal/rmqcluster"
)

// clusterPrefix names the cluster row's nodes, apart from the tests' and
// from `make cluster`'s.
const clusterPrefix = "sagaflowbench"

// benchCluster is the cluster row's RabbitMQ cluster with a vhost of the
// run's own and a connection to it for provisioning.
type benchCluster struct {
	cluster *rmqcluster.Cluster
	vhost   string
	// urls are the nodes' URLs in the vhost, in node order.
	urls      []string
	conn      *amqp.Conn
	requester *amqp.Requester
}

// startCluster starts a local cluster of clusterNodes nodes; close removes
// it.
func startCluster(ctx context.Context) (_ *benchCluster, err error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	c, err := rmqcluster.Launch(cctx, rmqcluster.Options{Nodes: clusterNodes, Prefix: clusterPrefix})
	if err != nil {
		return nil, &errMissing{fmt.Sprintf("the cluster row's RabbitMQ cluster did not start: %v", err), "or leave the row out with --skip-cluster"}
	}
	b := &benchCluster{cluster: c, vhost: "sagaflow-bench-" + uuid.NewString()[:8]}
	defer func() {
		if err != nil {
			err = errors.Join(err, b.close())
		}
	}()
	if out, err := c.Ctl("add_vhost", b.vhost); err != nil {
		return nil, fmt.Errorf("cluster add_vhost: %w: %s", err, out)
	}
	for i, raw := range c.URLs() {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			if out, err := c.Ctl("set_permissions", "-p", b.vhost, u.User.Username(), ".*", ".*", ".*"); err != nil {
				return nil, fmt.Errorf("cluster set_permissions: %w: %s", err, out)
			}
		}
		u.Path = "/" + b.vhost
		b.urls = append(b.urls, u.String())
	}
	dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
	defer dcancel()
	if b.conn, err = amqp.Dial(dctx, amqp.Config{URL: strings.Join(b.urls, ","), ConnectionName: "sagaflow-bench", QueueType: amqp.QueueQuorum}); err != nil {
		return nil, fmt.Errorf("connect to the cluster: %w", err)
	}
	if b.requester, err = b.conn.NewRequester(amqp.RequesterConfig{ReplyQueuePrefix: "bench.reply"}); err != nil {
		return nil, err
	}
	return b, nil
}

// url is the AMQP_URL of the i-th worker: every node, starting with node
// i (mod the node count), so that the workers' connections spread over
// the nodes.
func (b *benchCluster) url(i int) string {
	k := i % len(b.urls)
	return strings.Join(slices.Concat(b.urls[k:], b.urls[:k]), ",")
}

// startWorkers starts the cluster row's workers with quorum queues: one
// services worker, then clusterOrchestrationWorkers orchestration
// workers, each waited for until healthy.
func (b *benchCluster) startWorkers(ctx context.Context, env rowEnv, dir, queue string, s workerSettings) ([]*workerProcess, error) {
	s.QueueType = amqp.QueueQuorum
	var procs []*workerProcess
	stopAll := func() {
		for _, p := range procs {
			_ = p.stop()
		}
	}
	for i := range 1 + clusterOrchestrationWorkers {
		ws, name := s, "services"
		ws.Run = "services"
		if i > 0 {
			ws.Run, name = "orchestration", fmt.Sprintf("orchestration-%d", i)
		}
		p, err := startWorker(ctx, env.workerBin, filepath.Join(dir, name), env.temporalAddr, b.url(i), queue, ws)
		if err != nil {
			stopAll()
			return nil, fmt.Errorf("%s worker: %w", name, err)
		}
		procs = append(procs, p)
	}
	return procs, nil
}

// close deletes the vhost and removes the cluster.
func (b *benchCluster) close() error {
	var errs []error
	if b.requester != nil {
		errs = append(errs, b.requester.Close())
	}
	if b.conn != nil {
		errs = append(errs, b.conn.Close())
	}
	errs = append(errs, b.cluster.Remove())
	return errors.Join(errs...)
}
