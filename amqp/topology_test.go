package amqp

import (
	"errors"
	"testing"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"
)

func TestParseURLs(t *testing.T) {
	tests := []struct {
		name    string
		list    string
		want    []string
		wantErr []string
		hidden  string // a password that must not appear in the error
	}{
		{name: "one url", list: "amqp://u:p@a:5672/", want: []string{"amqp://u:p@a:5672/"}},
		{name: "a list with spaces", list: "amqp://u:p@a:5672/, amqps://u:p@b:5671/vh ,amqp://c/",
			want: []string{"amqp://u:p@a:5672/", "amqps://u:p@b:5671/vh", "amqp://c/"}},
		{name: "a bad entry names itself without its password", list: "amqp://u:p@a/,http://u:s3cret@b/",
			wantErr: []string{"url 2 of 2 http://u:***@b/"}, hidden: "s3cret"},
		{name: "a bad port", list: "amqp://u:s3cret@a:port/", wantErr: []string{"url amqp://u:***@a:port/"}, hidden: "s3cret"},
		{name: "an empty entry", list: "amqp://a/,,amqp://b/", wantErr: []string{"url 2 of 3 is empty"}},
		{name: "every bad entry at once", list: "x://a/, ,amqp://b/", wantErr: []string{"url 1 of 3 x://a/", "url 2 of 3 is empty"}},
		{name: "empty", list: "", wantErr: []string{"url is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseURLs(tt.list)
			if len(tt.wantErr) == 0 {
				require.NoError(t, err)
				require.Equal(t, tt.want, got)
				return
			}
			for _, w := range tt.wantErr {
				require.ErrorContains(t, err, w)
			}
			if tt.hidden != "" {
				require.NotContains(t, err.Error(), tt.hidden)
			}
		})
	}
}

func TestRedactURLs(t *testing.T) {
	require.Equal(t, "amqp://u:***@a/,amqp://v:***@b/,amqp://c/", RedactURLs("amqp://u:p@a/, amqp://v:q@b/,amqp://c/"))
}

func TestQueueArgs(t *testing.T) {
	dl := amqp091.Table{"x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": "q"}
	delay := amqp091.Table{"x-message-ttl": int64(200), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "q"}
	quorum := Config{QueueType: QueueQuorum, DeliveryLimit: 7}
	classic := Config{QueueType: QueueClassic, DeliveryLimit: 7}
	tests := []struct {
		name string
		cfg  Config
		role queueRole
		base amqp091.Table
		want amqp091.Table
	}{
		{name: "quorum consumer queue: delivery limit, at-least-once dead-lettering", cfg: quorum, role: roleConsumer, base: dl,
			want: amqp091.Table{"x-queue-type": "quorum", "x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": "q",
				"x-delivery-limit": int64(7), "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}},
		{name: "quorum delay queue: TTL kept, no delivery limit", cfg: quorum, role: roleDelay, base: delay,
			want: amqp091.Table{"x-queue-type": "quorum", "x-message-ttl": int64(200), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "q",
				"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}},
		{name: "quorum dead-letter queue: no limit, browsing it must not drop messages", cfg: quorum, role: roleDeadLetter,
			want: amqp091.Table{"x-queue-type": "quorum"}},
		{name: "classic consumer queue: the arguments of before", cfg: classic, role: roleConsumer, base: dl,
			want: amqp091.Table{"x-queue-type": "classic", "x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": "q"}},
		{name: "classic delay queue", cfg: classic, role: roleDelay, base: delay,
			want: amqp091.Table{"x-queue-type": "classic", "x-message-ttl": int64(200), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "q"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, tt.cfg.queueArgs(tt.role, tt.base))
		})
	}
}

func TestParseMismatch(t *testing.T) {
	// The broker's answers, as RabbitMQ 3.10 words them.
	tests := []struct {
		reason, arg, existing string
	}{
		{"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received the value 'quorum' of type 'longstr' but current is none", "x-queue-type", ""},
		{"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received 'classic' but current is 'quorum'", "x-queue-type", "quorum"},
		{"PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'q' in vhost '/': received '10' but current is '20'", "x-delivery-limit", "20"},
		{"PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'q' in vhost 'v': received none but current is the value '20' of type 'long'", "x-delivery-limit", "20"},
	}
	for _, tt := range tests {
		arg, existing, ok := parseMismatch(tt.reason)
		require.True(t, ok, tt.reason)
		require.Equal(t, tt.arg, arg, tt.reason)
		require.Equal(t, tt.existing, existing, tt.reason)
	}
	_, _, ok := parseMismatch("PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'q' in vhost '/' of queue type rabbit_quorum_queue")
	require.False(t, ok)
}

func TestQueueMismatchErrorSaysWhatAndHowToFix(t *testing.T) {
	refusal := &amqp091.Error{Code: amqp091.PreconditionFailed, Reason: "PRECONDITION_FAILED - inequivalent arg"}
	tests := []struct {
		name string
		err  QueueMismatchError
		want string
	}{
		{name: "classic queue asked as quorum",
			err: QueueMismatchError{Queue: "ledger.commands", ExistingType: "classic", Arg: "x-queue-type", WantedType: "quorum",
				Wanted: "quorum, x-delivery-limit=20", Messages: 3, Consumers: 0, Inspected: true, Err: refusal},
			want: "queue ledger.commands exists as a classic queue holding 3 messages with 0 consumers, but is declared as quorum, x-delivery-limit=20 " +
				"and the broker refused that (406 PRECONDITION_FAILED - inequivalent arg); nothing was changed: " +
				"drain it and delete it so that it is declared again as quorum, or set AMQP_QUEUE_TYPE=classic to keep classic queues"},
		{name: "quorum queue asked as classic",
			err:  QueueMismatchError{Queue: "q", ExistingType: "quorum", Arg: "x-queue-type", Existing: "quorum", WantedType: "classic", Wanted: "classic", Err: refusal},
			want: "queue q exists as a quorum queue, but is declared as classic and the broker refused that (406 PRECONDITION_FAILED - inequivalent arg); nothing was changed: drain it and delete it so that it is declared again as classic, or set AMQP_QUEUE_TYPE=quorum to keep quorum queues"},
		{name: "another delivery limit",
			err:  QueueMismatchError{Queue: "q", ExistingType: "quorum", Arg: "x-delivery-limit", Existing: "5", WantedType: "quorum", Wanted: "quorum, x-delivery-limit=20", Err: refusal},
			want: "queue q exists as a quorum queue with x-delivery-limit 5, but is declared as quorum, x-delivery-limit=20 and the broker refused that (406 PRECONDITION_FAILED - inequivalent arg); nothing was changed: drain it and delete it so that it is declared again, or set AMQP_DELIVERY_LIMIT=5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, tt.err.Error())
			require.True(t, errors.Is(&tt.err, refusal))
		})
	}
}

func TestBrokerDeadLetterReason(t *testing.T) {
	deaths := []any{
		amqp091.Table{"reason": "delivery_limit", "queue": "ledger.commands", "exchange": "sagas.events", "routing-keys": []any{"funds.withdrawn"}, "count": int64(1)},
		amqp091.Table{"reason": "expired", "queue": "ledger.commands.retry.200ms", "exchange": "", "routing-keys": []any{"ledger.commands.retry.200ms"}},
	}
	t.Run("only the broker's headers", func(t *testing.T) {
		dl := toDeadLetter(amqp091.Delivery{MessageId: "m", Headers: amqp091.Table{"x-death": deaths[:1]}}, "ledger.commands", "ledger.commands.dlq", 1)
		require.Equal(t, "delivery_limit", dl.BrokerReason)
		require.Contains(t, dl.LastError, "dead-lettered by the broker from ledger.commands: delivery_limit")
		require.Equal(t, "sagas.events", dl.OriginalExchange)
		require.Equal(t, "funds.withdrawn", dl.OriginalRoutingKey)
	})
	t.Run("after a retry through a delay queue", func(t *testing.T) {
		dl := toDeadLetter(amqp091.Delivery{MessageId: "m", Headers: amqp091.Table{
			"x-death": deaths, HeaderLastError: "db down", HeaderAttempts: int64(1),
			HeaderOriginalExchange: "sagas.events", HeaderOriginalRoutingKey: "funds.withdrawn",
		}}, "ledger.commands", "ledger.commands.dlq", 1)
		require.Equal(t, "delivery_limit", dl.BrokerReason, "the most recent death is the first entry")
		require.Contains(t, dl.LastError, "delivery_limit")
		require.Contains(t, dl.LastError, "earlier handler error: db down")
		require.Equal(t, "funds.withdrawn", dl.OriginalRoutingKey)
	})
	t.Run("the consumer's own dead letter", func(t *testing.T) {
		dl := toDeadLetter(amqp091.Delivery{MessageId: "m", Headers: amqp091.Table{HeaderLastError: "permanent: bad"}}, "q", "q.dlq", 1)
		require.Empty(t, dl.BrokerReason)
		require.Equal(t, "permanent: bad", dl.LastError)
	})
}
