//go:build faults

package faulttest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/sagaflow/sagaflow/internal/systemtest"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
	"github.com/sagaflow/sagaflow/internal/testenv"
)

// restartPort is the frontend port of TestTemporalRestart's own dev
// server; the HTTP API and metrics take the next two.
const restartPort = 27600

// devServer is a Temporal dev server of one test, on a database file and a
// fixed port, so that it can be killed and started again where it was:
// the shared dev server keeps its state in memory.
type devServer struct {
	t      *testing.T
	path   string
	dbFile string
	port   int
	cmd    *exec.Cmd
	done   chan struct{}
}

// startDevServer starts a dev server on port with its state in a file of
// the test's temporary directory, and stops it when the test ends.
func startDevServer(t *testing.T, port int) *devServer {
	path, ok := temporaltest.CLIPath()
	if !ok {
		testenv.Unavailable(t, "Temporal CLI", "run `make temporal` or set TEMPORAL_CLI")
	}
	d := &devServer{t: t, path: path, dbFile: filepath.Join(t.TempDir(), "temporal.db"), port: port}
	d.start()
	t.Cleanup(func() {
		if d.running() {
			_ = d.cmd.Process.Signal(os.Interrupt)
			select {
			case <-d.done:
			case <-time.After(20 * time.Second):
				d.kill()
			}
		}
	})
	return d
}

// Address is the frontend's host:port.
func (d *devServer) Address() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(d.port)) }

// start runs the server on its file and port and waits until it answers.
func (d *devServer) start() {
	t := d.t
	require.False(t, d.running(), "the dev server is already running")
	args := append([]string{"server", "start-dev", "--headless", "--ip", "127.0.0.1",
		"--port", strconv.Itoa(d.port), "--http-port", strconv.Itoa(d.port + 1), "--metrics-port", strconv.Itoa(d.port + 2),
		"--db-filename", d.dbFile, "--namespace", "default", "--log-level", "warn",
		// Write-ahead log without fsync: what a killed process wrote
		// survives it (only a power loss would not), and the load is
		// not held up by the disk.
		"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=off"}, temporaltest.DevServerArgs()...)
	d.cmd = exec.Command(d.path, args...)
	// The server dies with the test binary, even one killed by its timeout.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logFile, err := os.OpenFile(d.dbFile+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	d.cmd.Stdout, d.cmd.Stderr = logFile, logFile
	require.NoError(t, d.cmd.Start())
	d.done = make(chan struct{})
	go func() {
		_ = d.cmd.Wait()
		_ = logFile.Close()
		close(d.done)
	}()
	c := d.dial()
	defer c.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := c.CheckHealth(ctx, &client.CheckHealthRequest{})
		cancel()
		if err == nil {
			return
		}
		require.True(t, d.running(), "the dev server exited while starting: see %s.log", d.dbFile)
		require.True(t, time.Now().Before(deadline), "the dev server does not answer after 60s: %v", err)
		time.Sleep(200 * time.Millisecond)
	}
}

// dial returns a client of the server that connects lazily: it outlives
// the server's restarts, reconnecting as any client does.
func (d *devServer) dial() client.Client {
	c, err := client.NewLazyClient(client.Options{
		HostPort: d.Address(), Namespace: "default",
		Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
	})
	require.NoError(d.t, err)
	return c
}

// kill ends the server with SIGKILL, as a crash would, and waits for it.
func (d *devServer) kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

func (d *devServer) running() bool {
	if d.done == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// refused reports whether the frontend's port refuses connections.
func (d *devServer) refused() bool {
	c, err := net.DialTimeout("tcp", d.Address(), time.Second)
	if err == nil {
		_ = c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// TestTemporalRestart SIGKILLs the Temporal server mid-load and starts it
// again on the same database file and port. While it is away the replies
// and order.placed events that need it wait in their consumers' delay
// queues (none is acked undelivered nor dead-lettered) and the worker keeps
// running; afterwards every saga ends.
func TestTemporalRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("fault suite: starts a Temporal server and worker processes")
	}
	srv := startDevServer(t, restartPort)
	c := srv.dial()
	t.Cleanup(c.Close)
	var outage struct {
		down           time.Duration
		refused        bool
		replyRetries   int64 // deliveries retried while Temporal was away
		clientFailures int64 // the load's own calls that failed meanwhile
	}
	runScenario(t, scenario{
		system: systemtest.Options{TemporalAddress: srv.Address(), TemporalClient: c},
		hooks: func(f *fixture) []hook {
			return []hook{{name: "SIGKILL of the Temporal server", after: 0.3, run: func() {
				w := f.sys.Workers()[0]
				before := scrape(f.t, w.HTTPAddr)["sagaflow_amqp_retried_unavailable_total"]
				failedBefore := f.l.temporalUnavailable.Load()
				start := time.Now()
				srv.kill()
				outage.refused = srv.refused()
				require.True(f.t, outage.refused, "the frontend port refuses connections once the server is killed")
				// Away until the worker's consumers have retried
				// deliveries that needed Temporal: the SDK's calls give
				// up after their 10s timeout, then the consumer retries.
				deadline := time.Now().Add(45 * time.Second)
				for {
					outage.replyRetries = int64(scrape(f.t, w.HTTPAddr)["sagaflow_amqp_retried_unavailable_total"] - before)
					if outage.replyRetries > 0 {
						break
					}
					require.True(f.t, time.Now().Before(deadline), "no delivery retried for an unavailable Temporal within 45s of the kill")
					time.Sleep(250 * time.Millisecond)
				}
				require.False(f.t, w.Exited(), "the worker keeps running while Temporal is away")
				srv.start()
				outage.down = time.Since(start)
				outage.clientFailures = f.l.temporalUnavailable.Load() - failedBefore
				f.count++
			}}}
		},
		describe: func(f *fixture) string {
			require.Equal(f.t, 1, f.count, "the server was killed and restarted")
			// The worker's counter at the end: retries went on until
			// Temporal took every delivery.
			total := int64(f.checker.metrics["sagaflow_amqp_retried_unavailable_total"])
			require.GreaterOrEqual(f.t, total, outage.replyRetries)
			return fmt.Sprintf("%d SIGKILL + restart of Temporal (down %s, port refused; %d deliveries retried for it, %d client calls failed)",
				f.count, outage.down.Round(time.Second), total, outage.clientFailures)
		},
	})
}
