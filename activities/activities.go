// Package activities holds the Temporal activities of the sagas. A step's
// activity sends its command to a participant service over RabbitMQ. Run
// as a regular activity it returns activity.ErrResultPending, and the
// service's reply, consumed from the workers' shared reply queue by
// HandleReply, completes the activity through Temporal; run as a local
// activity it waits for the reply on its worker's own reply queue (a
// Requester) and returns it. Activities are methods on Activities, which
// holds the injected dependencies.
package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
)

// Publisher sends one message and returns once the broker confirmed it.
// It must be safe for concurrent use; *amqp.Publisher implements it.
type Publisher interface {
	Publish(ctx context.Context, m amqp.Message) error
}

// Requester sends a command and waits in this process for its reply; it
// must be safe for concurrent use. *amqp.Requester implements it.
type Requester interface {
	Request(ctx context.Context, queue string, m amqp.Message) (amqp.Delivery, error)
}

// ActivityCompleter completes an activity that returned
// activity.ErrResultPending; client.Client implements it.
type ActivityCompleter interface {
	CompleteActivityByID(ctx context.Context, namespace, workflowID, runID, activityID string, result interface{}, err error) error
}

// Config names the queues the activities use.
type Config struct {
	// ReplyQueue is the worker's queue services send replies to. Required.
	ReplyQueue string
	// LedgerQueue is where ledger commands go. Default contract.LedgerQueue.
	LedgerQueue string
	// InventoryQueue is where inventory commands go. Default contract.InventoryQueue.
	InventoryQueue string
	// Source is the envelope source of commands and saga events. Default "sagaflow-worker".
	Source string
	// Exchange is the event exchange saga events are published to: the
	// Exchange of the connection the publisher uses. Default
	// amqp.DefaultExchange ("sagas.events").
	Exchange string
}

func (c *Config) setDefaults() {
	if c.LedgerQueue == "" {
		c.LedgerQueue = contract.LedgerQueue
	}
	if c.InventoryQueue == "" {
		c.InventoryQueue = contract.InventoryQueue
	}
	if c.Source == "" {
		c.Source = "sagaflow-worker"
	}
	if c.Exchange == "" {
		c.Exchange = amqp.DefaultExchange
	}
}

// Validate reports every problem with the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.ReplyQueue == "" {
		errs = append(errs, errors.New("ReplyQueue is required"))
	}
	return errors.Join(errs...)
}

// Activities are the saga activities with their dependencies. Register a
// *Activities with worker.RegisterActivity; workflows call its methods
// through a nil *Activities (`var a *activities.Activities`).
type Activities struct {
	cfg       Config
	publisher Publisher
	completer ActivityCompleter
	requester Requester
	logger    *slog.Logger
}

// New returns the activities publishing through p and completing pending
// activities through c (a client.Client). logger may be nil (slog.Default).
func New(cfg Config, p Publisher, c ActivityCompleter, logger *slog.Logger) (*Activities, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("activities config: %w", err)
	}
	if p == nil || c == nil {
		return nil, errors.New("activities: publisher and completer are required")
	}
	cfg.setDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	return &Activities{cfg: cfg, publisher: p, completer: c, logger: logger}, nil
}

// WithRequester returns a copy of a with r waiting for the replies of the
// command steps a workflow runs as local activities. Without one such a
// step fails every attempt, and the workflow falls back to running it as a
// regular activity. It is a function, not a method, because every method
// of Activities is registered as an activity.
func WithRequester(a *Activities, r Requester) *Activities {
	c := *a
	c.requester = r
	return &c
}
