package main

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/codec"
	"github.com/sagaflow/sagaflow/contract"
)

// config holds the global settings. The names of the flags and of the
// environment variables they default to are the worker's, so one
// environment configures both.
type config struct {
	// Address is the Temporal frontend host:port (TEMPORAL_ADDRESS).
	Address string
	// Namespace is the Temporal namespace (TEMPORAL_NAMESPACE).
	Namespace string
	// TLSCert and TLSKey are the client certificate and key for mTLS to
	// Temporal (TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY).
	TLSCert, TLSKey string
	// TLSCA is the CA bundle of the Temporal server; setting it turns TLS on
	// (TEMPORAL_TLS_CA).
	TLSCA string
	// TLSServerName is the server name to verify (TEMPORAL_TLS_SERVER_NAME).
	TLSServerName string
	// TaskQueue is where sagas are started (TEMPORAL_TASK_QUEUE).
	TaskQueue string
	// UIURL is the Temporal Web UI base URL for links (TEMPORAL_UI_URL).
	UIURL string
	// Codec is the key file and compression of the payload codec
	// (SAGAFLOW_CODEC_KEYS, SAGAFLOW_CODEC_COMPRESS); no key file leaves
	// payloads unencrypted.
	Codec codec.Config

	// AMQPURL is the RabbitMQ URL or comma-separated node URLs (AMQP_URL)
	// and AMQPTLS its certificates.
	AMQPURL string
	AMQPTLS amqp.TLSConfig
	// AMQPQueueType and AMQPDeliveryLimit are the queue settings
	// (AMQP_QUEUE_TYPE, AMQP_DELIVERY_LIMIT), read as the worker reads
	// them so that one environment configures both.
	AMQPQueueType     string
	AMQPDeliveryLimit int
	// Exchange is the event exchange order.placed is published to.
	Exchange string
	// LedgerQueue, InventoryQueue and OrdersQueue are the services' command
	// and query queues.
	LedgerQueue, InventoryQueue, OrdersQueue string

	// Timeout bounds each command, including --wait.
	Timeout time.Duration
	// DialTimeout bounds connecting to Temporal and RabbitMQ.
	DialTimeout time.Duration
	// JSON prints results as JSON.
	JSON bool
}

// bind declares the global flags on root with defaults from getenv.
func (c *config) bind(root *cobra.Command, getenv func(string) string) {
	fs := root.PersistentFlags()
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	str := func(p *string, name, alias, envName, def, usage string) {
		fs.StringVar(p, name, env(envName, def), usage+" (env "+envName+")")
		if alias != "" {
			// The worker's spelling of the same setting.
			fs.StringVar(p, alias, env(envName, def), usage)
			_ = fs.MarkHidden(alias)
		}
	}
	str(&c.Address, "address", "temporal-address", "TEMPORAL_ADDRESS", "127.0.0.1:7233", "Temporal frontend host:port")
	str(&c.Namespace, "namespace", "temporal-namespace", "TEMPORAL_NAMESPACE", "default", "Temporal namespace")
	str(&c.TLSCert, "tls-cert", "temporal-tls-cert", "TEMPORAL_TLS_CERT", "", "client certificate (PEM) for mTLS to Temporal; needs --tls-key")
	str(&c.TLSKey, "tls-key", "temporal-tls-key", "TEMPORAL_TLS_KEY", "", "client private key (PEM) for mTLS to Temporal")
	str(&c.TLSCA, "tls-ca", "temporal-tls-ca", "TEMPORAL_TLS_CA", "", "CA bundle (PEM) of the Temporal server; setting it turns TLS on")
	str(&c.TLSServerName, "tls-server-name", "temporal-tls-server-name", "TEMPORAL_TLS_SERVER_NAME", "", "server name to verify in the Temporal certificate (default: the address host)")
	str(&c.TaskQueue, "task-queue", "", "TEMPORAL_TASK_QUEUE", contract.TaskQueue, "task queue sagas are started on")
	str(&c.UIURL, "ui-url", "", "TEMPORAL_UI_URL", "http://localhost:8233", "Temporal Web UI base URL, for links")
	str(&c.Codec.KeysFile, "codec-keys", "", codec.EnvKeys, "", "key file of the payload codec: one id:base64key (32 bytes) per line, the first encrypts, all decrypt; empty: payloads unencrypted")
	compress, _ := strconv.ParseBool(env(codec.EnvCompress, "false"))
	fs.BoolVar(&c.Codec.Compress, "codec-compress", compress, "compress payloads before encrypting them (env "+codec.EnvCompress+")")
	str(&c.AMQPURL, "amqp-url", "", amqp.EnvURL, amqp.DefaultURL, "RabbitMQ URL, amqp:// or amqps://, or a comma-separated list of the URLs of a cluster's nodes, tried in turn")
	str(&c.AMQPQueueType, "amqp-queue-type", "", amqp.EnvQueueType, amqp.QueueQuorum, "type of the durable queues: quorum or classic, as the worker's")
	deliveryLimit, err := strconv.Atoi(env(amqp.EnvDeliveryLimit, strconv.Itoa(amqp.DefaultDeliveryLimit)))
	if err != nil {
		deliveryLimit = -1 // reported by Validate
	}
	fs.IntVar(&c.AMQPDeliveryLimit, "amqp-delivery-limit", deliveryLimit, "quorum queues: deliveries without an ack before the broker dead-letters a message, as the worker's (env "+amqp.EnvDeliveryLimit+")")
	str(&c.AMQPTLS.CAFile, "amqp-tls-ca", "", "AMQP_TLS_CA", "", "CA bundle (PEM) for amqps://")
	str(&c.AMQPTLS.CertFile, "amqp-tls-cert", "", "AMQP_TLS_CERT", "", "client certificate (PEM) for amqps://")
	str(&c.AMQPTLS.KeyFile, "amqp-tls-key", "", "AMQP_TLS_KEY", "", "client private key (PEM) for amqps://")
	str(&c.Exchange, "exchange", "", "AMQP_EXCHANGE", amqp.DefaultExchange, "event exchange order.placed is published to")
	str(&c.LedgerQueue, "ledger-queue", "", "LEDGER_QUEUE", contract.LedgerQueue, "the ledger's command queue")
	str(&c.InventoryQueue, "inventory-queue", "", "INVENTORY_QUEUE", contract.InventoryQueue, "the inventory's command queue")
	str(&c.OrdersQueue, "orders-queue", "", "ORDERS_QUEUE", contract.OrdersQueryQueue, "the orders read model's query queue")
	timeout, err := time.ParseDuration(env("STARTER_TIMEOUT", "30s"))
	if err != nil {
		timeout = 30 * time.Second
	}
	fs.DurationVar(&c.Timeout, "timeout", timeout, "time limit of a command, including --wait (env STARTER_TIMEOUT)")
	fs.DurationVar(&c.DialTimeout, "dial-timeout", 5*time.Second, "time limit for connecting to Temporal and RabbitMQ")
	fs.BoolVar(&c.JSON, "json", false, "print results as JSON")
}

// Validate reports every problem of the settings at once.
func (c config) Validate() error {
	var errs []error
	if c.Address == "" {
		errs = append(errs, errors.New("--address must not be empty"))
	}
	if c.Namespace == "" {
		errs = append(errs, errors.New("--namespace must not be empty"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	if c.TaskQueue == "" {
		errs = append(errs, errors.New("--task-queue must not be empty"))
	}
	if u, err := url.Parse(c.UIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		errs = append(errs, fmt.Errorf("--ui-url %q: want an http:// or https:// URL", c.UIURL))
	}
	if err := (amqp.Config{URL: c.AMQPURL, TLS: c.AMQPTLS, QueueType: c.AMQPQueueType, DeliveryLimit: c.AMQPDeliveryLimit}).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--amqp-url: %w", err))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout %s: must be positive", c.Timeout))
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--dial-timeout %s: must be positive", c.DialTimeout))
	}
	for _, q := range []struct{ flag, v string }{
		{"--exchange", c.Exchange}, {"--ledger-queue", c.LedgerQueue},
		{"--inventory-queue", c.InventoryQueue}, {"--orders-queue", c.OrdersQueue},
	} {
		if q.v == "" {
			errs = append(errs, fmt.Errorf("%s must not be empty", q.flag))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return &usageError{err}
	}
	return nil
}

// workflowURL is the Web UI page of a workflow.
func (c config) workflowURL(workflowID string) string {
	return strings.TrimRight(c.UIURL, "/") + "/namespaces/" + url.PathEscape(c.Namespace) + "/workflows/" + url.PathEscape(workflowID)
}
