package contract

// EventsExchange is the topic exchange every domain event and saga event is
// published to, with the event's type as routing key. Commands, queries and
// replies go through the default exchange straight to a queue.
const EventsExchange = "sagas.events"

// DeadLetterExchange is the direct exchange dead letters go through, routed
// by the name of the consumer that gave up on them to its "Q.dlq" queue.
const DeadLetterExchange = "sagas.dlx"

// Queues of the participant services and of the worker's consumers. Each
// consumer queue Q has its dead letters in "Q.dlq" and its retries in
// delay queues named after it.
const (
	// LedgerQueue is the ledger service's command and query queue.
	LedgerQueue = "ledger.commands"
	// InventoryQueue is the inventory service's command and query queue.
	InventoryQueue = "inventory.commands"
	// OrdersQueryQueue is the orders read model's query queue.
	OrdersQueryQueue = "orders.queries"
	// OrdersProjectionQueue is the orders read model's event queue, bound to
	// EventsExchange.
	OrdersProjectionQueue = "orders-projection"
	// ReplyQueue is the durable queue the services' replies to the saga
	// activities come back on, shared by every worker.
	ReplyQueue = "sagas.replies"
	// LocalReplyQueuePrefix starts the name of each orchestration worker's
	// own reply queue (exclusive, auto-delete, a random suffix): the
	// replies to the command steps its workflows run as local activities,
	// which only that process waits for.
	LocalReplyQueuePrefix = "sagas.replies.local"
	// BridgeQueue is the bridge's event queue: the events that start or
	// signal sagas.
	BridgeQueue = "bridge"
	// NotificationsQueue is the notifications consumer's event queue.
	NotificationsQueue = "notifications"
)

// TaskQueue is the default task queue of every saga's workflows and
// activities: one worker binary hosts them all, and child workflows inherit
// their parent's queue.
const TaskQueue = "sagas"
