// Package command is the command-handling pipeline every participant service
// shares: decode a command from its queue, handle it exactly once in one
// database transaction (inbox claim, state change, reply and events into the
// outbox), answer read-only queries directly, and dead-letter what cannot be
// understood. A service supplies only its handlers.
package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/services/store"
)

// ErrConflict reports that a handler lost an optimistic-concurrency race (a
// stream version taken by another transaction). The pipeline rolls back and
// handles the command again on fresh state.
var ErrConflict = errors.New("command: concurrent modification")

// Event is a domain event a handler emits; the pipeline wraps it in an
// envelope caused by the command and publishes it on the event exchange.
type Event struct {
	// Type is the catalog type, for example events.TypeFundsWithdrawn.
	Type string
	// Subject names the entity the event is about (an account, a reservation).
	Subject string
	// Payload is the event's data.
	Payload events.Payload
}

// Outcome is what a handler decided about one command.
type Outcome struct {
	// Status is events.ReplyAccepted or events.ReplyRejected.
	Status events.ReplyStatus
	// Reason is the machine-readable rejection code.
	Reason string
	// Message explains the outcome to a person.
	Message string
	// Result is marshalled to JSON into the reply's Result; nil for none.
	Result any
	// Events are published, in order, if and only if the transaction commits.
	Events []Event
}

// Accept is an accepted outcome with an optional result and events.
func Accept(result any, evs ...Event) Outcome {
	return Outcome{Status: events.ReplyAccepted, Result: result, Events: evs}
}

// Reject is a rejected outcome with its reason code and an explanation.
func Reject(reason, message string, result any) Outcome {
	return Outcome{Status: events.ReplyRejected, Reason: reason, Message: message, Result: result}
}

// Rejection is an error a query returns to answer with a rejected reply (an
// unknown account) instead of failing the delivery.
type Rejection struct {
	// Reason is the machine-readable code.
	Reason string
	// Message explains it to a person.
	Message string
}

// Error returns the reason and the message.
func (r *Rejection) Error() string { return r.Reason + ": " + r.Message }

// Command is a decoded command as a handler sees it.
type Command struct {
	// Envelope is the command's envelope; Envelope.ID is the command id.
	Envelope events.Envelope
	// Payload is the decoded, validated data as a value of its catalog type.
	Payload events.Payload
}

// HandlerFunc applies one command inside tx. It returns the outcome to
// reply with; an error rolls the transaction back and fails the delivery
// (ErrConflict retries it at once on fresh state).
type HandlerFunc func(ctx context.Context, tx *store.Tx, cmd Command) (Outcome, error)

// QueryFunc answers a read-only query; the result becomes the reply's
// Result. A *Rejection error answers with a rejected reply.
type QueryFunc func(ctx context.Context, q Command) (any, error)

// Config configures a Processor.
type Config struct {
	// Service names the service: its inbox consumer, its outbox producer
	// and the source of its envelopes. Required.
	Service string
	// InvalidPayload, when set, turns a payload that failed validation only
	// in business terms (a non-positive amount) into a rejected reply
	// instead of a dead letter: it returns the reason code, or ok=false to
	// dead-letter. It sees the validation's field errors.
	InvalidPayload func(fields []*events.FieldError) (reason string, ok bool)
	// MaxConflictRetries bounds how often a command is handled again after
	// ErrConflict or a unique violation before the delivery fails (and the
	// consumer retries it with backoff). Default 20.
	MaxConflictRetries int
	// Exchange is the event exchange the domain events are published to:
	// the Exchange of the connection the outbox relay publishes on. Default
	// amqp.DefaultExchange ("sagas.events").
	Exchange string
}

func (c *Config) setDefaults() {
	if c.MaxConflictRetries == 0 {
		c.MaxConflictRetries = 20
	}
	if c.Exchange == "" {
		c.Exchange = amqp.DefaultExchange
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Service == "" {
		errs = append(errs, errors.New("command: Service is required"))
	}
	if c.MaxConflictRetries < 0 {
		errs = append(errs, errors.New("command: MaxConflictRetries must not be negative"))
	}
	return errors.Join(errs...)
}

// Processor handles the deliveries of one service's command queue.
type Processor struct {
	db       *store.DB
	cfg      Config
	handlers map[string]HandlerFunc
	queries  map[string]QueryFunc
	replies  ReplyPublisher
}

// ReplyPublisher publishes the replies to queries, which skip the outbox:
// *amqp.Publisher. Publish returns after the broker's confirm and must be
// safe for concurrent use.
type ReplyPublisher interface {
	Publish(ctx context.Context, m amqp.Message) error
}

// NewProcessor builds a processor; register handlers before it runs.
func NewProcessor(db *store.DB, cfg Config) (*Processor, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if db == nil {
		return nil, errors.New("command: nil store")
	}
	return &Processor{db: db, cfg: cfg, handlers: map[string]HandlerFunc{}, queries: map[string]QueryFunc{}}, nil
}

// Service returns the configured service name.
func (p *Processor) Service() string { return p.cfg.Service }

// Handle registers the handler of a command type. Not safe to call while
// the processor handles deliveries.
func (p *Processor) Handle(typ string, h HandlerFunc) { p.handlers[typ] = h }

// Query registers the answer to a read-only query type (registered in the
// events catalog as a command kind). Queries skip the inbox and the outbox:
// they change nothing, so a repeat is simply answered again.
func (p *Processor) Query(typ string, q QueryFunc) { p.queries[typ] = q }

// SetReplyPublisher sets the publisher query replies go through; Serve sets
// it. Command replies always go through the outbox.
func (p *Processor) SetReplyPublisher(pub ReplyPublisher) { p.replies = pub }

// Deliver is the amqp.Handler of the service's command queue.
func (p *Processor) Deliver(ctx context.Context, d amqp.Delivery) error {
	env, payload, err := events.Decode(d.Body)
	rejectReason := ""
	if err != nil {
		env, rejectReason, err = p.classifyInvalid(d.Body, err)
		if err != nil {
			return amqp.Permanent(fmt.Errorf("%s: command %s: %w", p.cfg.Service, d.ID, err))
		}
	}
	if q, ok := p.queries[env.Type]; ok && rejectReason == "" {
		return p.answer(ctx, d, env, payload, q)
	}
	h, ok := p.handlers[env.Type]
	if !ok {
		return amqp.Permanent(fmt.Errorf("%s: command %s: type %q is not handled by this service", p.cfg.Service, env.ID, env.Type))
	}
	if rejectReason != "" {
		h = func(context.Context, *store.Tx, Command) (Outcome, error) {
			return Reject(rejectReason, "payload failed validation", nil), nil
		}
	}
	cmd := Command{Envelope: env, Payload: payload}
	// The inbox → handler → outbox transaction is a span; the rows it
	// writes keep its trace context for the relay's publish.
	ctx, span := tracer().Start(ctx, p.cfg.Service+" handle "+env.Type, trace.WithAttributes(
		attribute.String("sagaflow.service", p.cfg.Service),
		attribute.String("sagaflow.command.id", env.ID),
		attribute.String("sagaflow.command.type", env.Type),
		attribute.String("sagaflow.correlation_id", env.CorrelationID)))
	defer span.End()
	for attempt := 0; ; attempt++ {
		err := p.db.InTx(ctx, func(tx *store.Tx) error { return p.apply(ctx, tx, d, cmd, h) })
		if err == nil {
			return nil
		}
		retry := errors.Is(err, ErrConflict) || store.IsUniqueViolation(err) || store.IsRetryable(err)
		if !retry || attempt >= p.cfg.MaxConflictRetries || ctx.Err() != nil {
			unavailable := store.IsUnavailable(err)
			err = fmt.Errorf("%s: handle %s %s: %w", p.cfg.Service, env.Type, env.ID, err)
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
			if unavailable {
				// The database is away (restarting): the command waits
				// for it in the delay queues, never dead-lettered; the
				// inbox applies it once when it is back.
				return amqp.Unavailable(err)
			}
			return err
		}
		span.AddEvent("transaction retried", trace.WithAttributes(attribute.Int("attempt", attempt+1), attribute.String("error.message", err.Error())))
	}
}

// tracer is the services' tracer, from the global provider (a no-op while
// tracing is off).
func tracer() trace.Tracer { return otel.Tracer("github.com/sagaflow/sagaflow/services/command") }

// classifyInvalid decides what to do with a body that did not decode: an
// envelope whose payload broke only business rules becomes a rejection,
// everything else an error to dead-letter.
func (p *Processor) classifyInvalid(body []byte, decodeErr error) (events.Envelope, string, error) {
	if !errors.Is(decodeErr, events.ErrInvalidPayload) || p.cfg.InvalidPayload == nil {
		return events.Envelope{}, "", decodeErr
	}
	var env events.Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return events.Envelope{}, "", decodeErr
	}
	if _, ok := p.handlers[env.Type]; !ok {
		return events.Envelope{}, "", decodeErr
	}
	fields := events.FieldErrors(decodeErr)
	if len(fields) == 0 {
		return events.Envelope{}, "", decodeErr
	}
	reason, ok := p.cfg.InvalidPayload(fields)
	if !ok {
		return events.Envelope{}, "", decodeErr
	}
	return env, reason, nil
}

func (p *Processor) apply(ctx context.Context, tx *store.Tx, d amqp.Delivery, cmd Command, h HandlerFunc) error {
	env := cmd.Envelope
	tc := amqp.TraceHeaders(ctx)
	claimed, stored, err := tx.ClaimCommand(ctx, p.cfg.Service, env.ID, env.Type)
	if err != nil {
		return err
	}
	if !claimed {
		// A repeat: answer with the stored bytes and change nothing else.
		trace.SpanFromContext(ctx).AddEvent("repeated command: stored reply sent again")
		if stored == nil || d.ReplyTo == "" {
			return nil
		}
		return tx.Enqueue(ctx, p.cfg.Service, toOutbox(p.replyMessage(d, env, stored), tc))
	}
	out, err := h(ctx, tx, cmd)
	if err != nil {
		return err
	}
	msgs := make([]store.OutboxMessage, 0, len(out.Events)+1)
	for i, ev := range out.Events {
		e, err := events.New(ev.Type, p.cfg.Service, ev.Payload,
			events.WithID(events.DeterministicID(env.ID, "event/"+strconv.Itoa(i)+"/"+ev.Type)),
			events.WithSubject(ev.Subject),
			events.WithCorrelationID(env.CorrelationID),
			events.WithCausationID(env.ID))
		if err != nil {
			return fmt.Errorf("build %s event: %w", ev.Type, err)
		}
		m, err := amqp.MessageFromEnvelope(p.cfg.Exchange, e)
		if err != nil {
			return err
		}
		msgs = append(msgs, toOutbox(m, tc))
	}
	reply, err := p.buildReply(env, out.Status, out.Reason, out.Message, out.Result)
	if err != nil {
		return err
	}
	if err := tx.StoreReply(ctx, p.cfg.Service, env.ID, reply); err != nil {
		return err
	}
	if d.ReplyTo != "" {
		msgs = append(msgs, toOutbox(p.replyMessage(d, env, reply), tc))
	}
	return tx.Enqueue(ctx, p.cfg.Service, msgs...)
}

// ReplyID is the id of the reply to a command: derived from the command id,
// so every answer to one command carries the same id.
func ReplyID(commandID string) string { return events.DeterministicID(commandID, "reply") }

func (p *Processor) buildReply(cmd events.Envelope, status events.ReplyStatus, reason, message string, result any) ([]byte, error) {
	r := events.Reply{CommandID: cmd.ID, CommandType: cmd.Type, Status: status, Reason: reason, Message: message}
	if result != nil {
		b, err := json.Marshal(result)
		if err != nil {
			return nil, fmt.Errorf("marshal %s result: %w", cmd.Type, err)
		}
		r.Result = b
	}
	e, err := events.New(events.TypeCommandReplied, p.cfg.Service, r,
		events.WithID(ReplyID(cmd.ID)),
		events.WithSubject(cmd.Subject),
		events.WithCorrelationID(cmd.CorrelationID),
		events.WithCausationID(cmd.ID))
	if err != nil {
		return nil, fmt.Errorf("build reply to %s: %w", cmd.ID, err)
	}
	b, err := e.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode reply to %s: %w", cmd.ID, err)
	}
	return b, nil
}

// replyMessage addresses a reply the way amqp.Reply does: to the request's
// reply-to queue on the default exchange, with the request's AMQP
// correlation id, so the requester matches it.
func (p *Processor) replyMessage(d amqp.Delivery, cmd events.Envelope, body []byte) amqp.Message {
	return amqp.Message{
		Exchange:      "",
		RoutingKey:    d.ReplyTo,
		ID:            ReplyID(cmd.ID),
		Type:          events.TypeCommandReplied,
		CorrelationID: d.CorrelationID,
		ContentType:   events.ContentTypeJSON,
		Body:          body,
	}
}

func (p *Processor) answer(ctx context.Context, d amqp.Delivery, env events.Envelope, payload events.Payload, q QueryFunc) error {
	res, err := q(ctx, Command{Envelope: env, Payload: payload})
	var (
		status       = events.ReplyAccepted
		reason, text string
		rej          *Rejection
	)
	switch {
	case errors.As(err, &rej):
		status, reason, text, res = events.ReplyRejected, rej.Reason, rej.Message, nil
	case err != nil:
		return fmt.Errorf("%s: query %s %s: %w", p.cfg.Service, env.Type, env.ID, err)
	}
	if d.ReplyTo == "" {
		return nil
	}
	if p.replies == nil {
		return fmt.Errorf("%s: query %s: no reply publisher", p.cfg.Service, env.ID)
	}
	body, err := p.buildReply(env, status, reason, text, res)
	if err != nil {
		return err
	}
	m := p.replyMessage(d, env, body)
	if err := p.replies.Publish(ctx, m); err != nil && !errors.Is(err, amqp.ErrUnroutable) {
		return fmt.Errorf("%s: reply to query %s: %w", p.cfg.Service, env.ID, err)
	}
	return nil
}
