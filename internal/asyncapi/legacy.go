package main

import (
	"reflect"

	"github.com/sagaflow/sagaflow/events"
)

// legacyPayloads are the payload shapes of versions older than a type's
// current one, frozen as they were published: consumers still receive them
// (an outbox row written before a deploy) and the catalog upcasts them. When
// a payload changes incompatibly, its struct as it was moves here under its
// old version, and the type is registered at the next version with an
// upcaster (events/catalog.go).
var legacyPayloads = map[string]map[int]reflect.Type{
	events.TypeOrderPlaced: {1: reflect.TypeFor[orderPlacedV1]()},
}

// orderPlacedV1 is order.placed version 1: the customer as "customer" and
// the total as a Money object "amount".
type orderPlacedV1 struct {
	OrderID    string             `json:"order_id"`
	Customer   string             `json:"customer"`
	MerchantID string             `json:"merchant_id"`
	Lines      []events.OrderLine `json:"lines"`
	Amount     events.Money       `json:"amount"`
}
