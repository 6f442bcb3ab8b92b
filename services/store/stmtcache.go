package store

import (
	"context"
	"database/sql"
	"sync"
)

// maxCachedStatements bounds a stmtCache. The hot statements (inbox,
// outbox, event store, read model) are few and come first; what is built
// per call with a varying number of placeholders (a multi-row insert, the
// relay's IN list) only adds entries up to this bound and then runs
// unprepared as before.
const maxCachedStatements = 128

// stmtCache keeps the prepared statements of one SQLite pool by query
// text. Without it modernc.org/sqlite parses and plans every statement on
// every call, which was a third of the services' SQLite time under load.
// PostgreSQL gets none: pgx caches prepared statements per connection
// itself.
type stmtCache struct {
	pool *sql.DB

	mu    sync.RWMutex
	stmts map[string]*sql.Stmt
	// failed are queries that did not prepare (a script of several
	// statements prepares, but a bad query does not): not tried again.
	failed map[string]bool
	closed bool
}

func newStmtCache(pool *sql.DB) *stmtCache {
	return &stmtCache{pool: pool, stmts: map[string]*sql.Stmt{}, failed: map[string]bool{}}
}

// lookup returns the prepared statement of query, or nil.
func (c *stmtCache) lookup(query string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.stmts[query]
}

// wanted reports whether query should be prepared: not cached, not failed
// and room left.
func (c *stmtCache) wanted(query string) bool {
	if c == nil {
		return false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.stmts[query]
	return !ok && !c.failed[query] && !c.closed && len(c.stmts) < maxCachedStatements
}

// prepare prepares queries on the pool and keeps them. It takes a
// connection of the pool, so on the SQLite write pool (one connection) it
// must run outside any transaction. Errors are not the caller's: the query
// runs unprepared instead.
func (c *stmtCache) prepare(ctx context.Context, queries ...string) {
	for _, q := range queries {
		if !c.wanted(q) {
			continue
		}
		st, err := c.pool.PrepareContext(context.WithoutCancel(ctx), q)
		c.mu.Lock()
		switch {
		case err != nil:
			c.failed[q] = true
		case c.closed || c.stmts[q] != nil || len(c.stmts) >= maxCachedStatements:
			_ = st.Close()
		default:
			c.stmts[q] = st
		}
		c.mu.Unlock()
	}
}

// close closes every cached statement; later lookups find none.
func (c *stmtCache) close() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var first error
	for q, st := range c.stmts {
		if err := st.Close(); err != nil && first == nil {
			first = err
		}
		delete(c.stmts, q)
	}
	return first
}

// len is the number of cached statements.
func (c *stmtCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.stmts)
}
