// Package contract names, once, everything that crosses a process boundary
// in sagaflow: the workflow types and their ids, the signals, updates and
// queries of each saga with their argument and result types, the memo and
// search-attribute keys, the task queue, the options every saga is started
// with, the RabbitMQ exchange and queue names, and the wire types the
// participant services answer queries with.
//
// The workflows, the activities, the worker, the starter CLI, the bridge,
// the audit trail and the benchmark import it; none of them re-declares a
// name that is here. It imports only the events catalog and the Temporal
// SDK's pure packages (no client connection, no workflow code), so a
// program that only starts or inspects sagas links neither the workflow
// code nor a database driver.
//
// Everything here is wire contract: renaming a constant's value, a JSON
// field or a workflow type breaks running sagas, recorded histories and
// other processes. Add, never rename.
package contract
