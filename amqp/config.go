package amqp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/internal/redact"
)

// EnvURL is the environment variable main reads the broker URL from: one
// URL, or a comma-separated list of the URLs of a cluster's nodes.
const EnvURL = "AMQP_URL"

// EnvQueueType is the environment variable main reads Config.QueueType from.
const EnvQueueType = "AMQP_QUEUE_TYPE"

// EnvDeliveryLimit is the environment variable main reads
// Config.DeliveryLimit from.
const EnvDeliveryLimit = "AMQP_DELIVERY_LIMIT"

// Queue types of Config.QueueType.
const (
	// QueueQuorum is a replicated quorum queue, the default.
	QueueQuorum = "quorum"
	// QueueClassic is a classic queue, for brokers or existing queues that
	// are classic.
	QueueClassic = "classic"
)

// DefaultDeliveryLimit is Config.DeliveryLimit's default: a message
// delivered this many times without an ack (its consumer crashed or lost its
// connection while handling it, again and again) is dead-lettered by the
// broker at the next return.
const DefaultDeliveryLimit = 20

// DefaultURL is the broker URL used when EnvURL is unset: a local RabbitMQ
// with its default account.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// DefaultExchange is the durable topic exchange every event is published to,
// with the event type as routing key: the system's contract.EventsExchange.
const DefaultExchange = contract.EventsExchange

// DefaultDeadLetterExchange is the durable direct exchange dead letters go
// through, routed by the name of the consumer that gave up on them: the
// system's contract.DeadLetterExchange.
const DefaultDeadLetterExchange = contract.DeadLetterExchange

// URLFromEnv returns the broker URL from getenv(EnvURL), or DefaultURL when it
// is empty. It takes getenv as a parameter so that only main reads the
// environment (pass os.Getenv).
func URLFromEnv(getenv func(string) string) string {
	if u := getenv(EnvURL); u != "" {
		return u
	}
	return DefaultURL
}

// ParseURLs splits a comma-separated list of node URLs and parses each one;
// a bad entry is named by its position and its URL, with the password
// hidden. Spaces around entries are ignored.
func ParseURLs(list string) ([]string, error) {
	entries := strings.Split(list, ",")
	urls := make([]string, 0, len(entries))
	var errs []error
	for i, e := range entries {
		e = strings.TrimSpace(e)
		where := fmt.Sprintf("url %d of %d", i+1, len(entries))
		if len(entries) == 1 {
			where = "url"
		}
		if e == "" {
			errs = append(errs, fmt.Errorf("%s is empty", where))
			continue
		}
		if _, err := amqp091.ParseURI(e); err != nil {
			// The parser's message may quote the URL, password included.
			msg := strings.ReplaceAll(err.Error(), strconv.Quote(e), strconv.Quote(redact.URL(e)))
			msg = strings.ReplaceAll(msg, e, redact.URL(e))
			errs = append(errs, fmt.Errorf("%s %s: %s", where, redact.URL(e), msg))
			continue
		}
		urls = append(urls, e)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return urls, nil
}

// RedactURLs returns a comma-separated URL list with every password hidden,
// for logs and error messages.
func RedactURLs(list string) string {
	entries := strings.Split(list, ",")
	for i, e := range entries {
		entries[i] = redact.URL(strings.TrimSpace(e))
	}
	return strings.Join(entries, ",")
}

// TLSConfig names the PEM files used for amqps:// URLs. Peer verification is
// always on; the server name is the URL's host.
type TLSConfig struct {
	// CAFile is the CA bundle that signs the broker certificate. Empty means
	// the system roots.
	CAFile string
	// CertFile is the client certificate for mutual TLS; optional, but it
	// requires KeyFile.
	CertFile string
	// KeyFile is the client certificate's private key; it requires CertFile.
	KeyFile string
}

func (t TLSConfig) isZero() bool { return t == TLSConfig{} }

// Config configures a Conn. The zero value plus a URL is usable: Dial fills in
// the defaults documented on each field.
type Config struct {
	// URL is the broker URL, amqp:// or amqps://, or a comma-separated
	// list of the URLs of a cluster's nodes: Dial tries them in turn, and
	// after a lost connection the Conn starts again from the node after the
	// one it lost. Default DefaultURL.
	URL string
	// TLS configures certificates for amqps:// URLs; when it is set every
	// URL must be amqps:// so that a forgotten "s" does not silently
	// disable TLS.
	TLS TLSConfig
	// QueueType is the type of every durable queue the Conn's consumers
	// declare: QueueQuorum (default) or QueueClassic. A queue that already
	// exists with the other type makes the consumer fail with a
	// *QueueMismatchError rather than change it.
	QueueType string
	// DeliveryLimit is the x-delivery-limit of quorum consumer queues: a
	// message returned to the queue more often than this without an ack is
	// dead-lettered by the broker (x-death reason "delivery_limit") to the
	// consumer's dead-letter queue instead of being delivered again.
	// Classic queues have no delivery limit. Default DefaultDeliveryLimit.
	DeliveryLimit int
	// ConnectionName is shown in the management UI. Default "sagaflow".
	ConnectionName string
	// ReconnectInitial is the first delay before redialling a lost
	// connection; it doubles up to ReconnectMax. Default 100ms.
	ReconnectInitial time.Duration
	// ReconnectMax caps the redial delay. Default 5s.
	ReconnectMax time.Duration
	// Heartbeat is the AMQP heartbeat interval that detects dead peers.
	// Default 10s.
	Heartbeat time.Duration
	// Exchange is the durable topic exchange for events. Default
	// DefaultExchange ("sagas.events").
	Exchange string
	// DeadLetterExchange is the durable direct exchange for dead letters.
	// Default DefaultDeadLetterExchange ("sagas.dlx").
	DeadLetterExchange string
	// Logger is the default logger of the Conn's consumers
	// (ConsumerConfig.Logger). Default slog.Default(), so that nothing
	// they report is silently dropped.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.ConnectionName == "" {
		c.ConnectionName = "sagaflow"
	}
	if c.QueueType == "" {
		c.QueueType = QueueQuorum
	}
	if c.DeliveryLimit == 0 {
		c.DeliveryLimit = DefaultDeliveryLimit
	}
	if c.ReconnectInitial == 0 {
		c.ReconnectInitial = 100 * time.Millisecond
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = 5 * time.Second
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 10 * time.Second
	}
	if c.Exchange == "" {
		c.Exchange = DefaultExchange
	}
	if c.DeadLetterExchange == "" {
		c.DeadLetterExchange = DefaultDeadLetterExchange
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem of the configuration at once. Unset fields
// are checked with their defaults applied.
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	urls, err := ParseURLs(c.URL)
	if err != nil {
		errs = append(errs, err)
	} else if !c.TLS.isZero() {
		for _, u := range urls {
			if uri, _ := amqp091.ParseURI(u); uri.Scheme != "amqps" {
				errs = append(errs, fmt.Errorf("tls: certificate files are set but the url scheme of %s is not amqps", redact.URL(u)))
			}
		}
	}
	switch c.QueueType {
	case QueueQuorum, QueueClassic:
	default:
		errs = append(errs, fmt.Errorf("queue type %q: want %s or %s", c.QueueType, QueueQuorum, QueueClassic))
	}
	if c.DeliveryLimit < 1 {
		errs = append(errs, fmt.Errorf("delivery limit %d is below 1", c.DeliveryLimit))
	}
	if c.TLS.KeyFile != "" && c.TLS.CertFile == "" {
		errs = append(errs, errors.New("tls: key file set without a certificate file"))
	}
	if c.TLS.CertFile != "" && c.TLS.KeyFile == "" {
		errs = append(errs, errors.New("tls: certificate file set without a key file"))
	}
	if c.ReconnectInitial < 0 {
		errs = append(errs, fmt.Errorf("reconnect initial delay %v is negative", c.ReconnectInitial))
	}
	if c.ReconnectMax < c.ReconnectInitial {
		errs = append(errs, fmt.Errorf("reconnect max delay %v is below the initial delay %v", c.ReconnectMax, c.ReconnectInitial))
	}
	if c.Heartbeat < 0 {
		errs = append(errs, fmt.Errorf("heartbeat %v is negative", c.Heartbeat))
	}
	if c.Exchange == c.DeadLetterExchange {
		errs = append(errs, fmt.Errorf("exchange and dead-letter exchange are both %q", c.Exchange))
	}
	return errors.Join(errs...)
}

// clientTLS builds the tls.Config for the amqps:// URL u: peer verification
// on, ServerName from the URL host, TLS 1.2 at least. It returns nil for
// amqp://.
func (c Config) clientTLS(u string) (*tls.Config, error) {
	uri, err := amqp091.ParseURI(u)
	if err != nil {
		return nil, fmt.Errorf("parse url: %w", err)
	}
	if uri.Scheme != "amqps" {
		return nil, nil
	}
	cfg := &tls.Config{
		ServerName: uri.Host,
		MinVersion: tls.VersionTLS12,
	}
	if c.TLS.CAFile != "" {
		pem, err := os.ReadFile(c.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: CA file %s holds no PEM certificate", c.TLS.CAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case c.TLS.CertFile != "" && c.TLS.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: load client certificate %s and key %s: %w", c.TLS.CertFile, c.TLS.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case c.TLS.CertFile != "":
		return nil, errors.New("tls: client certificate file set without a key file")
	case c.TLS.KeyFile != "":
		return nil, errors.New("tls: client key file set without a certificate file")
	}
	return cfg, nil
}
