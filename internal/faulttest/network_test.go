//go:build faults

package faulttest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/internal/systemtest"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
	"github.com/sagaflow/sagaflow/internal/testenv"
)

// Ports of the TCP proxies between the worker and the broker and Temporal.
const (
	amqpProxyPort     = 27610
	temporalProxyPort = 27611
)

// The bounds the network test gives the worker, and so the time within
// which it must notice a half-open connection: AMQP closes a connection
// silent for 3 heartbeats, gRPC one whose keepalive ping goes unanswered
// for half the keepalive time after the time (worker/config.go).
const (
	netHeartbeat      = 2 * time.Second
	netKeepAlive      = 10 * time.Second
	amqpNoticeBound   = 3 * netHeartbeat
	grpcNoticeBound   = netKeepAlive + netKeepAlive/2
	noticeSlack       = 10 * time.Second // a loaded machine's scheduling, the redial's backoff
	addedLatency      = 200              // ms
	latencyJitter     = 50               // ms
	resetCutDuration  = 3 * time.Second
	latencyMinToCheck = (addedLatency - latencyJitter) * time.Millisecond
)

// netProxies are the TCP proxies (Shopify's toxiproxy, run in the test)
// through which every connection of the worker to the broker and to
// Temporal goes; the test's own connections go direct.
type netProxies struct {
	t        *testing.T
	amqp     *toxiproxy.Proxy
	temporal *toxiproxy.Proxy

	mu       sync.Mutex
	accepted map[string]int // client connections accepted, by proxy name
}

// startNetProxies starts the proxies in front of the broker and of the
// shared Temporal server, and stops them when the test ends.
func startNetProxies(t *testing.T) *netProxies {
	p := &netProxies{t: t, accepted: map[string]int{}}
	// toxiproxy logs each accepted client: the count of them tells when a
	// worker dialled again.
	logger := zerolog.New(p).Level(zerolog.InfoLevel)
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), logger)
	u, err := url.Parse(testenv.AMQPURL(t))
	require.NoError(t, err)
	broker := u.Host
	if u.Port() == "" {
		broker = net.JoinHostPort(u.Hostname(), "5672")
	}
	start := func(name string, port int, upstream string) *toxiproxy.Proxy {
		px := toxiproxy.NewProxy(srv, name, fmt.Sprintf("127.0.0.1:%d", port), upstream)
		require.NoError(t, px.Start(), "proxy %s on port %d", name, port)
		t.Cleanup(px.Stop)
		return px
	}
	p.amqp = start("amqp", amqpProxyPort, broker)
	p.temporal = start("temporal", temporalProxyPort, temporaltest.Server(t).FrontendHostPort())
	return p
}

// Write takes toxiproxy's JSON log lines.
func (p *netProxies) Write(b []byte) (int, error) {
	var line struct {
		Name    string `json:"name"`
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &line) == nil && line.Message == "Accepted client" {
		p.mu.Lock()
		p.accepted[line.Name]++
		p.mu.Unlock()
	}
	return len(b), nil
}

func (p *netProxies) acceptedBy(px *toxiproxy.Proxy) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted[px.Name]
}

// route is systemtest.Options.WorkerNetwork: the worker reaches both
// through the proxies.
func (p *netProxies) route(amqpURL, temporalAddress string) (string, string) {
	u, err := url.Parse(amqpURL)
	require.NoError(p.t, err)
	u.Host = p.amqp.Listen
	return u.String(), p.temporal.Listen
}

// addToxic adds a toxic on both directions of both proxies.
func (p *netProxies) addToxic(name, typ string, attrs map[string]any) {
	for _, px := range []*toxiproxy.Proxy{p.amqp, p.temporal} {
		for _, stream := range []string{"upstream", "downstream"} {
			body, err := json.Marshal(map[string]any{"name": name + "_" + stream, "type": typ, "stream": stream, "toxicity": 1.0, "attributes": attrs})
			require.NoError(p.t, err)
			_, err = px.Toxics.AddToxicJson(strings.NewReader(string(body)))
			require.NoError(p.t, err, "toxic %s on %s", name, px.Name)
		}
	}
}

func (p *netProxies) removeToxic(name string) {
	for _, px := range []*toxiproxy.Proxy{p.amqp, p.temporal} {
		for _, stream := range []string{"upstream", "downstream"} {
			require.NoError(p.t, px.Toxics.RemoveToxic(context.Background(), name+"_"+stream))
		}
	}
}

// amqpRoundTrip times the broker's answer to an AMQP protocol header sent
// through the proxy: the connection.start frame.
func (p *netProxies) amqpRoundTrip() time.Duration {
	c, err := net.DialTimeout("tcp", p.amqp.Listen, 5*time.Second)
	require.NoError(p.t, err)
	defer c.Close()
	require.NoError(p.t, c.SetDeadline(time.Now().Add(10*time.Second)))
	start := time.Now()
	_, err = c.Write([]byte("AMQP\x00\x00\x09\x01"))
	require.NoError(p.t, err)
	_, err = bufio.NewReader(c).ReadByte()
	require.NoError(p.t, err, "the broker answers through the proxy")
	return time.Since(start)
}

// awaitRedial waits until both proxies accepted a new connection from the
// worker since the counts before, and returns how long each took; it
// fails the test past each one's bound.
func (p *netProxies) awaitRedial(what string, amqpBefore, temporalBefore int, since time.Time, amqpBound, temporalBound time.Duration) (amqpAfter, temporalAfter time.Duration) {
	for amqpAfter == 0 || temporalAfter == 0 {
		elapsed := time.Since(since)
		if amqpAfter == 0 && p.acceptedBy(p.amqp) > amqpBefore {
			amqpAfter = elapsed
		}
		if temporalAfter == 0 && p.acceptedBy(p.temporal) > temporalBefore {
			temporalAfter = elapsed
		}
		require.False(p.t, amqpAfter == 0 && elapsed > amqpBound, "%s: the worker did not dial the broker again within %s", what, amqpBound)
		require.False(p.t, temporalAfter == 0 && elapsed > temporalBound, "%s: the worker did not dial Temporal again within %s", what, temporalBound)
		time.Sleep(100 * time.Millisecond)
	}
	return amqpAfter, temporalAfter
}

// TestBadNetwork puts the worker behind TCP proxies to the broker and to
// Temporal and degrades its network mid-load: 200ms added latency with
// jitter, a cut that leaves the connections half-open (the proxy stops
// forwarding and closes nothing), and a cut that resets them. The worker
// notices a half-open connection by its AMQP heartbeat and its gRPC
// keepalive within their bounds, dials again, and every saga ends.
func TestBadNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("fault suite: starts worker processes and runs hundreds of sagas")
	}
	px := startNetProxies(t)
	var report struct {
		latency                      time.Duration
		halfOpenAMQP, halfOpenGRPC   time.Duration
		resetAMQP, resetGRPC         time.Duration
		reconnectsBefore, reconnects float64
	}
	runScenario(t, scenario{
		system: systemtest.Options{
			WorkerNetwork: px.route,
			WorkerEnv:     []string{"AMQP_HEARTBEAT=" + netHeartbeat.String(), "TEMPORAL_KEEPALIVE=" + netKeepAlive.String()},
		},
		hooks: func(f *fixture) []hook {
			return []hook{
				{name: "200ms latency with jitter", after: 0.1, run: func() {
					px.addToxic("latency", "latency", map[string]any{"latency": addedLatency / 2, "jitter": latencyJitter / 2})
					report.latency = px.amqpRoundTrip()
					require.GreaterOrEqual(f.t, report.latency, latencyMinToCheck, "a round trip through the proxy takes the added latency")
					f.count++
				}},
				{name: "latency lifted", after: 0.3, run: func() { px.removeToxic("latency") }},
				{name: "half-open cut", after: 0.4, run: func() {
					report.reconnectsBefore = f.checker.workerCounter("sagaflow_amqp_reconnects_total")
					a, tm := px.acceptedBy(px.amqp), px.acceptedBy(px.temporal)
					start := time.Now()
					// Nothing forwarded, nothing closed: only the peers'
					// own liveness checks can tell.
					px.addToxic("halfopen", "timeout", map[string]any{"timeout": 0})
					report.halfOpenAMQP, report.halfOpenGRPC = px.awaitRedial("half-open cut", a, tm, start,
						amqpNoticeBound+noticeSlack, grpcNoticeBound+noticeSlack)
					px.removeToxic("halfopen")
					f.count++
				}},
				{name: "cut with connection resets", after: 0.6, run: func() {
					a, tm := px.acceptedBy(px.amqp), px.acceptedBy(px.temporal)
					start := time.Now()
					px.addToxic("reset", "reset_peer", map[string]any{"timeout": 0})
					report.resetAMQP, report.resetGRPC = px.awaitRedial("reset cut", a, tm, start, 30*time.Second, 30*time.Second)
					// Keep refusing for a while: every dial meets a reset.
					time.Sleep(max(0, resetCutDuration-time.Since(start)))
					px.removeToxic("reset")
					f.count++
				}},
			}
		},
		describe: func(f *fixture) string {
			require.Equal(f.t, 3, f.count, "latency, half-open cut and reset cut injected")
			report.reconnects = f.checker.metrics["sagaflow_amqp_reconnects_total"] - report.reconnectsBefore
			require.GreaterOrEqual(f.t, report.reconnects, 2.0, "the worker reconnected to the broker after each cut")
			return fmt.Sprintf("latency (+%s round trip), half-open cut (noticed: AMQP %s of a %s bound, gRPC %s of a %s bound, each checked with %s of slack), reset cut (redial AMQP %s, gRPC %s); %d AMQP reconnects",
				report.latency.Round(time.Millisecond), report.halfOpenAMQP.Round(100*time.Millisecond), amqpNoticeBound,
				report.halfOpenGRPC.Round(100*time.Millisecond), grpcNoticeBound, noticeSlack,
				report.resetAMQP.Round(100*time.Millisecond), report.resetGRPC.Round(100*time.Millisecond), int(report.reconnects))
		},
	})
}
