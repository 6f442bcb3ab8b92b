package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigDefaultsAndEnvironment(t *testing.T) {
	cfg, err := parseConfig(nil, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:7233", cfg.TemporalAddress)
	require.Equal(t, "default", cfg.TemporalNamespace)
	require.Equal(t, "sagas", cfg.TaskQueue)
	require.Equal(t, "amqp://guest:guest@127.0.0.1:5672/", cfg.AMQPURL)
	require.Equal(t, "sagas.events", cfg.AMQPExchange)
	require.Equal(t, "quorum", cfg.AMQPQueueType)
	require.Equal(t, 20, cfg.AMQPDeliveryLimit)
	require.Equal(t, ".data/ledger.db", cfg.LedgerDSN)
	require.Equal(t, allPartsSorted(), cfg.Parts)
	require.Equal(t, 30*time.Second, cfg.ShutdownGrace)

	cfg, err = parseConfig([]string{"--task-queue", "from-flag"}, env(map[string]string{
		"TEMPORAL_ADDRESS":    "temporal:7233",
		"TEMPORAL_NAMESPACE":  "prod",
		"TEMPORAL_TASK_QUEUE": "from-env",
		"AMQP_URL":            "amqps://u:p@mq:5671/",
		"AMQP_EXCHANGE":       "tenant-a.events",
		"AMQP_QUEUE_TYPE":     "classic",
		"AMQP_DELIVERY_LIMIT": "7",
		"LEDGER_DSN":          "postgres://db/ledger",
		"WORKER_RUN":          "services",
	}), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "temporal:7233", cfg.TemporalAddress)
	require.Equal(t, "prod", cfg.TemporalNamespace)
	require.Equal(t, "from-flag", cfg.TaskQueue, "a flag wins over the environment")
	require.Equal(t, "amqps://u:p@mq:5671/", cfg.AMQPURL)
	require.Equal(t, "tenant-a.events", cfg.AMQPExchange)
	require.Equal(t, "classic", cfg.AMQPQueueType)
	require.Equal(t, 7, cfg.AMQPDeliveryLimit)
	require.Equal(t, "postgres://db/ledger", cfg.LedgerDSN)
	require.Equal(t, []string{partInventory, partLedger, partNotifications, partProjection}, cfg.Parts)
}

func TestRunGroupsExpand(t *testing.T) {
	cases := []struct {
		run  string
		want []string
	}{
		{"orchestration", []string{partBridge, partReplies, partWorkflows}},
		{"services", []string{partInventory, partLedger, partNotifications, partProjection}},
		{"orchestration,services", allPartsSorted()},
		{"services, workflows", []string{partInventory, partLedger, partNotifications, partProjection, partWorkflows}},
		{"notifications,notifications", []string{partNotifications}},
	}
	for _, tc := range cases {
		t.Run(tc.run, func(t *testing.T) {
			got, err := parseParts(tc.run)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// TestEveryPartIsInOneHalf: a deployment of orchestration and services
// workers runs every part, each in one kind of worker only.
func TestEveryPartIsInOneHalf(t *testing.T) {
	for _, p := range allParts {
		in := 0
		for _, g := range []string{"orchestration", "services"} {
			if slices.Contains(partGroups[g], p) {
				in++
			}
		}
		require.Equal(t, 1, in, "part %s is in %d of orchestration and services", p, in)
	}
}

func allPartsSorted() []string {
	parts, _ := parseParts("all")
	return parts
}

func TestConfigRejectsBadInput(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown part", []string{"--run", "workflows,mailer"}, nil, `unknown part "mailer"`},
		{"empty run", []string{"--run", " , "}, nil, "no part selected"},
		{"bad grace", []string{"--shutdown-grace", "soon"}, nil, "--shutdown-grace"},
		{"bad heartbeat", []string{"--amqp-heartbeat", "often"}, nil, "--amqp-heartbeat"},
		{"heartbeat below a second", nil, map[string]string{"AMQP_HEARTBEAT": "100ms"}, "at least 1s"},
		{"keepalive below gRPC's floor", []string{"--temporal-keepalive", "5s"}, nil, "--temporal-keepalive \"5s\": want a duration of at least 10s"},
		{"negative pollers", []string{"--pollers", "-1"}, nil, "--pollers"},
		{"cert without key", nil, map[string]string{"TEMPORAL_TLS_CERT": "c.pem"}, "go together"},
		{"log level", []string{"--log-level", "loud"}, nil, "--log-level"},
		{"empty exchange", []string{"--amqp-exchange", ""}, nil, "--amqp-exchange must not be empty"},
		{"stray argument", []string{"extra"}, nil, "unexpected argument"},
		{"queue type", nil, map[string]string{"AMQP_QUEUE_TYPE": "stream"}, `queue type "stream": want quorum or classic`},
		{"delivery limit", []string{"--amqp-delivery-limit", "0"}, nil, `--amqp-delivery-limit "0": want a positive integer`},
		{"zero retention", []string{"--inbox-retention", "0"}, nil, `--inbox-retention "0": want a positive duration such as 24h, or forever`},
		{"negative retention", nil, map[string]string{"OUTBOX_RETENTION": "-1h"}, `--outbox-retention "-1h": want a positive duration`},
		{"malformed retention", []string{"--applied-events-retention", "a week"}, nil, `--applied-events-retention "a week": want a positive duration`},
		{"pprof not a bool", nil, map[string]string{"WORKER_PPROF": "maybe"}, `WORKER_PPROF "maybe": want true or false`},
		{"pprof without the http server", []string{"--pprof", "--http-addr="}, nil, "--pprof needs --http-addr"},
		{"bad node url", []string{"--amqp-url", "amqp://u:pw@a:5672/,amqp://u:pw@b:port/"}, nil, "url 2 of 2 amqp://u:***@b:port/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(tc.args, env(tc.env), &bytes.Buffer{})
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestHelpDocumentsEveryFlagWithItsEnvironmentVariable(t *testing.T) {
	var out bytes.Buffer
	_, err := parseConfig([]string{"--help"}, env(nil), &out)
	require.True(t, errors.Is(err, flag.ErrHelp))
	for _, want := range []string{"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY",
		"TEMPORAL_TLS_CA", "AMQP_URL", "AMQP_EXCHANGE", "AMQP_QUEUE_TYPE", "AMQP_DELIVERY_LIMIT", "comma-separated list of the URLs of a cluster's nodes", "LEDGER_DSN", "INVENTORY_DSN", "ORDERS_DSN", "TEMPORAL_TASK_QUEUE", "(default \"127.0.0.1:7233\")",
		"orchestration (workflows,replies,bridge:", "OUTBOX_RETENTION", "INBOX_RETENTION", "APPLIED_EVENTS_RETENTION", "services (ledger,inventory,projection,notifications:"} {
		require.Contains(t, out.String(), want)
	}
}

func TestRetentionConfig(t *testing.T) {
	cfg, err := parseConfig(nil, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, 24*time.Hour, cfg.OutboxRetention)
	require.Equal(t, 7*24*time.Hour, cfg.InboxRetention)
	require.Equal(t, 7*24*time.Hour, cfg.AppliedEventsRetention)

	cfg, err = parseConfig([]string{"--inbox-retention", "forever"}, env(map[string]string{
		"OUTBOX_RETENTION": "90m", "INBOX_RETENTION": "1h", "APPLIED_EVENTS_RETENTION": "2m",
	}), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, 90*time.Minute, cfg.OutboxRetention)
	require.Negative(t, cfg.InboxRetention, "forever keeps every row; the flag wins over the environment")
	require.Equal(t, 2*time.Minute, cfg.AppliedEventsRetention)

	rc := (&process{cfg: cfg, logger: slog.Default()}).relayConfig("ledger")
	require.Equal(t, 90*time.Minute, rc.Retention, "the services' relays get the retention")
	require.Negative(t, rc.InboxRetention)
}

func TestRunExitCodes(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"--help"}, env(nil), &stdout, &stderr))
	require.Equal(t, 2, run([]string{"--run", "nope"}, env(nil), &stdout, &stderr))
	require.Contains(t, stderr.String(), `worker: --run: unknown part "nope"`)
}

func TestTemporalTLSFilesAreReadBeforeDialling(t *testing.T) {
	cfg := config{TemporalAddress: "127.0.0.1:1", TemporalNamespace: "default", TemporalTLSCA: filepath.Join(t.TempDir(), "missing.pem")}
	_, err := dialTemporal(cfg, slog.New(slog.DiscardHandler), nil, nil)
	require.ErrorContains(t, err, "temporal TLS CA: open "+cfg.TemporalTLSCA)
}

func TestCodecConfig(t *testing.T) {
	cfg, err := parseConfig(nil, env(nil), &bytes.Buffer{})
	require.NoError(t, err)
	require.False(t, cfg.Codec.Enabled(), "no key file: payloads unencrypted")

	dir := t.TempDir()
	good := filepath.Join(dir, "keys")
	require.NoError(t, os.WriteFile(good, []byte("k2:"+base64.StdEncoding.EncodeToString(make([]byte, 32))+"\nk1:"+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))+"\n"), 0o600))
	cfg, err = parseConfig(nil, env(map[string]string{"SAGAFLOW_CODEC_KEYS": good, "SAGAFLOW_CODEC_COMPRESS": "true"}), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "k2", cfg.Codec.EncryptingKeyID())
	require.Equal(t, []string{"k2", "k1"}, cfg.Codec.KeyIDs())

	short := filepath.Join(dir, "short")
	require.NoError(t, os.WriteFile(short, []byte("k1:"+base64.StdEncoding.EncodeToString(make([]byte, 16))+"\n"), 0o600))
	dup := filepath.Join(dir, "dup")
	require.NoError(t, os.WriteFile(dup, []byte("k1:"+base64.StdEncoding.EncodeToString(make([]byte, 32))+"\nk1:"+base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n"), 0o600))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unreadable file", []string{"--codec-keys", filepath.Join(dir, "nope")}, "worker: --codec-keys: key file " + filepath.Join(dir, "nope") + ": no such file or directory\n"},
		{"short key", []string{"--codec-keys", short}, "worker: --codec-keys: key file " + short + `: line 1: key "k1" is 16 bytes, want 32 (AES-256)` + "\n"},
		{"duplicate id", []string{"--codec-keys", dup}, "worker: --codec-keys: key file " + dup + `: line 2: key id "k1" is already on line 1` + "\n"},
		{"bad compress", []string{"--codec-compress", "maybe"}, `worker: --codec-compress "maybe": want true or false` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			require.Equal(t, 2, run(tc.args, env(nil), &stdout, &stderr))
			require.Equal(t, tc.want, stderr.String(), "one line")
		})
	}
}

// stampedBuild is a build info as `go build` stamps it in a git checkout.
func stampedBuild(rev string, modified bool) func() (*debug.BuildInfo, bool) {
	return func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: strconv.FormatBool(modified)},
		}}, true
	}
}

// withBuildInfo replaces the binary's build info for one test.
func withBuildInfo(t *testing.T, f func() (*debug.BuildInfo, bool)) {
	old := readBuildInfo
	readBuildInfo = f
	t.Cleanup(func() { readBuildInfo = old })
}

func TestVersioningConfig(t *testing.T) {
	withBuildInfo(t, stampedBuild("0123abc", false))
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want versioning
	}{
		{"off by default", nil, nil, versioning{}},
		{"a build id alone turns nothing on", []string{"--build-id", "b1"}, nil, versioning{}},
		{"flags", []string{"--deployment-name", "sagaflow", "--build-id", "b1"}, nil,
			versioning{DeploymentName: "sagaflow", BuildID: "b1", MakeCurrentIfUnset: true}},
		{"environment", nil, map[string]string{"TEMPORAL_DEPLOYMENT_NAME": "sagaflow", "TEMPORAL_BUILD_ID": "b2", "TEMPORAL_MAKE_CURRENT_IF_UNSET": "false"},
			versioning{DeploymentName: "sagaflow", BuildID: "b2"}},
		{"flag wins over the environment", []string{"--build-id", "b3"}, map[string]string{"TEMPORAL_DEPLOYMENT_NAME": "sagaflow", "TEMPORAL_BUILD_ID": "b2"},
			versioning{DeploymentName: "sagaflow", BuildID: "b3", MakeCurrentIfUnset: true}},
		{"build id defaults to the VCS revision", []string{"--deployment-name", "sagaflow"}, nil,
			versioning{DeploymentName: "sagaflow", BuildID: "0123abc", MakeCurrentIfUnset: true}},
		{"a services worker polls no workflow tasks", []string{"--deployment-name", "sagaflow", "--run", "services"}, nil, versioning{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig(tc.args, env(tc.env), &bytes.Buffer{})
			require.NoError(t, err)
			require.Equal(t, tc.want, cfg.Versioning)
			require.Equal(t, tc.want.Enabled(), tc.want.DeploymentName != "")
		})
	}
}

func TestVersioningBuildIDFromVCS(t *testing.T) {
	require.Equal(t, "0123abc", vcsBuildID(stampedBuild("0123abc", false)))
	require.Equal(t, "0123abc-dirty", vcsBuildID(stampedBuild("0123abc", true)), "uncommitted changes are another build")
	require.Empty(t, vcsBuildID(func() (*debug.BuildInfo, bool) { return &debug.BuildInfo{}, true }), "built without VCS stamping")
	require.Empty(t, vcsBuildID(func() (*debug.BuildInfo, bool) { return nil, false }), "no build info")
}

func TestVersioningRejectsBadInput(t *testing.T) {
	withBuildInfo(t, func() (*debug.BuildInfo, bool) { return &debug.BuildInfo{}, true })
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no build id", []string{"--deployment-name", "sagaflow"},
			"worker: --deployment-name needs a build id: pass --build-id (env TEMPORAL_BUILD_ID), or build the worker from a git checkout with VCS stamping (go build -buildvcs=true) so its revision is the default\n"},
		{"dot in the name", []string{"--deployment-name", "saga.flow", "--build-id", "b1"}, `worker: --deployment-name "saga.flow": must not contain "." (reserved by Temporal)` + "\n"},
		{"space in the build id", []string{"--deployment-name", "sagaflow", "--build-id", "b 1"}, `worker: --build-id "b 1": must not contain spaces` + "\n"},
		{"long build id", []string{"--deployment-name", "sagaflow", "--build-id", strings.Repeat("b", 256)}, "worker: --build-id: 256 characters, want at most 255\n"},
		{"reserved build id", []string{"--deployment-name", "sagaflow", "--build-id", "__unversioned__"}, `worker: --build-id "__unversioned__" is reserved by Temporal` + "\n"},
		{"bad make-current", []string{"--make-current-if-unset", "sometimes"}, `worker: --make-current-if-unset "sometimes": want true or false` + "\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			require.Equal(t, 2, run(tc.args, env(nil), &stdout, &stderr))
			require.Equal(t, tc.want, stderr.String(), "one line")
		})
	}
}

func TestHelpDocumentsVersioning(t *testing.T) {
	var out bytes.Buffer
	_, err := parseConfig([]string{"--help"}, env(nil), &out)
	require.True(t, errors.Is(err, flag.ErrHelp))
	for _, want := range []string{"-deployment-name", "TEMPORAL_DEPLOYMENT_NAME", "-build-id", "TEMPORAL_BUILD_ID", "VCS revision",
		"TEMPORAL_MAKE_CURRENT_IF_UNSET", "PINNED", "set-current-version"} {
		require.Contains(t, out.String(), want)
	}
}

func TestDeploymentOptions(t *testing.T) {
	require.Equal(t, worker.DeploymentOptions{}, deploymentOptions(versioning{}), "unversioned")
	require.Equal(t, worker.DeploymentOptions{
		UseVersioning:             true,
		Version:                   worker.WorkerDeploymentVersion{DeploymentName: "sagaflow", BuildID: "b1"},
		DefaultVersioningBehavior: workflow.VersioningBehaviorPinned,
	}, deploymentOptions(versioning{DeploymentName: "sagaflow", BuildID: "b1"}))
	opts := workerOptions(config{Versioning: versioning{DeploymentName: "sagaflow", BuildID: "b1"}}, nil)
	require.True(t, opts.DeploymentOptions.UseVersioning)
}
