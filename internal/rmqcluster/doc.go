// Package rmqcluster runs a RabbitMQ cluster on this machine for tests: N
// nodes (<prefix>1@localhost, <prefix>2@localhost, ...) of the installed
// rabbitmq-server, each with its own configuration, data, logs, AMQP port
// on 127.0.0.1 and Erlang distribution port, joined to the first node.
// It never touches the machine's own broker (rabbit@..., port 5672).
//
// The nodes run as the user rabbitmq-server runs them as (on Debian the
// rabbitmq user, whose Erlang cookie rabbitmqctl shares when run as root)
// and are removed when the test ends, failed or not; nodes left by a
// crashed run with the same names are removed when the next one starts.
// Every node's Erlang VM carries a marker argument (-sagaflow_rmqcluster
// NODE) so that its processes, and only they, can be found and killed.
//
// internal/scripts/cluster.sh (`make cluster`) starts the same cluster from
// the shell for users, on fixed ports.
package rmqcluster
