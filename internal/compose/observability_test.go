package compose_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/sagaflow/sagaflow/internal/metrics"
)

// The observability profile and its services.
const (
	profileObservability = "observability"
	svcJaeger            = "jaeger"
	svcPrometheus        = "prometheus"
	svcGrafana           = "grafana"
)

var observabilityServices = []string{svcJaeger, svcPrometheus, svcGrafana}

// TestObservabilityProfile checks that Jaeger, Prometheus and Grafana run
// only with the observability profile, from pinned images, on the ports
// the README names, and that the worker sends its traces to Jaeger.
func TestObservabilityProfile(t *testing.T) {
	plain := project(t, "none") // no profile on, as `docker compose up`
	for _, name := range observabilityServices {
		require.NotContains(t, plain.ServiceNames(), name, "`docker compose up` without the profile starts no %s", name)
	}
	p := project(t, profileObservability)
	require.Subset(t, p.ServiceNames(), append(slices.Clone(observabilityServices), svcWorker), "the profile adds to the system, the worker included")

	tests := []struct {
		service, repo string
		ports         []string
	}{
		// OTLP gRPC and HTTP in, the UI out.
		{svcJaeger, "jaegertracing/all-in-one", []string{"4317:4317", "4318:4318", "16686:16686"}},
		// 9090 and 9091 on the host are the workers' /metrics.
		{svcPrometheus, "prom/prometheus", []string{"9092:9090"}},
		{svcGrafana, "grafana/grafana", []string{"3000:3000"}},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			s := service(t, p, tt.service)
			require.Equal(t, []string{profileObservability}, s.Profiles)
			repo, tag, _ := strings.Cut(s.Image, ":")
			require.Equal(t, tt.repo, repo, "image %s", s.Image)
			require.Regexp(t, versionTag, strings.TrimPrefix(tag, "v"), "image %s is not pinned to a version", s.Image)
			require.ElementsMatch(t, tt.ports, ports(s))
		})
	}

	t.Run("workers export traces to Jaeger", func(t *testing.T) {
		all := project(t)
		for _, w := range []string{svcWorker, svcClusterWorker} {
			u, err := url.Parse(service(t, all, w).Environment.ToMapping()["OTEL_EXPORTER_OTLP_ENDPOINT"])
			require.NoError(t, err, w)
			require.Equal(t, svcJaeger, u.Hostname(), w)
			require.Equal(t, "4317", u.Port(), "%s: OTLP/gRPC, the exporter's default protocol", w)
		}
		require.Equal(t, "true", service(t, p, svcJaeger).Environment.ToMapping()["COLLECTOR_OTLP_ENABLED"])
	})
	t.Run("Grafana waits for Prometheus", func(t *testing.T) {
		require.Contains(t, service(t, p, svcGrafana).DependsOn, svcPrometheus)
	})
}

// mounted returns the repository file a service mounts at target, which
// must exist and be mounted read-only.
func mounted(t *testing.T, s types.ServiceConfig, target string) string {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == target {
			require.True(t, v.ReadOnly, "%s only reads %s", s.Name, target)
			rel, err := filepath.Rel(root, v.Source)
			require.NoError(t, err)
			require.False(t, strings.HasPrefix(rel, ".."), "%s mounts %s from outside the repository", s.Name, v.Source)
			require.FileExists(t, v.Source, "%s mounts %s at %s", s.Name, rel, target)
			return v.Source
		}
	}
	t.Fatalf("%s mounts nothing at %s", s.Name, target)
	return ""
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(into), path)
}

// TestPrometheusScrapesTheWorker checks the Prometheus config the profile
// mounts: it scrapes the /metrics of `worker` and of the cluster profile's
// `worker-cluster` at the address each listens on inside the compose
// network (the one not running is merely a target down).
func TestPrometheusScrapesTheWorker(t *testing.T) {
	p := project(t, profileObservability)
	prom := service(t, p, svcPrometheus)
	require.Contains(t, []string(prom.Command), "--config.file=/etc/prometheus/prometheus.yml")
	var cfg struct {
		Global        map[string]string `yaml:"global"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, mounted(t, prom, "/etc/prometheus/prometheus.yml"), &cfg)

	var targets []string
	for _, sc := range cfg.ScrapeConfigs {
		require.Contains(t, []string{"", "/metrics"}, sc.MetricsPath, "job %s", sc.JobName)
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	all := project(t)
	var want []string
	for _, w := range []string{svcWorker, svcClusterWorker} {
		_, port, err := net.SplitHostPort(service(t, all, w).Environment.ToMapping()["METRICS_ADDR"])
		require.NoError(t, err, w)
		want = append(want, net.JoinHostPort(w, port))
	}
	require.ElementsMatch(t, want, targets, "every worker's METRICS_ADDR in the compose network, the cluster profile's too")
}

// grafanaDatasources is Grafana's datasource provisioning file.
type grafanaDatasources struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name      string `yaml:"name"`
		UID       string `yaml:"uid"`
		Type      string `yaml:"type"`
		Access    string `yaml:"access"`
		URL       string `yaml:"url"`
		IsDefault bool   `yaml:"isDefault"`
		Editable  bool   `yaml:"editable"`
	} `yaml:"datasources"`
}

// grafanaProviders is Grafana's dashboard provisioning file.
type grafanaProviders struct {
	APIVersion int `yaml:"apiVersion"`
	Providers  []struct {
		Name            string            `yaml:"name"`
		Folder          string            `yaml:"folder"`
		Type            string            `yaml:"type"`
		DisableDeletion bool              `yaml:"disableDeletion"`
		AllowUIUpdates  bool              `yaml:"allowUiUpdates"`
		Options         map[string]string `yaml:"options"`
	} `yaml:"providers"`
}

// dashboardPanel is what the test reads of a Grafana panel.
type dashboardPanel struct {
	Title      string           `json:"title"`
	Type       string           `json:"type"`
	Datasource *datasourceRef   `json:"datasource"`
	Panels     []dashboardPanel `json:"panels"` // a row's
	Targets    []struct {
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// TestGrafanaDashboard checks the Grafana provisioning the profile mounts:
// the datasources reach the profile's Prometheus and Jaeger, the provider
// loads the directory the dashboard is mounted in, every panel queries a
// provisioned datasource, and every metric the dashboard queries is one
// the worker exports, so a renamed metric fails here, not on a blank
// panel.
func TestGrafanaDashboard(t *testing.T) {
	p := project(t, profileObservability)
	g := service(t, p, svcGrafana)

	var ds grafanaDatasources
	readYAML(t, mounted(t, g, "/etc/grafana/provisioning/datasources/sagaflow.yml"), &ds)
	uids := map[string]string{} // uid -> type
	for _, d := range ds.Datasources {
		u, err := url.Parse(d.URL)
		require.NoError(t, err)
		switch d.Type {
		case "prometheus":
			require.Equal(t, "http://"+svcPrometheus+":9090", d.URL, "Prometheus' port in the compose network, not the host's")
			require.True(t, d.IsDefault)
		case "jaeger":
			require.Equal(t, svcJaeger, u.Hostname())
			require.Equal(t, "16686", u.Port(), "Jaeger's query port")
		default:
			t.Fatalf("unexpected datasource type %s", d.Type)
		}
		uids[d.UID] = d.Type
	}

	var prov grafanaProviders
	readYAML(t, mounted(t, g, "/etc/grafana/provisioning/dashboards/sagaflow.yml"), &prov)
	require.Len(t, prov.Providers, 1)
	dir := prov.Providers[0].Options["path"]
	require.NotEmpty(t, dir)
	dashboard := mounted(t, g, filepath.Join(dir, "sagaflow.json"))
	require.Equal(t, filepath.Join(dir, "sagaflow.json"), g.Environment.ToMapping()["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"], "the home dashboard is the mounted one")

	b, err := os.ReadFile(dashboard)
	require.NoError(t, err)
	var dash struct {
		UID    string           `json:"uid"`
		Title  string           `json:"title"`
		Panels []dashboardPanel `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(b, &dash))
	require.NotEmpty(t, dash.UID)

	exported := map[string]bool{}
	for _, n := range append(metrics.Names(), metrics.SDKNames()...) {
		exported[n] = true
	}
	queried := map[string]bool{}
	var walk func([]dashboardPanel)
	walk = func(panels []dashboardPanel) {
		for _, pn := range panels {
			walk(pn.Panels)
			if pn.Type == "row" {
				continue
			}
			require.NotEmpty(t, pn.Targets, "panel %q queries nothing", pn.Title)
			require.NotNil(t, pn.Datasource, "panel %q", pn.Title)
			require.Equal(t, "prometheus", uids[pn.Datasource.UID], "panel %q: datasource %s is not a provisioned Prometheus", pn.Title, pn.Datasource.UID)
			for _, tg := range pn.Targets {
				if tg.Datasource != nil {
					require.Equal(t, pn.Datasource.UID, tg.Datasource.UID, "panel %q", pn.Title)
				}
				names := metricName.FindAllString(tg.Expr, -1)
				require.NotEmpty(t, names, "panel %q: %s names no sagaflow_ or temporal_ metric", pn.Title, tg.Expr)
				for _, n := range names {
					require.True(t, exported[n], "panel %q queries %s, which the worker does not export (internal/metrics.Names, SDKNames)", pn.Title, n)
					queried[n] = true
				}
			}
		}
	}
	walk(dash.Panels)

	// What operators expect to see is charted.
	for _, n := range []string{
		"sagaflow_saga_started_total", "sagaflow_saga_ended_total", "sagaflow_saga_duration_seconds_bucket",
		"sagaflow_saga_compensations_total", "sagaflow_saga_parked_total",
		"sagaflow_amqp_consumer_dead_lettered_total", "sagaflow_outbox_pending", "sagaflow_amqp_reconnects_total",
		"temporal_workflow_task_schedule_to_start_latency_bucket", "temporal_workflow_task_execution_latency_bucket",
		"temporal_activity_schedule_to_start_latency_bucket", "temporal_activity_execution_latency_bucket",
	} {
		require.True(t, queried[n], "the dashboard charts no %s", n)
	}
}

// metricName finds the metric names in a PromQL expression.
var metricName = regexp.MustCompile(`\b(?:sagaflow|temporal)_\w+`)

// TestDashboardMetricCheckCatchesUnknownNames makes sure the check of
// TestGrafanaDashboard can fail: a name the worker does not export is not
// in the list it compares with.
func TestDashboardMetricCheckCatchesUnknownNames(t *testing.T) {
	exported := append(metrics.Names(), metrics.SDKNames()...)
	for _, expr := range []string{
		`sum(rate(sagaflow_sagas_started_total[5m]))`,
		`histogram_quantile(0.95, sum by (le) (rate(sagaflow_saga_duration_bucket[5m])))`,
		`rate(temporal_temporal_activity_execution_latency_bucket[1m])`,
	} {
		names := metricName.FindAllString(expr, -1)
		require.Len(t, names, 1, expr)
		require.NotContains(t, exported, names[0], fmt.Sprintf("%s is not a metric of the worker", names[0]))
	}
}
