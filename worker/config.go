package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/codec"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/internal/tracing"
)

// Parts the worker can run; --run selects them. The groups "orchestration"
// and "services" are the two halves that scale separately and together make
// "all": orchestration is what talks to Temporal (workflows, activities and
// their replies, the bridge that starts sagas); services is what needs only
// the broker and its own database: the participant services and the event
// subscribers (the orders read model, notifications).
const (
	partWorkflows     = "workflows"
	partReplies       = "replies"
	partBridge        = "bridge"
	partLedger        = "ledger"
	partInventory     = "inventory"
	partProjection    = "projection"
	partNotifications = "notifications"
)

var allParts = []string{partWorkflows, partReplies, partBridge, partLedger, partInventory, partProjection, partNotifications}

var partGroups = map[string][]string{
	"all":           allParts,
	"orchestration": {partWorkflows, partReplies, partBridge},
	"services":      {partLedger, partInventory, partProjection, partNotifications},
}

// config is the worker's configuration, read from flags whose defaults come
// from the environment.
type config struct {
	TemporalAddress   string
	TemporalNamespace string
	TemporalTLSCert   string
	TemporalTLSKey    string
	TemporalTLSCA     string
	TemporalTLSServer string
	TaskQueue         string
	// Versioning is the Worker Deployment the workflows part polls as; off
	// (the zero value) without --deployment-name.
	Versioning versioning
	// Codec encrypts and decrypts every Temporal payload of the worker's
	// client, built from --codec-keys and --codec-compress.
	Codec *codec.Codec
	// Tracing is the OpenTelemetry setup of the standard OTEL_* variables;
	// off without OTEL_EXPORTER_OTLP_ENDPOINT.
	Tracing tracing.Config

	// AMQPURL is one broker URL or a comma-separated list of node URLs.
	AMQPURL     string
	AMQPTLSCA   string
	AMQPTLSCert string
	AMQPTLSKey  string
	// AMQPExchange is the event exchange: declared on connecting, bound by
	// the consumers and published to by the activities and the services.
	AMQPExchange string
	// AMQPQueueType and AMQPDeliveryLimit are the type of the durable
	// queues and the delivery limit of quorum ones (amqp.Config).
	AMQPQueueType     string
	AMQPDeliveryLimit int
	// AMQPHeartbeat is the AMQP heartbeat interval (amqp.Config.Heartbeat):
	// a connection on which nothing arrives for three intervals (a broker
	// gone, a half-open connection through a broken network) is closed
	// and dialled again, so such a connection is noticed within 3×
	// AMQPHeartbeat, 30s by default.
	AMQPHeartbeat time.Duration
	// TemporalKeepAlive is the gRPC keepalive time of the Temporal client:
	// after that long without a frame from the frontend the client pings
	// it and drops the connection when no answer comes within
	// TemporalKeepAlive/2, so a half-open connection to Temporal is
	// noticed within 1.5× TemporalKeepAlive, 45s by default (gRPC's own
	// floor on the time is 10s).
	TemporalKeepAlive time.Duration
	ReplyQueue        string

	LedgerDSN    string
	InventoryDSN string
	OrdersDSN    string

	// OutboxRetention, InboxRetention and AppliedEventsRetention are how
	// long the services keep sent outbox rows, handled command ids and the
	// orders read model's applied event ids; negative keeps them for ever.
	OutboxRetention        time.Duration
	InboxRetention         time.Duration
	AppliedEventsRetention time.Duration

	Parts    []string
	HTTPAddr string
	// Pprof serves Go's runtime profiles under /debug/pprof/ beside
	// /metrics, for an operator chasing memory or CPU.
	Pprof         bool
	ShutdownGrace time.Duration
	LogLevel      string
	LogFormat     string

	MaxConcurrentActivities int
	MaxConcurrentWorkflows  int
	Pollers                 int

	// ActivityFaults makes activities fail at random; it is empty unless the
	// worker is built with the tag faults (the fault suite's build).
	ActivityFaults activityFaults
}

// has reports whether the worker runs part p.
func (c config) has(p string) bool { return slices.Contains(c.Parts, p) }

// parseConfig reads flags from args with defaults from getenv. --help prints
// every flag, its environment variable and its default.
func parseConfig(args []string, getenv func(string) string, out io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(out)
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	str := func(p *string, name, envName, def, usage string) {
		fs.StringVar(p, name, env(envName, def), usage+" (env "+envName+")")
	}
	str(&c.TemporalAddress, "temporal-address", "TEMPORAL_ADDRESS", "127.0.0.1:7233", "Temporal frontend host:port")
	str(&c.TemporalNamespace, "temporal-namespace", "TEMPORAL_NAMESPACE", "default", "Temporal namespace")
	str(&c.TemporalTLSCert, "temporal-tls-cert", "TEMPORAL_TLS_CERT", "", "client certificate (PEM) for mTLS to Temporal; needs --temporal-tls-key")
	str(&c.TemporalTLSKey, "temporal-tls-key", "TEMPORAL_TLS_KEY", "", "client private key (PEM) for mTLS to Temporal")
	str(&c.TemporalTLSCA, "temporal-tls-ca", "TEMPORAL_TLS_CA", "", "CA bundle (PEM) that signs the Temporal server certificate; setting it turns TLS on")
	str(&c.TemporalTLSServer, "temporal-tls-server-name", "TEMPORAL_TLS_SERVER_NAME", "", "server name to verify in the Temporal certificate (default: the address host)")
	str(&c.TaskQueue, "task-queue", "TEMPORAL_TASK_QUEUE", contract.TaskQueue, "task queue of the sagas' workflows and activities")
	str(&c.Versioning.DeploymentName, "deployment-name", "TEMPORAL_DEPLOYMENT_NAME", "", "Worker Deployment the workflows part polls as (Temporal Worker Versioning); "+
		"empty leaves the worker unversioned. Under versioning every saga is PINNED: it runs to its end on the build that started it, "+
		"new sagas start on the deployment's current version")
	str(&c.Versioning.BuildID, "build-id", "TEMPORAL_BUILD_ID", "", "build id of this worker's version within --deployment-name (default: the binary's VCS revision, with -dirty for uncommitted changes)")
	makeCurrent := fs.String("make-current-if-unset", env("TEMPORAL_MAKE_CURRENT_IF_UNSET", "true"), "under versioning, make this build the deployment's current version when it has none (its first deploy); "+
		"an existing current version is changed only by the operator's temporal worker deployment set-current-version (env TEMPORAL_MAKE_CURRENT_IF_UNSET)")
	codecKeys := fs.String("codec-keys", env(codec.EnvKeys, ""), "key file encrypting Temporal payloads: one id:base64key (32 bytes) per line, the first encrypts, all decrypt; empty leaves payloads unencrypted (env "+codec.EnvKeys+")")
	codecCompress := fs.String("codec-compress", env(codec.EnvCompress, "false"), "compress payloads before encrypting them (env "+codec.EnvCompress+")")
	str(&c.AMQPURL, "amqp-url", amqp.EnvURL, amqp.DefaultURL, "RabbitMQ URL, amqp:// or amqps://, or a comma-separated list of the URLs of a cluster's nodes, tried in turn on connecting and after a lost connection")
	str(&c.AMQPTLSCA, "amqp-tls-ca", "AMQP_TLS_CA", "", "CA bundle (PEM) for amqps:// (default: system roots)")
	str(&c.AMQPTLSCert, "amqp-tls-cert", "AMQP_TLS_CERT", "", "client certificate (PEM) for amqps://")
	str(&c.AMQPTLSKey, "amqp-tls-key", "AMQP_TLS_KEY", "", "client private key (PEM) for amqps://")
	str(&c.AMQPExchange, "amqp-exchange", "AMQP_EXCHANGE", amqp.DefaultExchange, "topic exchange the sagas' and services' events are published to and consumed from")
	str(&c.AMQPQueueType, "amqp-queue-type", amqp.EnvQueueType, amqp.QueueQuorum, "type of the durable queues the worker declares: quorum or classic (an existing queue of the other type is an error, never changed)")
	deliveryLimit := fs.String("amqp-delivery-limit", env(amqp.EnvDeliveryLimit, strconv.Itoa(amqp.DefaultDeliveryLimit)), "quorum queues: deliveries of a message without an ack (its consumer crashing on it) before the broker dead-letters it (env "+amqp.EnvDeliveryLimit+")")
	str(&c.ReplyQueue, "reply-queue", "REPLY_QUEUE", contract.ReplyQueue, "durable queue the services' replies come back on; shared by every worker")
	str(&c.LedgerDSN, "ledger-dsn", "LEDGER_DSN", ".data/ledger.db", "ledger database: a SQLite file path or a postgres:// DSN")
	str(&c.InventoryDSN, "inventory-dsn", "INVENTORY_DSN", ".data/inventory.db", "inventory database: a SQLite file path or a postgres:// DSN")
	str(&c.OrdersDSN, "orders-dsn", "ORDERS_DSN", ".data/orders.db", "orders read model database: a SQLite file path or a postgres:// DSN")
	outboxRetention := fs.String("outbox-retention", env("OUTBOX_RETENTION", "24h"), "how long the ledger's and inventory's sent outbox rows are kept before their relay deletes them; "+
		"\"forever\" keeps them (env OUTBOX_RETENTION)")
	inboxRetention := fs.String("inbox-retention", env("INBOX_RETENTION", "168h"), "how long the ledger and inventory remember a handled command id (and its reply) to answer a repeat with; "+
		"a command repeated later is handled again, so keep it above the longest retry of a saga step; \"forever\" keeps them (env INBOX_RETENTION)")
	appliedRetention := fs.String("applied-events-retention", env("APPLIED_EVENTS_RETENTION", "168h"), "how long the orders read model remembers an applied event id to drop a redelivery of it; "+
		"\"forever\" keeps them (env APPLIED_EVENTS_RETENTION)")
	parts := fs.String("run", env("WORKER_RUN", "all"), "comma-separated parts to run: "+strings.Join(allParts, ", ")+", or the groups all, "+
		"orchestration ("+strings.Join(partGroups["orchestration"], ",")+": the parts that use Temporal), "+
		"services ("+strings.Join(partGroups["services"], ",")+": the participant services and event subscribers) (env WORKER_RUN)")
	str(&c.HTTPAddr, "http-addr", "METRICS_ADDR", "127.0.0.1:9090", "address of the /metrics (Prometheus) and /healthz endpoints; empty disables them")
	pprofEnv := env("WORKER_PPROF", "false")
	pprofDefault, pprofEnvErr := strconv.ParseBool(pprofEnv)
	fs.BoolVar(&c.Pprof, "pprof", pprofDefault, "also serve Go's runtime profiles (heap, CPU, goroutines) under /debug/pprof/ on --http-addr; keep that address private (env WORKER_PPROF)")
	heartbeat := fs.String("amqp-heartbeat", env("AMQP_HEARTBEAT", "10s"), "AMQP heartbeat interval: a broker connection silent for three intervals (a half-open connection) is dropped and dialled again (env AMQP_HEARTBEAT)")
	keepAlive := fs.String("temporal-keepalive", env("TEMPORAL_KEEPALIVE", "30s"), "gRPC keepalive time of the Temporal connection, at least 10s: a connection silent that long is pinged, and dropped when the ping is not answered within half of it (env TEMPORAL_KEEPALIVE)")
	grace := fs.String("shutdown-grace", env("SHUTDOWN_GRACE", "30s"), "on SIGINT/SIGTERM, how long running activities and handlers may take to finish (env SHUTDOWN_GRACE)")
	str(&c.LogLevel, "log-level", "LOG_LEVEL", "info", "log level: debug, info, warn or error")
	str(&c.LogFormat, "log-format", "LOG_FORMAT", "text", "log format: text or json")
	maxAct := fs.String("max-concurrent-activities", env("MAX_CONCURRENT_ACTIVITIES", "200"), "activities run at once by this worker (env MAX_CONCURRENT_ACTIVITIES)")
	maxWf := fs.String("max-concurrent-workflow-tasks", env("MAX_CONCURRENT_WORKFLOW_TASKS", "200"), "workflow tasks run at once by this worker (env MAX_CONCURRENT_WORKFLOW_TASKS)")
	pollers := fs.String("pollers", env("TEMPORAL_POLLERS", "4"), "task queue pollers: for activity tasks, and for workflow tasks at most this many on the task queue and as many on the worker's sticky queue, autoscaled (env TEMPORAL_POLLERS)")
	parseActivityFaults := activityFaultsFlag(fs, env)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: worker [flags]\n       worker healthcheck [--url URL]\n\n"+
			"Runs the sagas' Temporal workflows and activities, the reply consumer, the\n"+
			"RabbitMQ bridge, the ledger and inventory services with their outbox relays,\n"+
			"the orders read model and the notifications consumer, as chosen by --run.\n"+
			"Every flag defaults to its environment variable, then to the value shown.\n\n"+
			"Worker Versioning: with --deployment-name the workflows part polls as the\n"+
			"version --build-id of that Worker Deployment, and every saga is PINNED to\n"+
			"the version it started on: it finishes on that build, while new sagas start\n"+
			"on the deployment's current version. Deploy a change as a new build id, make\n"+
			"it current with `temporal worker deployment set-current-version`, and stop\n"+
			"the old build once `temporal worker deployment describe` shows it drained.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}

	var errs []error
	var err error
	if c.ShutdownGrace, err = time.ParseDuration(*grace); err != nil || c.ShutdownGrace < 0 {
		errs = append(errs, fmt.Errorf("--shutdown-grace %q: want a non-negative duration such as 30s", *grace))
	}
	retention := func(name, v string, dst *time.Duration) {
		if v == "forever" {
			*dst = -1
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("--%s %q: want a positive duration such as 24h, or forever", name, v))
		}
		*dst = d
	}
	retention("outbox-retention", *outboxRetention, &c.OutboxRetention)
	retention("inbox-retention", *inboxRetention, &c.InboxRetention)
	retention("applied-events-retention", *appliedRetention, &c.AppliedEventsRetention)
	if c.AMQPHeartbeat, err = time.ParseDuration(*heartbeat); err != nil || c.AMQPHeartbeat < time.Second {
		errs = append(errs, fmt.Errorf("--amqp-heartbeat %q: want a duration of at least 1s such as 10s", *heartbeat))
	}
	if c.TemporalKeepAlive, err = time.ParseDuration(*keepAlive); err != nil || c.TemporalKeepAlive < 10*time.Second {
		errs = append(errs, fmt.Errorf("--temporal-keepalive %q: want a duration of at least 10s such as 30s", *keepAlive))
	}
	positive := func(name, v string, dst *int) {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("--%s %q: want a positive integer", name, v))
		}
		*dst = n
	}
	positive("max-concurrent-activities", *maxAct, &c.MaxConcurrentActivities)
	positive("max-concurrent-workflow-tasks", *maxWf, &c.MaxConcurrentWorkflows)
	positive("pollers", *pollers, &c.Pollers)
	if c.ActivityFaults, err = parseActivityFaults(); err != nil {
		errs = append(errs, err)
	}
	if pprofEnvErr != nil {
		errs = append(errs, fmt.Errorf("WORKER_PPROF %q: want true or false", pprofEnv))
	} else if c.Pprof && c.HTTPAddr == "" {
		errs = append(errs, errors.New("--pprof needs --http-addr: the profiles are served beside /metrics"))
	}
	compress, err := strconv.ParseBool(*codecCompress)
	if err != nil {
		errs = append(errs, fmt.Errorf("--codec-compress %q: want true or false", *codecCompress))
	}
	if c.Codec, err = codec.Load(codec.Config{KeysFile: *codecKeys, Compress: compress}); err != nil {
		errs = append(errs, fmt.Errorf("--codec-keys: %w", err))
	}
	if c.Parts, err = parseParts(*parts); err != nil {
		errs = append(errs, err)
	}
	if c.Versioning.MakeCurrentIfUnset, err = strconv.ParseBool(*makeCurrent); err != nil {
		errs = append(errs, fmt.Errorf("--make-current-if-unset %q: want true or false", *makeCurrent))
	}
	// Only the workflows part polls Temporal for workflow tasks: a services
	// worker needs no build id, and a build id alone turns nothing on.
	if c.has(partWorkflows) && c.Versioning.Enabled() {
		if err := c.Versioning.resolve(readBuildInfo); err != nil {
			errs = append(errs, err)
		}
	} else {
		c.Versioning = versioning{}
	}
	if c.Tracing, err = tracing.FromEnv(getenv, "sagaflow-worker"); err != nil {
		errs = append(errs, err)
	}
	if (c.TemporalTLSCert == "") != (c.TemporalTLSKey == "") {
		errs = append(errs, errors.New("--temporal-tls-cert and --temporal-tls-key go together"))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("--log-format %q: want text or json", c.LogFormat))
	}
	if c.TaskQueue == "" {
		errs = append(errs, errors.New("--task-queue must not be empty"))
	}
	if c.AMQPExchange == "" {
		errs = append(errs, errors.New("--amqp-exchange must not be empty"))
	}
	if c.AMQPDeliveryLimit, err = strconv.Atoi(*deliveryLimit); err != nil || c.AMQPDeliveryLimit < 1 {
		errs = append(errs, fmt.Errorf("--amqp-delivery-limit %q: want a positive integer", *deliveryLimit))
	} else if err := (amqp.Config{URL: c.AMQPURL, QueueType: c.AMQPQueueType, DeliveryLimit: c.AMQPDeliveryLimit,
		TLS: amqp.TLSConfig{CAFile: c.AMQPTLSCA, CertFile: c.AMQPTLSCert, KeyFile: c.AMQPTLSKey}}).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--amqp-url, --amqp-queue-type, --amqp-tls-*: %w", err))
	}
	return c, errors.Join(errs...)
}

// versioning configures Temporal Worker Versioning of the workflows part.
type versioning struct {
	// DeploymentName is the Worker Deployment; empty turns versioning off.
	DeploymentName string
	// BuildID identifies this build within the deployment. Default: the
	// binary's VCS revision (resolve).
	BuildID string
	// MakeCurrentIfUnset makes BuildID the deployment's current version
	// when the deployment has none, so that the first deploy needs no
	// operator step. Default true.
	MakeCurrentIfUnset bool
}

// Enabled reports whether the worker runs under Worker Versioning.
func (v versioning) Enabled() bool { return v.DeploymentName != "" }

// String names the version as the Temporal CLI shows it.
func (v versioning) String() string { return v.DeploymentName + ":" + v.BuildID }

// readBuildInfo is debug.ReadBuildInfo, replaced in tests.
var readBuildInfo = debug.ReadBuildInfo

// resolve validates the deployment name and fills in the build id from the
// binary's VCS stamp when none is given.
func (v *versioning) resolve(buildInfo func() (*debug.BuildInfo, bool)) error {
	if !v.Enabled() {
		return nil
	}
	var errs []error
	if strings.Contains(v.DeploymentName, ".") {
		errs = append(errs, fmt.Errorf("--deployment-name %q: must not contain \".\" (reserved by Temporal)", v.DeploymentName))
	}
	if v.BuildID == "" {
		v.BuildID = vcsBuildID(buildInfo)
	}
	switch {
	case v.BuildID == "":
		errs = append(errs, errors.New("--deployment-name needs a build id: pass --build-id (env TEMPORAL_BUILD_ID), "+
			"or build the worker from a git checkout with VCS stamping (go build -buildvcs=true) so its revision is the default"))
	case len(v.BuildID) > 255:
		errs = append(errs, fmt.Errorf("--build-id: %d characters, want at most 255", len(v.BuildID)))
	case strings.ContainsFunc(v.BuildID, unicode.IsSpace):
		errs = append(errs, fmt.Errorf("--build-id %q: must not contain spaces", v.BuildID))
	case v.BuildID == "__unversioned__":
		errs = append(errs, fmt.Errorf("--build-id %q is reserved by Temporal", v.BuildID))
	}
	return errors.Join(errs...)
}

// vcsBuildID is the VCS revision the binary was built from, with "-dirty"
// when the work tree had uncommitted changes; empty when the build was not
// stamped (go run, -buildvcs=false, a source tree without .git).
func vcsBuildID(buildInfo func() (*debug.BuildInfo, bool)) string {
	info, ok := buildInfo()
	if !ok {
		return ""
	}
	var rev string
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" && dirty {
		rev += "-dirty"
	}
	return rev
}

func parseParts(s string) ([]string, error) {
	var parts []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if group, ok := partGroups[p]; ok {
			parts = append(parts, group...)
			continue
		}
		if !slices.Contains(allParts, p) {
			return nil, fmt.Errorf("--run: unknown part %q (want %s, or all, orchestration, services)", p, strings.Join(allParts, ", "))
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return nil, errors.New("--run: no part selected")
	}
	slices.Sort(parts)
	return slices.Compact(parts), nil
}
