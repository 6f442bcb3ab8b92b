package compose_test

import (
	"bytes"
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
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"gopkg.in/yaml.v3"

	"github.com/sagaflow/sagaflow/contract"
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
)

// Compose's depends_on conditions.
const (
	healthy   = "service_healthy"
	completed = "service_completed_successfully"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sagaflow-compose-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "compose:", err)
		os.Exit(2)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// composeFile is the part of the Compose file model the tests read.
type composeFile struct {
	Name     string             `yaml:"name"`
	Services map[string]service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
}

type service struct {
	Image string `yaml:"image"`
	Build *build `yaml:"build"`
	// DependsOn must be the long form: the short form (a list) has no
	// conditions, so it orders container starts, not readiness.
	DependsOn       map[string]dependency `yaml:"depends_on"`
	Environment     environment           `yaml:"environment"`
	Ports           []string              `yaml:"ports"`
	Volumes         []string              `yaml:"volumes"`
	Healthcheck     *healthcheck          `yaml:"healthcheck"`
	Entrypoint      stringList            `yaml:"entrypoint"`
	Command         stringList            `yaml:"command"`
	Restart         string                `yaml:"restart"`
	StopGracePeriod string                `yaml:"stop_grace_period"`
}

type dependency struct {
	Condition string `yaml:"condition"`
}

type healthcheck struct {
	Test        stringList `yaml:"test"`
	Interval    string     `yaml:"interval"`
	Timeout     string     `yaml:"timeout"`
	Retries     int        `yaml:"retries"`
	StartPeriod string     `yaml:"start_period"`
	Disable     bool       `yaml:"disable"`
}

// build is `build: <context>` or `build: {context, dockerfile}`.
type build struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

func (b *build) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Context = n.Value
		return nil
	}
	type plain build
	return n.Decode((*plain)(b))
}

// environment is `KEY: value` or a list of `KEY=value`.
type environment map[string]string

func (e *environment) UnmarshalYAML(n *yaml.Node) error {
	*e = environment{}
	if n.Kind == yaml.SequenceNode {
		var list []string
		if err := n.Decode(&list); err != nil {
			return err
		}
		for _, kv := range list {
			k, v, _ := strings.Cut(kv, "=")
			(*e)[k] = v
		}
		return nil
	}
	var m map[string]string
	if err := n.Decode(&m); err != nil {
		return err
	}
	for k, v := range m {
		(*e)[k] = v
	}
	return nil
}

// stringList is a list of strings or one string.
type stringList []string

func (s *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = stringList{n.Value}
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return err
	}
	*s = list
	return nil
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "go.mod not found above the test's directory")
		dir = parent
	}
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docker-compose.yml"))
	require.NoError(t, err)
	var f composeFile
	require.NoError(t, yaml.Unmarshal(b, &f), "docker-compose.yml")
	require.NotEmpty(t, f.Services, "docker-compose.yml has no services")
	return f
}

func (f composeFile) service(t *testing.T, name string) service {
	t.Helper()
	s, ok := f.Services[name]
	require.True(t, ok, "docker-compose.yml has no service %q", name)
	return s
}

// TestServices checks that every part of the deployment is there, from the
// images the design names.
func TestServices(t *testing.T) {
	f := loadCompose(t)
	tests := []struct {
		service string
		// repo is the image repository, empty for a service built here.
		repo string
		// tagSuffix is what the image tag must end with.
		tagSuffix string
		ports     []string
	}{
		{service: svcPostgres, repo: "postgres"},
		{service: svcTemporal, repo: "temporalio/auto-setup", ports: []string{"7233:7233"}},
		{service: svcSearchAttributes, repo: "temporalio/admin-tools"},
		{service: svcUI, repo: "temporalio/ui", ports: []string{"8080:8080"}},
		// The management tag has the management plugin (UI on 15672) on.
		{service: svcRabbitMQ, repo: "rabbitmq", tagSuffix: "-management", ports: []string{"5672:5672", "15672:15672"}},
		{service: svcWorker},
	}
	var names []string
	for _, tt := range tests {
		names = append(names, tt.service)
		t.Run(tt.service, func(t *testing.T) {
			s := f.service(t, tt.service)
			if tt.repo == "" {
				require.NotNil(t, s.Build, "built from this repository")
				require.Empty(t, s.Image)
				dockerfile := s.Build.Dockerfile
				if dockerfile == "" {
					dockerfile = "Dockerfile"
				}
				require.FileExists(t, filepath.Join(repoRoot(t), s.Build.Context, dockerfile))
			} else {
				repo, tag, _ := strings.Cut(s.Image, ":")
				require.Equal(t, tt.repo, repo, "image %s", s.Image)
				require.True(t, strings.HasSuffix(tag, tt.tagSuffix), "image %s: tag must end with %q", s.Image, tt.tagSuffix)
			}
			for _, p := range tt.ports {
				require.Contains(t, s.Ports, p)
			}
			for _, v := range s.Volumes {
				src, _, _ := strings.Cut(v, ":")
				if src != "" && !strings.ContainsAny(src[:1], "./~$") {
					require.Contains(t, f.Volumes, src, "named volume %q is not declared", src)
				}
			}
		})
	}
	for name := range f.Services {
		require.Contains(t, names, name, "service %q is not checked by this test", name)
	}
	ui := f.service(t, svcUI)
	require.Equal(t, "temporal:7233", ui.Environment["TEMPORAL_ADDRESS"], "the UI reaches the Temporal frontend")
}

var versionTag = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*([.-][A-Za-z0-9.-]+)?$`)

// TestImagesPinned checks that every image names a version, so that a
// `docker compose pull` never changes what runs, and that the Temporal
// images agree with each other and with the pinned Temporal CLI whose dev
// server the tests use.
func TestImagesPinned(t *testing.T) {
	f := loadCompose(t)
	for name, s := range f.Services {
		if s.Image == "" {
			continue
		}
		_, tag, ok := strings.Cut(s.Image, ":")
		require.True(t, ok, "%s: image %s has no tag", name, s.Image)
		require.NotEqual(t, "latest", tag, "%s: image %s", name, s.Image)
		require.Regexp(t, versionTag, tag, "%s: image %s is not pinned to a version", name, s.Image)
	}

	server := imageTag(f.service(t, svcTemporal).Image)
	admin := imageTag(f.service(t, svcSearchAttributes).Image)
	require.True(t, admin == server || strings.HasPrefix(admin, server+"-"),
		"admin-tools %s is not the release of the server %s", admin, server)

	t.Run("same as the dev server of the tests", func(t *testing.T) {
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
		require.Equal(t, m[2], imageTag(f.service(t, svcUI).Image), "temporalio/ui")
	})
}

func imageTag(image string) string {
	_, tag, _ := strings.Cut(image, ":")
	return tag
}

// TestHealthChecks checks that every long-running service the others wait
// for has a health check Compose can run.
func TestHealthChecks(t *testing.T) {
	f := loadCompose(t)
	for _, name := range []string{svcPostgres, svcTemporal, svcRabbitMQ, svcWorker} {
		t.Run(name, func(t *testing.T) {
			hc := f.service(t, name).Healthcheck
			require.NotNil(t, hc, "no healthcheck")
			require.False(t, hc.Disable)
			require.GreaterOrEqual(t, len(hc.Test), 2, "healthcheck test %q", hc.Test)
			require.Contains(t, []string{"CMD", "CMD-SHELL"}, hc.Test[0], "healthcheck test %q", hc.Test)
			for field, v := range map[string]string{"interval": hc.Interval, "timeout": hc.Timeout, "start_period": hc.StartPeriod} {
				if v == "" {
					continue
				}
				d, err := time.ParseDuration(v)
				require.NoError(t, err, field)
				require.Positive(t, d, field)
			}
			require.Positive(t, hc.Retries)
		})
	}
	// Healthy must mean usable: the Temporal server is only usable once
	// auto-setup has registered the namespace the others use.
	temporal := f.service(t, svcTemporal)
	require.Equal(t, []string{"CMD", "temporal", "operator", "namespace", "describe"}, []string(temporal.Healthcheck.Test[:5]))
	require.Equal(t, temporal.Environment["DEFAULT_NAMESPACE"], flagValue(temporal.Healthcheck.Test, "--namespace"))
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

// TestStartOrder checks that every service waits for what it needs to be
// ready, not merely started: the worker starts after PostgreSQL, RabbitMQ
// and Temporal are healthy and the search attributes exist.
func TestStartOrder(t *testing.T) {
	f := loadCompose(t)
	want := map[string]map[string]string{
		svcPostgres:         nil,
		svcRabbitMQ:         nil,
		svcTemporal:         {svcPostgres: healthy},
		svcSearchAttributes: {svcTemporal: healthy},
		svcUI:               {svcTemporal: healthy},
		svcWorker: {
			svcPostgres:         healthy,
			svcRabbitMQ:         healthy,
			svcTemporal:         healthy,
			svcSearchAttributes: completed,
		},
	}
	for name, deps := range want {
		t.Run(name, func(t *testing.T) {
			got := map[string]string{}
			for dep, d := range f.service(t, name).DependsOn {
				got[dep] = d.Condition
			}
			if deps == nil {
				deps = map[string]string{}
			}
			require.Equal(t, deps, got)
		})
	}
	// Whatever the expectations above say, a condition must be one the
	// dependency can meet.
	for name, s := range f.Services {
		for dep, d := range s.DependsOn {
			target, ok := f.Services[dep]
			require.True(t, ok, "%s depends on unknown service %s", name, dep)
			switch d.Condition {
			case healthy:
				require.NotNil(t, target.Healthcheck, "%s waits for %s to be healthy, which has no healthcheck", name, dep)
			case completed:
				// A one-shot that restarts never completes, and a failed
				// first run fails the dependant at once, so no restart.
				require.Contains(t, []string{"", "no"}, target.Restart, "%s waits for %s to complete", name, dep)
			}
		}
	}
}

// workerVar is one setting of the worker, as `worker --help` prints it.
type workerVar struct {
	Flag, Env, Default string
}

var workerBuild struct {
	once sync.Once
	path string
	err  error
}

// workerBinary builds ./worker once per test binary.
func workerBinary(t *testing.T) string {
	t.Helper()
	workerBuild.once.Do(func() {
		workerBuild.path = filepath.Join(binDir, "worker")
		cmd := exec.Command("go", "build", "-o", workerBuild.path, "./worker")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			workerBuild.err = fmt.Errorf("go build ./worker: %v\n%s", err, out)
		}
	})
	require.NoError(t, workerBuild.err)
	return workerBuild.path
}

var (
	helpFlag    = regexp.MustCompile(`^  -([a-z0-9-]+)`)
	helpEnv     = regexp.MustCompile(`\(env ([A-Z0-9_]+)\)`)
	helpDefault = regexp.MustCompile(`\(default ("(?:[^"\\]|\\.)*")\)`)
)

// workerVars runs `worker --help` in an empty environment, so that the
// defaults printed are the code's, and reads its flag table.
func workerVars(t *testing.T) map[string]workerVar {
	t.Helper()
	cmd := exec.Command(workerBinary(t), "--help")
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
	require.Contains(t, vars, "TEMPORAL_ADDRESS", "worker --help:\n%s", out)
	require.Equal(t, "temporal-address", vars["TEMPORAL_ADDRESS"].Flag)
	return vars
}

// deployedVars are the settings the deployment must set explicitly besides
// those whose default only works on a developer's machine (needsValue).
var deployedVars = []string{
	"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "AMQP_URL",
	"LEDGER_DSN", "INVENTORY_DSN", "ORDERS_DSN", "METRICS_ADDR",
}

// needsValue reports whether a default points at the local machine (a
// loopback address, a file in the working directory), which in a container
// is the container itself.
func needsValue(v workerVar) bool {
	d := v.Default
	return strings.Contains(d, "127.0.0.1") || strings.Contains(d, "localhost") ||
		strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".db")
}

// TestWorkerEnvironment checks the worker's environment against the
// worker's own flag table and against the services it must reach.
func TestWorkerEnvironment(t *testing.T) {
	f := loadCompose(t)
	vars := workerVars(t)
	w := f.service(t, svcWorker)
	env := w.Environment

	t.Run("every variable is one the worker reads", func(t *testing.T) {
		for k := range env {
			require.Contains(t, vars, k, "the worker reads no %s (see `go run ./worker --help`)", k)
		}
	})
	t.Run("every setting whose default is local is set", func(t *testing.T) {
		for _, v := range vars {
			if needsValue(v) {
				require.NotEmpty(t, env[v.Env], "%s (--%s) defaults to %q, which in a container is the container itself", v.Env, v.Flag, v.Default)
			}
		}
		for _, k := range deployedVars {
			require.Contains(t, vars, k, "the worker no longer reads %s", k)
			require.NotEmpty(t, env[k], k)
		}
	})
	t.Run("Temporal", func(t *testing.T) {
		host, port, err := net.SplitHostPort(env["TEMPORAL_ADDRESS"])
		require.NoError(t, err)
		require.Equal(t, svcTemporal, host)
		require.Equal(t, "7233", port)
		ns := env["TEMPORAL_NAMESPACE"]
		require.Equal(t, f.service(t, svcTemporal).Environment["DEFAULT_NAMESPACE"], ns, "the namespace auto-setup registers")
		require.Equal(t, f.service(t, svcSearchAttributes).Environment["TEMPORAL_NAMESPACE"], ns, "the namespace the search attributes go to")
	})
	t.Run("RabbitMQ", func(t *testing.T) {
		u, err := url.Parse(env["AMQP_URL"])
		require.NoError(t, err)
		require.Equal(t, "amqp", u.Scheme)
		require.Equal(t, svcRabbitMQ, u.Hostname())
		require.Contains(t, []string{"", "5672"}, u.Port())
		rmq := f.service(t, svcRabbitMQ).Environment
		require.Equal(t, rmq["RABBITMQ_DEFAULT_USER"], u.User.Username())
		pass, _ := u.User.Password()
		require.Equal(t, rmq["RABBITMQ_DEFAULT_PASS"], pass)
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		pg := f.service(t, svcPostgres).Environment
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
		require.Contains(t, w.Ports, port+":"+port)
		hc, err := url.Parse(flagValue(w.Healthcheck.Test, "--url"))
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
		if w.StopGracePeriod != "" {
			stop, err = time.ParseDuration(w.StopGracePeriod)
			require.NoError(t, err)
		}
		require.Greater(t, stop, g, "stop_grace_period must outlast SHUTDOWN_GRACE, or running activities are killed")
	})
}

// TestWorkerHealthcheck runs the worker's healthcheck command, as the
// compose file writes it, against stand-ins for the worker's /healthz.
func TestWorkerHealthcheck(t *testing.T) {
	f := loadCompose(t)
	test := f.service(t, svcWorker).Healthcheck.Test
	require.Len(t, test, 5)
	require.Equal(t, "CMD", test[0], "the image has no shell")
	require.Equal(t, dockerfileOf(t).entrypoint, test[1], "the image's binary")
	require.Equal(t, []string{"healthcheck", "--url"}, []string(test[2:4]))
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
			cmd := exec.Command(workerBinary(t), test[2], test[3], u.String())
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

// dockerfile is what the tests read from the Dockerfile.
type dockerfile struct {
	// froms are the FROM lines: image and stage name.
	froms [][2]string
	runs  []string
	// copies are the COPY instructions' arguments.
	copies     [][]string
	entrypoint string
	expose     []string
}

func dockerfileOf(t *testing.T) dockerfile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	require.NoError(t, err)
	var d dockerfile
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, args, _ := strings.Cut(line, " ")
		fields := strings.Fields(args)
		switch strings.ToUpper(instr) {
		case "FROM":
			stage := ""
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				stage = fields[2]
			}
			d.froms = append(d.froms, [2]string{fields[0], stage})
		case "RUN":
			d.runs = append(d.runs, args)
		case "COPY":
			d.copies = append(d.copies, fields)
		case "ENTRYPOINT":
			// The exec form is a JSON array, which YAML reads too.
			var argv []string
			require.NoError(t, yaml.Unmarshal([]byte(args), &argv), "ENTRYPOINT must be the exec form: %s", args)
			require.Len(t, argv, 1, "ENTRYPOINT %s", args)
			d.entrypoint = argv[0]
		case "EXPOSE":
			d.expose = append(d.expose, fields...)
		}
	}
	return d
}

// TestDockerfile checks that the image builds ./worker as a static binary
// with go.mod's Go version and runs it.
func TestDockerfile(t *testing.T) {
	d := dockerfileOf(t)
	require.GreaterOrEqual(t, len(d.froms), 2, "a build stage and a runtime stage")

	gomod, err := os.ReadFile(filepath.Join(repoRoot(t), "go.mod"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^go ([0-9.]+)\s*$`).FindSubmatch(gomod)
	require.NotNil(t, m, "go.mod has no go line")
	goVersion := string(m[1])

	builder, stage := d.froms[0][0], d.froms[0][1]
	repo, tag, _ := strings.Cut(builder, ":")
	require.Equal(t, "golang", repo, "builder image")
	require.True(t, tag == goVersion || strings.HasPrefix(tag, goVersion+"-"),
		"builder %s: go.mod wants Go %s; another version builds with a different toolchain or downloads one", builder, goVersion)
	require.NotEmpty(t, stage, "the build stage needs a name for COPY --from")

	var buildCmd string
	for _, r := range d.runs {
		if strings.Contains(r, "go build") {
			buildCmd = r
		}
	}
	require.NotEmpty(t, buildCmd, "no RUN go build")
	require.Contains(t, buildCmd, "./worker")
	require.Contains(t, buildCmd, "CGO_ENABLED=0", "the runtime image has no C library")
	out := flagValue(strings.Fields(buildCmd), "-o")
	require.NotEmpty(t, out, "go build -o")

	want := []string{"--from=" + stage, out, d.entrypoint}
	require.True(t, slices.ContainsFunc(d.copies, func(c []string) bool { return slices.Equal(c, want) }),
		"no COPY %s in %v", strings.Join(want, " "), d.copies)

	runtime := d.froms[len(d.froms)-1][0]
	rtag := imageTag(runtime)
	require.True(t, strings.Contains(runtime, "@sha256:") || (rtag != "" && rtag != "latest"), "runtime image %s is not pinned", runtime)

	f := loadCompose(t)
	_, port, err := net.SplitHostPort(f.service(t, svcWorker).Environment["METRICS_ADDR"])
	require.NoError(t, err)
	require.Contains(t, d.expose, port)
}

// TestSearchAttributes checks that the one-shot setup registers exactly
// the search attributes the sagas upsert, and runs its script under /bin/sh
// with a stand-in `temporal` command.
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

	f := loadCompose(t)
	s := f.service(t, svcSearchAttributes)
	require.Equal(t, []string{"/bin/sh", "-c"}, []string(s.Entrypoint))
	require.Len(t, s.Command, 1, "one script")
	script, err := uninterpolate(s.Command[0])
	require.NoError(t, err)

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
			for k, v := range s.Environment {
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
					require.Equal(t, s.Environment["TEMPORAL_NAMESPACE"], flagValue(args, "--namespace"), line)
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

// uninterpolate turns a Compose string into what the container receives:
// `$$` is a literal `$`. Any other `$NAME` or `${...}` would be replaced by
// the variable of the shell running `docker compose`, which a script meant
// for the container never wants.
func uninterpolate(s string) (string, error) {
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] != '$' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		if i+1 < len(s) && (s[i+1] == '{' || s[i+1] == '_' || s[i+1] >= 'A' && s[i+1] <= 'Z' || s[i+1] >= 'a' && s[i+1] <= 'z') {
			return "", fmt.Errorf("compose would interpolate %q at offset %d: write $$ for the container's shell", s[i:min(len(s), i+12)], i)
		}
		b.WriteByte('$')
	}
	return b.String(), nil
}

func TestUninterpolate(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: `echo "$$attr"`, want: `echo "$attr"`},
		{in: `n=$$((n + 1))`, want: `n=$((n + 1))`},
		{in: `price 5$`, want: `price 5$`},
		{in: `echo $attr`, wantErr: true},
		{in: `echo ${attr}`, wantErr: true},
	}
	for _, tt := range tests {
		got, err := uninterpolate(tt.in)
		if tt.wantErr {
			require.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got)
	}
}
