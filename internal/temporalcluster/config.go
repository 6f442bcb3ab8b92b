package temporalcluster

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"
)

// Role is the kind of a Temporal service process: the --service of
// `temporal-server start`.
type Role string

// The four Temporal services; a cluster runs one process of each, and
// HistoryHosts processes of RoleHistory.
const (
	RoleFrontend Role = "frontend"
	RoleMatching Role = "matching"
	RoleWorker   Role = "worker"
	RoleHistory  Role = "history"
)

// portsPerProcess is the stride between the ports of two processes of a
// cluster: a process uses base+0 (gRPC), +1 (membership), +2 (Prometheus
// metrics) and, the frontend, +3 (HTTP API).
const portsPerProcess = 10

// Ports of one service process, all on 127.0.0.1.
type Ports struct {
	GRPC, Membership, Metrics, HTTP int
}

func portsAt(base int) Ports {
	return Ports{GRPC: base, Membership: base + 1, Metrics: base + 2, HTTP: base + 3}
}

// configTemplate is the server configuration of one process: every process
// of a cluster shares the databases and the layout and differs in its own
// service's ports (the processes find each other through the
// cluster_membership table). It follows the release's
// config/development-postgres12.yaml, with archival off and every port on
// loopback.
var configTemplate = template.Must(template.New("config").Parse(`# Written by internal/temporalcluster for the {{.Process}} process.
log:
  stdout: true
  level: {{.LogLevel}}
  format: json

persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: {{.Shards}}
  datastores:
    postgres-default:
      sql:
        pluginName: postgres12
        databaseName: "{{.DB}}"
        connectAddr: "{{.PGAddr}}"
        connectProtocol: tcp
        user: "{{.PGUser}}"
        password: "{{.PGPassword}}"
        maxConns: {{.MaxConns}}
        maxIdleConns: {{.MaxConns}}
        maxConnLifetime: 1h
    postgres-visibility:
      sql:
        pluginName: postgres12
        databaseName: "{{.VisibilityDB}}"
        connectAddr: "{{.PGAddr}}"
        connectProtocol: tcp
        user: "{{.PGUser}}"
        password: "{{.PGPassword}}"
        maxConns: 2
        maxIdleConns: 2
        maxConnLifetime: 1h

global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
  metrics:
    prometheus:
      framework: tally
      timerType: histogram
      listenAddress: "127.0.0.1:{{.Own.Metrics}}"

services:
  frontend:
    rpc:
      grpcPort: {{.Frontend.GRPC}}
      membershipPort: {{.Frontend.Membership}}
      httpPort: {{.Frontend.HTTP}}
      bindOnLocalHost: true
  matching:
    rpc:
      grpcPort: {{.Matching.GRPC}}
      membershipPort: {{.Matching.Membership}}
      bindOnLocalHost: true
  history:
    rpc:
      grpcPort: {{.History.GRPC}}
      membershipPort: {{.History.Membership}}
      bindOnLocalHost: true
  worker:
    rpc:
      grpcPort: {{.Worker.GRPC}}
      membershipPort: {{.Worker.Membership}}
      bindOnLocalHost: true

clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: "127.0.0.1:{{.Frontend.GRPC}}"
      httpAddress: "127.0.0.1:{{.Frontend.HTTP}}"

dcRedirectionPolicy:
  policy: noop

publicClient:
  hostPort: "127.0.0.1:{{.Frontend.GRPC}}"

dynamicConfigClient:
  filepath: "{{.DynamicConfig}}"
  pollInterval: 10s
`))

type configData struct {
	Process                             string
	LogLevel                            string
	Shards                              int
	MaxConns                            int
	DB, VisibilityDB                    string
	PGAddr, PGUser, PGPassword          string
	Own                                 Ports
	Frontend, Matching, History, Worker Ports
	DynamicConfig                       string
}

// maxConns is a process's pool of connections to the persistence
// database (visibility gets 2 more). The release's example gives every
// process 20 and 2, which five processes, twice over for two clusters,
// would take from a local PostgreSQL's 100 connections.
func maxConns(role Role) int {
	if role == RoleHistory {
		return 8
	}
	return 3
}

// writeConfig writes <dir>/<process>.yaml, the --env of that process.
func writeConfig(dir string, d configData) error {
	var b strings.Builder
	if err := configTemplate.Execute(&b, d); err != nil {
		return fmt.Errorf("config of %s: %w", d.Process, err)
	}
	return os.WriteFile(filepath.Join(dir, d.Process+".yaml"), []byte(b.String()), 0o644)
}

// writeDynamicConfig writes the dynamic config file from KEY=JSON values,
// the form of the dev server's --dynamic-config-value.
func writeDynamicConfig(path string, values []string) error {
	byKey := map[string]string{}
	for _, kv := range values {
		key, value, ok := strings.Cut(kv, "=")
		if !ok || key == "" {
			return fmt.Errorf("dynamic config %q: want KEY=JSON", kv)
		}
		if !json.Valid([]byte(value)) {
			return fmt.Errorf("dynamic config %q: the value is not JSON", kv)
		}
		byKey[key] = value
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by internal/temporalcluster.\n")
	for _, k := range keys {
		// JSON is YAML (flow style).
		fmt.Fprintf(&b, "%s:\n  - value: %s\n", k, byKey[k])
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
