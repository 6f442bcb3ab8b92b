package compose_test

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/internal/repo"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
	"github.com/sagaflow/sagaflow/internal/testenv"
)

// The services of docker-compose.yml, by name.
const (
	svcPostgres         = "postgresql"
	svcTemporal         = "temporal"
	svcSearchAttributes = "temporal-search-attributes"
	svcUI               = "temporal-ui"
	svcRabbitMQ         = "rabbitmq"
	svcWorker           = "worker"
	// svcClusterWorker is the worker of the cluster profile.
	svcClusterWorker = "worker-cluster"
)

// svcClusterNodes are the RabbitMQ nodes of the cluster profile.
var svcClusterNodes = []string{"rabbitmq-1", "rabbitmq-2", "rabbitmq-3"}

var (
	root string
	// workerBin is ./worker, built once for the tests that run it.
	workerBin string
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compose:", err)
		code = 2
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	var err error
	if root, err = repo.Root(); err != nil {
		return 0, err
	}
	dir, err := os.MkdirTemp("", "sagaflow-compose-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	workerBin = filepath.Join(dir, "worker")
	cmd := exec.Command("go", "build", "-o", workerBin, "./worker")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("go build ./worker: %v\n%s", err, out)
	}
	return m.Run(), nil
}

// project loads docker-compose.yml as `docker compose` does, with the
// given profiles on (every profile when none is given), and fails the test on what Compose would refuse: a schema
// error, a dependency on an unknown service, an undeclared volume.
//
// The environment is empty rather than the shell's, and the file may
// interpolate nothing from it: a `$NAME` meant for a container's shell
// (written `$$NAME`) would otherwise be replaced on the host.
func project(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	if len(profiles) == 0 {
		profiles = []string{"*"}
	}
	var interpolated []string
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithProfiles(profiles),
		cli.WithLoadOptions(func(o *loader.Options) {
			// Unset while the files are read; set for loading them.
			if o.Interpolate == nil {
				return
			}
			o.Interpolate.LookupValue = func(name string) (string, bool) {
				interpolated = append(interpolated, name)
				return "", false
			}
		}),
	)
	require.NoError(t, err)
	p, err := opts.LoadProject(t.Context())
	require.NoError(t, err, "docker-compose.yml")
	require.Empty(t, interpolated, "docker-compose.yml interpolates variables of the shell running `docker compose`; write $$ for a container's shell")
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	require.NoError(t, err)
	return s
}

// ports lists a service's port mappings as "published:target".
func ports(s types.ServiceConfig) []string {
	var out []string
	for _, p := range s.Ports {
		out = append(out, fmt.Sprintf("%s:%d", p.Published, p.Target))
	}
	return out
}

var versionTag = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*([.-][A-Za-z0-9.-]+)?$`)

// TestServices checks that every service runs a pinned image of the
// expected repository, or is built here, and publishes its ports.
func TestServices(t *testing.T) {
	p := project(t)
	tests := []struct {
		service string
		// repo is the image repository, empty for a service built here.
		repo string
		// tagSuffix is what the image tag must end with.
		tagSuffix string
		ports     []string
	}{
		{service: svcPostgres, repo: "postgres", ports: []string{"5432:5432"}},
		{service: svcTemporal, repo: "temporalio/auto-setup", ports: []string{"7233:7233"}},
		{service: svcSearchAttributes, repo: "temporalio/admin-tools"},
		{service: svcUI, repo: "temporalio/ui", ports: []string{"8080:8080"}},
		// The management tag has the management plugin (UI on 15672) on.
		{service: svcRabbitMQ, repo: "rabbitmq", tagSuffix: "-management", ports: []string{"5672:5672", "15672:15672"}},
		{service: svcWorker, ports: []string{"9090:9090"}},
		// The cluster profile: `make cluster`'s ports, and the management
		// UI of each node.
		{service: svcClusterNodes[0], repo: "rabbitmq", tagSuffix: "-management", ports: []string{"5681:5672", "15681:15672"}},
		{service: svcClusterNodes[1], repo: "rabbitmq", tagSuffix: "-management", ports: []string{"5682:5672", "15682:15672"}},
		{service: svcClusterNodes[2], repo: "rabbitmq", tagSuffix: "-management", ports: []string{"5683:5672", "15683:15672"}},
		{service: svcClusterWorker, ports: []string{"9091:9090"}},
	}
	var names []string
	for _, tt := range tests {
		names = append(names, tt.service)
		t.Run(tt.service, func(t *testing.T) {
			s := service(t, p, tt.service)
			if tt.repo == "" {
				require.NotNil(t, s.Build, "built from this repository")
				require.Empty(t, s.Image)
				require.FileExists(t, filepath.Join(s.Build.Context, s.Build.Dockerfile))
			} else {
				repo, tag, _ := strings.Cut(s.Image, ":")
				require.Equal(t, tt.repo, repo, "image %s", s.Image)
				require.Regexp(t, versionTag, tag, "image %s is not pinned to a version", s.Image)
				require.True(t, strings.HasSuffix(tag, tt.tagSuffix), "image %s: tag must end with %q", s.Image, tt.tagSuffix)
			}
			require.ElementsMatch(t, tt.ports, ports(s))
		})
	}
	// TestObservabilityProfile checks the observability profile's services.
	require.ElementsMatch(t, append(names, observabilityServices...), p.ServiceNames(), "every service is checked by this test")
	require.Equal(t, "temporal:7233", service(t, p, svcUI).Environment.ToMapping()["TEMPORAL_ADDRESS"], "the UI reaches the Temporal frontend")

	server := imageTag(service(t, p, svcTemporal).Image)
	admin := imageTag(service(t, p, svcSearchAttributes).Image)
	require.True(t, admin == server || strings.HasPrefix(admin, server+"-"),
		"admin-tools %s is not the release of the server %s", admin, server)
	t.Run("same Temporal as the dev server of the tests", func(t *testing.T) {
		cli, ok := temporaltest.CLIPath()
		if !ok {
			testenv.Unavailable(t, "Temporal CLI", "run `make temporal`")
		}
		out, err := exec.Command(cli, "--version").Output()
		require.NoError(t, err)
		// temporal version 1.5.1 (Server 1.29.1, UI 2.42.1)
		m := regexp.MustCompile(`Server ([0-9.]+), UI ([0-9.]+)`).FindStringSubmatch(string(out))
		require.NotNil(t, m, "unexpected `temporal --version` output %q", out)
		require.Equal(t, m[1], server, "temporalio/auto-setup")
		require.Equal(t, m[2], imageTag(service(t, p, svcUI).Image), "temporalio/ui")
	})
}

func imageTag(image string) string {
	_, tag, _ := strings.Cut(image, ":")
	return tag
}

// TestHealthChecks checks that the services the others wait for have a
// health check, that the others wait for it, and that healthy means usable.
func TestHealthChecks(t *testing.T) {
	p := project(t)
	for _, name := range append([]string{svcPostgres, svcTemporal, svcRabbitMQ, svcWorker, svcClusterWorker}, svcClusterNodes...) {
		test := healthcheck(t, service(t, p, name))
		require.Contains(t, []string{"CMD", "CMD-SHELL"}, test[0], "%s: healthcheck test %q", name, test)
	}

	healthy, completed := types.ServiceConditionHealthy, types.ServiceConditionCompletedSuccessfully
	want := map[string]map[string]string{
		svcPostgres:         {},
		svcRabbitMQ:         {},
		svcTemporal:         {svcPostgres: healthy},
		svcSearchAttributes: {svcTemporal: healthy},
		svcUI:               {svcTemporal: healthy},
		svcWorker:           {svcPostgres: healthy, svcRabbitMQ: healthy, svcTemporal: healthy, svcSearchAttributes: completed},
		// The others join the first node once it runs, rather than each
		// forming a cluster of its own.
		svcClusterNodes[0]: {},
		svcClusterNodes[1]: {svcClusterNodes[0]: healthy},
		svcClusterNodes[2]: {svcClusterNodes[0]: healthy},
		svcClusterWorker: {
			svcPostgres: healthy, svcTemporal: healthy, svcSearchAttributes: completed,
			svcClusterNodes[0]: healthy, svcClusterNodes[1]: healthy, svcClusterNodes[2]: healthy,
		},
	}
	for name, deps := range want {
		got := map[string]string{}
		for dep, d := range service(t, p, name).DependsOn {
			got[dep] = d.Condition
			target := service(t, p, dep)
			switch d.Condition {
			case healthy:
				healthcheck(t, target)
			case completed:
				// A one-shot that restarts never completes.
				require.Contains(t, []string{"", "no"}, target.Restart, "%s waits for %s to complete", name, dep)
			}
		}
		require.Equal(t, deps, got, "%s depends_on", name)
	}

	// The Temporal server is only usable once auto-setup has registered the
	// namespace the others use.
	temporal := service(t, p, svcTemporal)
	test := healthcheck(t, temporal)
	require.Equal(t, []string{"CMD", "temporal", "operator", "namespace", "describe"}, test[:min(5, len(test))])
	require.Equal(t, temporal.Environment.ToMapping()["DEFAULT_NAMESPACE"], flagValue(test, "--namespace"))
}

// healthcheck returns the command of a service's health check, which must
// be on.
func healthcheck(t *testing.T, s types.ServiceConfig) []string {
	t.Helper()
	require.True(t, s.HealthCheck != nil && !s.HealthCheck.Disable, "%s has no healthcheck", s.Name)
	require.NotEmpty(t, s.HealthCheck.Test, "%s: healthcheck test", s.Name)
	return s.HealthCheck.Test
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// workerVar is one setting of the worker, as `worker --help` prints it.
type workerVar struct {
	Flag, Env, Default string
}

var (
	helpFlag    = regexp.MustCompile(`^  -([a-z0-9-]+)`)
	helpEnv     = regexp.MustCompile(`\(env ([A-Z0-9_]+)\)`)
	helpDefault = regexp.MustCompile(`\(default ("(?:[^"\\]|\\.)*")\)`)
)

// workerVars runs `worker --help` in an empty environment, so that the
// defaults printed are the code's, and reads its flag table by variable.
func workerVars(t *testing.T) map[string]workerVar {
	t.Helper()
	cmd := exec.Command(workerBin, "--help")
	cmd.Env = []string{}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "worker --help: %s", out)
	vars := map[string]workerVar{}
	var flag, desc string
	flush := func() {
		if flag == "" {
			return
		}
		m := helpEnv.FindStringSubmatch(desc)
		require.NotNil(t, m, "worker --help: flag -%s names no environment variable: %s", flag, desc)
		v := workerVar{Flag: flag, Env: m[1]}
		if d := helpDefault.FindStringSubmatch(desc); d != nil {
			v.Default, err = strconv.Unquote(d[1])
			require.NoError(t, err)
		}
		vars[v.Env] = v
	}
	for _, line := range strings.Split(string(out), "\n") {
		if m := helpFlag.FindStringSubmatch(line); m != nil {
			flush()
			flag, desc = m[1], ""
			continue
		}
		desc += " " + strings.TrimSpace(line)
	}
	flush()
	// The parser found the table, not nothing.
	require.Equal(t, "temporal-address", vars["TEMPORAL_ADDRESS"].Flag, "worker --help:\n%s", out)
	return vars
}

// TestWorkerEnvironment checks the worker's environment against the
// worker's own flag table and against the services it must reach.
func TestWorkerEnvironment(t *testing.T) {
	p := project(t)
	vars := workerVars(t)
	w := service(t, p, svcWorker)
	env := w.Environment.ToMapping()

	for k := range env {
		if strings.HasPrefix(k, "OTEL_") {
			continue // the OpenTelemetry SDK's own variables, not flags
		}
		_, ok := vars[k]
		require.True(t, ok, "the worker reads no %s (see `go run ./worker --help`)", k)
	}
	// A default that points at the local machine (a loopback address, a
	// file in the working directory) is, in a container, the container.
	for _, v := range vars {
		d := v.Default
		if strings.Contains(d, "127.0.0.1") || strings.Contains(d, "localhost") || strings.HasPrefix(d, ".") {
			require.NotEmpty(t, env[v.Env], "%s (--%s) defaults to %q, which in a container is the container itself", v.Env, v.Flag, v.Default)
		}
	}

	t.Run("Temporal", func(t *testing.T) {
		require.Equal(t, "temporal:7233", env["TEMPORAL_ADDRESS"])
		ns := env["TEMPORAL_NAMESPACE"]
		require.Equal(t, service(t, p, svcTemporal).Environment.ToMapping()["DEFAULT_NAMESPACE"], ns, "the namespace auto-setup registers")
		require.Equal(t, service(t, p, svcSearchAttributes).Environment.ToMapping()["TEMPORAL_NAMESPACE"], ns, "the namespace the search attributes go to")
	})
	t.Run("RabbitMQ", func(t *testing.T) {
		u, err := url.Parse(env["AMQP_URL"])
		require.NoError(t, err)
		require.Equal(t, "amqp", u.Scheme)
		require.Equal(t, svcRabbitMQ, u.Hostname())
		require.Contains(t, []string{"", "5672"}, u.Port())
		rmq := service(t, p, svcRabbitMQ).Environment.ToMapping()
		require.Equal(t, rmq["RABBITMQ_DEFAULT_USER"], u.User.Username())
		pass, _ := u.User.Password()
		require.Equal(t, rmq["RABBITMQ_DEFAULT_PASS"], pass)
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		pg := service(t, p, svcPostgres).Environment.ToMapping()
		for _, k := range []string{"LEDGER_DSN", "INVENTORY_DSN", "ORDERS_DSN"} {
			u, err := url.Parse(env[k])
			require.NoError(t, err, k)
			require.Contains(t, []string{"postgres", "postgresql"}, u.Scheme, k)
			require.Equal(t, svcPostgres, u.Hostname(), k)
			require.Equal(t, pg["POSTGRES_USER"], u.User.Username(), k)
			pass, _ := u.User.Password()
			require.Equal(t, pg["POSTGRES_PASSWORD"], pass, k)
			require.Equal(t, "/"+pg["POSTGRES_DB"], u.Path, k)
		}
	})
	t.Run("metrics and health", func(t *testing.T) {
		host, port, err := net.SplitHostPort(env["METRICS_ADDR"])
		require.NoError(t, err)
		require.Contains(t, []string{"", "0.0.0.0"}, host, "a loopback address is unreachable through the port mapping")
		require.Contains(t, ports(w), port+":"+port)
		hc, err := url.Parse(flagValue(healthcheck(t, w), "--url"))
		require.NoError(t, err)
		require.Equal(t, port, hc.Port(), "the healthcheck asks the metrics address")
	})
	t.Run("graceful stop", func(t *testing.T) {
		grace := env["SHUTDOWN_GRACE"]
		if grace == "" {
			grace = vars["SHUTDOWN_GRACE"].Default
		}
		g, err := time.ParseDuration(grace)
		require.NoError(t, err)
		// Docker's default is 10s, then SIGKILL.
		stop := 10 * time.Second
		if w.StopGracePeriod != nil {
			stop = time.Duration(*w.StopGracePeriod)
		}
		require.Greater(t, stop, g, "stop_grace_period must outlast SHUTDOWN_GRACE, or running activities are killed")
	})
}

// TestWorkerImage checks that the worker's Dockerfile builds ./worker with
// go.mod's Go version, and that its entrypoint is the binary the health
// check runs, with no shell to run anything else.
func TestWorkerImage(t *testing.T) {
	w := service(t, project(t), svcWorker)
	require.NotNil(t, w.Build, "built from this repository")
	dockerfile, err := os.ReadFile(filepath.Join(w.Build.Context, w.Build.Dockerfile))
	require.NoError(t, err)
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	goVersion := regexp.MustCompile(`(?m)^go ([0-9.]+)\s*$`).FindSubmatch(gomod)
	require.NotNil(t, goVersion, "go.mod has no go line")

	builder := regexp.MustCompile(`(?m)^FROM golang:([^\s]+)`).FindSubmatch(dockerfile)
	require.NotNil(t, builder, "no golang build stage")
	tag := string(builder[1])
	require.True(t, tag == string(goVersion[1]) || strings.HasPrefix(tag, string(goVersion[1])+"-"),
		"builder golang:%s: go.mod wants Go %s; another version builds with a different toolchain or downloads one", tag, goVersion[1])
	require.Regexp(t, `(?m)^RUN CGO_ENABLED=0 go build .* \./worker$`, string(dockerfile))

	entrypoint := regexp.MustCompile(`(?m)^ENTRYPOINT \["([^"]+)"\]$`).FindSubmatch(dockerfile)
	require.NotNil(t, entrypoint, "ENTRYPOINT must be the exec form of one binary")
	test := healthcheck(t, w)
	require.Equal(t, []string{"CMD", string(entrypoint[1]), "healthcheck", "--url"}, test[:min(4, len(test))])
}

// TestWorkerHealthcheck runs the worker's healthcheck command, as the
// compose file writes it, against stand-ins for the worker's /healthz.
func TestWorkerHealthcheck(t *testing.T) {
	test := healthcheck(t, service(t, project(t), svcWorker))
	require.Len(t, test, 5)
	target, err := url.Parse(test[4])
	require.NoError(t, err)

	tests := []struct {
		name     string
		status   int // 0: nothing listens
		wantExit int
	}{
		{name: "healthy", status: http.StatusOK, wantExit: 0},
		{name: "consumers not consuming", status: http.StatusServiceUnavailable, wantExit: 1},
		{name: "worker down", wantExit: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var paths []string
			var mu sync.Mutex
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				paths = append(paths, r.URL.Path)
				mu.Unlock()
				w.WriteHeader(tt.status)
			}))
			u := *target
			u.Host = srv.Listener.Addr().String()
			if tt.status == 0 {
				srv.Close()
			} else {
				defer srv.Close()
			}
			cmd := exec.Command(workerBin, test[2], test[3], u.String())
			cmd.Env = []string{}
			out, err := cmd.CombinedOutput()
			exit := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				exit = ee.ExitCode()
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tt.wantExit, exit, "worker %s: %s", strings.Join(test[2:], " "), out)
			if tt.status != 0 {
				mu.Lock()
				defer mu.Unlock()
				require.Equal(t, []string{target.Path}, paths)
			}
		})
	}
}

// TestSearchAttributes checks that the one-shot setup registers exactly
// the search attributes the sagas upsert, and runs its script, as the
// container receives it, under /bin/sh with a stand-in `temporal` command.
func TestSearchAttributes(t *testing.T) {
	keys := []temporal.SearchAttributeKey{contract.SagaStatusKey, contract.OrderIDKey, contract.CustomerIDKey}
	var want, fromHarness []string
	for _, k := range keys {
		typ := strings.ToUpper(strings.TrimPrefix(k.GetValueType().String(), "INDEXED_VALUE_TYPE_"))
		want = append(want, k.GetName()+"="+typ)
	}
	for _, sa := range contract.SearchAttributes() {
		name, typ, _ := strings.Cut(sa, "=")
		fromHarness = append(fromHarness, name+"="+strings.ToUpper(typ))
	}
	require.ElementsMatch(t, want, fromHarness, "the dev server of the tests registers other attributes than the workflows use")

	s := service(t, project(t), svcSearchAttributes)
	env := s.Environment.ToMapping()
	require.Equal(t, []string{"/bin/sh", "-c"}, []string(s.Entrypoint))
	require.Len(t, s.Command, 1, "one script")
	script := s.Command[0]

	stubs := t.TempDir()
	writeStub(t, stubs, "temporal", stubTemporal)
	writeStub(t, stubs, "sleep", "#!/bin/sh\nexit 0\n")

	all := "Name Type\nCustomKeywordField Keyword\nSagaStatus Keyword\nOrderId Keyword\nCustomerId Keyword\n"
	tests := []struct {
		name     string
		existing string
		// notReady: how many list calls fail as for a namespace not yet known.
		notReady    int
		createFails bool
		wantCreated []string
		wantFail    bool
	}{
		{name: "fresh namespace", existing: "Name Type\nCustomKeywordField Keyword\n", notReady: 3, wantCreated: want},
		{name: "already registered", existing: all},
		{name: "one missing", existing: "Name Type\nSagaStatus Keyword\nCustomerId Keyword\n", wantCreated: []string{"OrderId=KEYWORD"}},
		{name: "namespace never known", notReady: 1000, wantFail: true},
		{name: "create refused", existing: "Name Type\n", createFails: true, wantFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(state, "existing"), []byte(tt.existing), 0o644))
			cmd := exec.Command("/bin/sh", "-c", script)
			cmd.Env = []string{
				"PATH=" + stubs + ":/usr/bin:/bin",
				"STUB_DIR=" + state,
				"STUB_NOT_READY=" + strconv.Itoa(tt.notReady),
			}
			if tt.createFails {
				cmd.Env = append(cmd.Env, "STUB_CREATE_FAILS=1")
			}
			for k, v := range env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			out, err := cmd.CombinedOutput()
			if tt.wantFail {
				require.Error(t, err, "the setup must fail, so that the worker does not start: %s", out)
				return
			}
			require.NoError(t, err, "%s", out)

			var created []string
			if b, err := os.ReadFile(filepath.Join(state, "created")); err == nil {
				for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
					args := strings.Fields(line)
					require.Equal(t, env["TEMPORAL_NAMESPACE"], flagValue(args, "--namespace"), line)
					created = append(created, flagValue(args, "--name")+"="+strings.ToUpper(flagValue(args, "--type")))
				}
			}
			require.ElementsMatch(t, tt.wantCreated, created)
		})
	}
}

// stubTemporal stands in for the Temporal CLI: `search-attribute list`
// fails STUB_NOT_READY times, then prints $STUB_DIR/existing; `create`
// records its arguments in $STUB_DIR/created.
const stubTemporal = `#!/bin/sh
case "$*" in
*"search-attribute list"*)
	n=$(cat "$STUB_DIR/lists" 2>/dev/null || echo 0)
	n=$((n + 1))
	echo "$n" >"$STUB_DIR/lists"
	if [ "$n" -le "$STUB_NOT_READY" ]; then echo "Namespace default is not found." >&2; exit 1; fi
	cat "$STUB_DIR/existing"
	;;
*"search-attribute create"*)
	if [ -n "$STUB_CREATE_FAILS" ]; then echo "refused" >&2; exit 1; fi
	echo "$*" >>"$STUB_DIR/created"
	;;
*)
	echo "unexpected: temporal $*" >&2
	exit 2
	;;
esac
`

func writeStub(t *testing.T, dir, name, script string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755))
}

// TestTemporalDynamicConfig checks that the Temporal server loads the
// repository's dynamic config file and that it enables what versioned
// workers need, as the tests' dev server does.
func TestTemporalDynamicConfig(t *testing.T) {
	s := service(t, project(t), svcTemporal)
	path := s.Environment.ToMapping()["DYNAMIC_CONFIG_FILE_PATH"]
	require.NotEmpty(t, path, "auto-setup reads the dynamic config file DYNAMIC_CONFIG_FILE_PATH names")
	target := path
	if !filepath.IsAbs(target) {
		target = filepath.Join("/etc/temporal", path) // auto-setup's working directory
	}
	var source string
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == target {
			source = v.Source
			require.True(t, v.ReadOnly, "the server only reads its dynamic config")
		}
	}
	require.NotEmpty(t, source, "no bind mount of a file at %s", target)
	body, err := os.ReadFile(source)
	require.NoError(t, err, "the mounted dynamic config file")
	for _, kv := range temporaltest.DeploymentDynamicConfig {
		key, value, _ := strings.Cut(kv, "=")
		require.Regexp(t, `(?m)^`+regexp.QuoteMeta(key)+`:\n\s+- value: `+regexp.QuoteMeta(value)+`$`, string(body),
			"%s sets %s as the tests' dev server does", source, kv)
	}
}
