// Package faulttest is the fault suite: each test runs a load of mixed sagas
// (orders placed through the bridge, orders started directly, transfers)
// through a real worker process (internal/systemtest), injects one kind of
// fault while the load runs (dropped broker connections, a broker restart, a
// killed worker, activities failing at random, poison messages), and checks
// the same invariants at the end: every saga terminal, money and stock
// conserved, no reservation left held, every business event consumed and
// handled once, nothing dead-lettered but the poison.
//
// Outages and a bad network: TestTemporalRestart runs a Temporal dev
// server of its own on a database file and SIGKILLs it mid-load, then
// starts it again on the same file and port (27600); TestPostgresRestart
// restarts PostgreSQL, under the lock /tmp/sagaflow-pg-restart.lock, while
// the services run on it; TestBadNetwork puts the worker behind TCP
// proxies (toxiproxy, ports 27610 and 27611) that add latency, cut the
// connections half-open and reset them, and asserts that the AMQP
// heartbeat and the gRPC keepalive notice a half-open connection within
// their bounds; TestDuplicatedAndReorderedEvents publishes late copies of
// the business events. Each asserts its fault happened before the
// invariants.
//
// TestClusterTopology runs the same load (500 sagas per fault) on the
// production topology (systemtest.Topology): a 3-node RabbitMQ cluster of
// its own (internal/rmqcluster) with quorum queues, two orchestration and
// two services workers on PostgreSQL. Its faults are the node that leads
// the queues stopped and started again, a node's VM killed and started
// again, and a services and an orchestration worker killed at once; each
// asserts the fault happened (the node down, the leaders moved, the
// workers reconnected to other nodes) before the invariants.
//
// TestTemporalCluster runs the default load on a self-hosted Temporal of its
// own (internal/temporalcluster: frontend, matching, worker and two history
// hosts on PostgreSQL): a history host SIGKILLed (its shards acquired by the
// other host) and started again, the frontend and the matching service
// restarted, PostgreSQL restarted under the server.
//
// TestLongBrokerOutage stops a broker of its own (a one-node rmqcluster,
// systemtest.Options.Broker) for longer than a command's timeout while
// 300 sagas or more are in flight, a tenth of them made to fail on
// purpose, and starts it again; it asserts the outage happened
// (connections refused, the worker reconnected) and then the invariants
// and that the compensated share is the share made to fail, within two
// points: an outage is waited out until the sagas' deadlines, never taken
// for a business failure.
//
// The tests carry the build tag "faults" and run alone (`make faults`),
// because restarting the broker disturbs every other client of it.
package faulttest
