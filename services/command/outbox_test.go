package command

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/services/store"
)

// fakeAMQP records what the relay publisher handed to the broker client and
// answers with err.
type fakeAMQP struct {
	published []amqp.Message
	err       error
}

func (f *fakeAMQP) Publish(_ context.Context, m amqp.Message) error {
	f.published = append(f.published, m)
	return f.err
}

func (f *fakeAMQP) PublishBatch(_ context.Context, ms []amqp.Message) error {
	f.published = append(f.published, ms...)
	return f.err
}

func TestOutboxRowIsPublishedAsTheMessageEnqueued(t *testing.T) {
	enqueued := amqp.Message{
		Exchange: "sagas.events", RoutingKey: events.TypeFundsDeposited, ID: "evt-1", Type: events.TypeFundsDeposited,
		CorrelationID: "transfer-1", ContentType: events.ContentTypeJSON, Body: []byte(`{"id":"evt-1"}`),
	}
	row := toOutbox(enqueued, nil)
	row.CreatedAt = time.UnixMicro(1_700_000_000_123_456).UTC() // as the store reads it back

	fake := &fakeAMQP{}
	require.NoError(t, relayPublisher{fake}.PublishBatch(context.Background(), []store.OutboxMessage{row, {ID: "evt-2"}}))
	require.Len(t, fake.published, 2)
	want := enqueued
	want.Timestamp = row.CreatedAt
	require.Equal(t, want, fake.published[0], "every stored property comes back, stamped with the row's creation time")
	require.Equal(t, "evt-2", fake.published[1].ID, "the batch keeps its order")
	require.Equal(t, events.ContentTypeJSON, fake.published[1].ContentType)
}

func TestRelayPublisherErrors(t *testing.T) {
	lost := errors.New("connection lost")
	tests := []struct {
		name           string
		brokerErr      error
		wantUnroutable bool
	}{
		{"confirmed", nil, false},
		{"unroutable", fmt.Errorf("%w: NO_ROUTE", amqp.ErrUnroutable), true},
		{"broker failure", lost, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := relayPublisher{&fakeAMQP{err: tt.brokerErr}}
			for _, err := range []error{
				pub.Publish(context.Background(), store.OutboxMessage{ID: "m"}),
				pub.PublishBatch(context.Background(), []store.OutboxMessage{{ID: "m"}}),
			} {
				if tt.brokerErr == nil {
					require.NoError(t, err)
					continue
				}
				require.ErrorIs(t, err, tt.brokerErr, "the broker's error is kept for the log")
				require.Equal(t, tt.wantUnroutable, errors.Is(err, store.ErrUnroutable), "the relay skips only unroutable rows")
			}
		})
	}
}

// The broker client's batch error says which message failed; the relay
// gets the same, message by message, with unroutable ones marked for it.
func TestRelayPublisherKeepsABatchErrorsPositions(t *testing.T) {
	lost := errors.New("connection lost")
	brokerErr := &amqp.BatchError{IDs: []string{"m1", "m2", "m3"}, Errs: []error{nil, fmt.Errorf("%w: NO_ROUTE", amqp.ErrUnroutable), lost}}
	err := relayPublisher{&fakeAMQP{err: brokerErr}}.PublishBatch(context.Background(),
		[]store.OutboxMessage{{ID: "m1"}, {ID: "m2"}, {ID: "m3"}})
	var be *store.BatchError
	require.ErrorAs(t, err, &be)
	require.Len(t, be.Errs, 3)
	require.NoError(t, be.Errs[0])
	require.ErrorIs(t, be.Errs[1], store.ErrUnroutable)
	require.ErrorIs(t, be.Errs[2], lost)
	require.NotErrorIs(t, be.Errs[2], store.ErrUnroutable)
	require.ErrorContains(t, be.Errs[2], "m3")
}
