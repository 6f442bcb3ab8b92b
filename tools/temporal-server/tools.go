//go:build tools

// Package tools pins the self-hosted Temporal server that the cluster
// harness runs: `make temporal-server` builds its server and SQL schema tool
// from this module, kept apart from the project's own go.mod.
package tools

import (
	_ "go.temporal.io/server/cmd/server"
	_ "go.temporal.io/server/cmd/tools/sql"
)
