// Package faulttest is the fault suite: each test runs a load of mixed sagas
// (orders placed through the bridge, orders started directly, transfers)
// through a real worker process (internal/systemtest), injects one kind of
// fault while the load runs (dropped broker connections, a broker restart, a
// killed worker, activities failing at random, poison messages), and checks
// the same invariants at the end: every saga terminal, money and stock
// conserved, no reservation left held, every business event consumed and
// handled once, nothing dead-lettered but the poison.
//
// The tests carry the build tag "faults" and run alone (`make faults`),
// because restarting the broker disturbs every other client of it.
package faulttest
