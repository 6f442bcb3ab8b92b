module github.com/sagaflow/sagaflow/internal/bench/watermill

go 1.26.8

require (
	github.com/ThreeDotsLabs/watermill-amqp/v3 v3.0.2 // indirect
	github.com/rabbitmq/amqp091-go v1.16.0 // indirect
)
