// Package testenv finds the external services integration tests need and
// decides, in one place, whether their absence skips a test or fails it:
// when the CI environment variable is set, a missing service fails the run.
package testenv

import (
	"context"
	"net"
	"net/url"
	"os"
	"testing"
	"time"
)

// DefaultAMQPURL is the broker integration tests use when AMQP_URL is unset.
const DefaultAMQPURL = "amqp://guest:guest@127.0.0.1:5672/"

// DefaultPostgresDSN is the database integration tests use when
// POSTGRES_TEST_DSN is unset.
const DefaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// InCI reports whether the tests run in CI, where nothing may be skipped.
func InCI() bool { return os.Getenv("CI") != "" }

// Unavailable skips the test with how-to-provide advice, or fails it in CI.
func Unavailable(t testing.TB, what, howTo string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s is required in CI but unavailable: %s", what, howTo)
	}
	t.Skipf("%s unavailable, skipping: %s", what, howTo)
}

// AMQPURL returns the broker URL for integration tests after checking that
// something listens there.
func AMQPURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("AMQP_URL")
	if u == "" {
		u = DefaultAMQPURL
	}
	if err := reachable(u, "5672"); err != nil {
		Unavailable(t, "RabbitMQ at "+u, "start it with `rabbitmq-server -detached` or `docker compose up -d rabbitmq`, or set AMQP_URL ("+err.Error()+")")
	}
	return u
}

// PostgresDSN returns the PostgreSQL DSN for integration tests after checking
// that something listens there.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("POSTGRES_TEST_DSN")
	if dsn == "" {
		dsn = DefaultPostgresDSN
	}
	if err := reachable(dsn, "5432"); err != nil {
		Unavailable(t, "PostgreSQL at "+dsn, "start PostgreSQL or set POSTGRES_TEST_DSN ("+err.Error()+")")
	}
	return dsn
}

func reachable(rawURL, defaultPort string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), defaultPort)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	return conn.Close()
}
