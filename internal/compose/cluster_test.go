package compose_test

import (
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/amqp"
)

// TestClusterProfile loads docker-compose.yml with the cluster profile on,
// as `docker compose --profile cluster` does, and checks that it is a
// RabbitMQ cluster the worker uses whole: three nodes of one image that
// find each other and share a cookie, each with its own data, and a worker
// whose AMQP_URL names every node and whose other settings are `worker`'s.
func TestClusterProfile(t *testing.T) {
	p := project(t, "cluster")
	for _, name := range append([]string{svcClusterWorker}, svcClusterNodes...) {
		s := service(t, p, name)
		require.Equal(t, []string{"cluster"}, s.Profiles, "%s runs only in the cluster profile", name)
		require.Contains(t, p.ServiceNames(), name, "the cluster profile enables %s", name)
	}
	// `docker compose up` turns no profile on; a profile no service has
	// stands for that.
	plain := project(t, "none")
	for _, name := range append([]string{svcClusterWorker}, svcClusterNodes...) {
		require.NotContains(t, plain.ServiceNames(), name, "`docker compose up` without the profile starts %s", name)
	}

	cfg, ok := p.Configs["rabbitmq-cluster"]
	require.True(t, ok, "configs.rabbitmq-cluster")
	conf := parseRabbitConf(cfg.Content)
	require.Equal(t, "classic_config", conf["cluster_formation.peer_discovery_backend"])

	var nodeNames []string
	first := service(t, p, svcClusterNodes[0])
	firstEnv := first.Environment.ToMapping()
	volumes := map[string]bool{}
	for i, name := range svcClusterNodes {
		s := service(t, p, name)
		require.Equal(t, first.Image, s.Image, "one RabbitMQ release across the cluster")
		require.True(t, strings.HasPrefix(imageTag(s.Image), "3.10"), "image %s: the release of the local rabbitmq-server the tests cluster", s.Image)
		require.Equal(t, name, s.Hostname, "the node name rabbit@<hostname> must not change with the container")
		env := s.Environment.ToMapping()
		require.NotEmpty(t, env["RABBITMQ_ERLANG_COOKIE"], name)
		require.Equal(t, firstEnv, env, "%s: the same cookie and user as %s", name, first.Name)

		node := "rabbit@" + s.Hostname
		nodeNames = append(nodeNames, node)
		require.Equal(t, node, conf["cluster_formation.classic_config.nodes."+strconv.Itoa(i+1)], "peer discovery lists %s", node)
		require.Len(t, s.Configs, 1, name)
		require.Equal(t, "rabbitmq-cluster", s.Configs[0].Source, name)
		require.Regexp(t, `^/etc/rabbitmq/conf\.d/[^/]+\.conf$`, s.Configs[0].Target, "%s: RabbitMQ reads conf.d", name)

		var data string
		for _, v := range s.Volumes {
			if v.Target == "/var/lib/rabbitmq" {
				data = v.Source
			}
		}
		require.NotEmpty(t, data, "%s keeps its data in a volume", name)
		require.False(t, volumes[data], "%s shares volume %s with another node", name, data)
		volumes[data] = true
	}

	t.Run("worker", func(t *testing.T) {
		w := service(t, p, svcClusterWorker)
		env := w.Environment.ToMapping()
		var hosts []string
		// As the worker reads it.
		list, err := amqp.ParseURLs(env["AMQP_URL"])
		require.NoError(t, err)
		for _, raw := range list {
			u, err := url.Parse(raw)
			require.NoError(t, err)
			require.Equal(t, "amqp", u.Scheme, raw)
			require.Contains(t, []string{"", "5672"}, u.Port(), raw)
			require.Equal(t, firstEnv["RABBITMQ_DEFAULT_USER"], u.User.Username(), raw)
			pass, _ := u.User.Password()
			require.Equal(t, firstEnv["RABBITMQ_DEFAULT_PASS"], pass, raw)
			hosts = append(hosts, u.Hostname())
		}
		require.ElementsMatch(t, svcClusterNodes, hosts, "AMQP_URL names every node once: %s", env["AMQP_URL"])
		for _, n := range svcClusterNodes {
			require.Contains(t, w.DependsOn, n)
		}

		// Everything else is the plain worker's, so the two do not drift.
		plainWorker := service(t, p, svcWorker)
		require.Equal(t, plainWorker.Build, w.Build)
		want := plainWorker.Environment.ToMapping()
		delete(want, "AMQP_URL")
		delete(env, "AMQP_URL")
		require.Equal(t, want, env)
		require.Equal(t, plainWorker.HealthCheck, w.HealthCheck)
		require.Equal(t, plainWorker.StopGracePeriod, w.StopGracePeriod)
		require.Equal(t, plainWorker.Restart, w.Restart)
		require.False(t, slices.Equal(ports(plainWorker), ports(w)), "both workers publish %v", ports(w))
	})
}

var confLine = regexp.MustCompile(`^\s*([A-Za-z0-9_.]+)\s*=\s*(.*?)\s*$`)

// parseRabbitConf reads rabbitmq.conf's `key = value` lines.
func parseRabbitConf(content string) map[string]string {
	conf := map[string]string{}
	for _, line := range strings.Split(content, "\n") {
		if m := confLine.FindStringSubmatch(line); m != nil && !strings.HasPrefix(strings.TrimSpace(line), "#") {
			conf[m[1]] = m[2]
		}
	}
	return conf
}
