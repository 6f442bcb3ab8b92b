package codec

import (
	"crypto/rand"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/sagaflow/sagaflow/events"
)

// BenchmarkCodec measures encrypting and decrypting one payload the size of
// an order saga's input, with and without compression: the cost the codec
// adds to every payload a worker or client sends or reads.
func BenchmarkCodec(b *testing.B) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		b.Fatal(err)
	}
	k, err := NewKey("bench", secret)
	if err != nil {
		b.Fatal(err)
	}
	ks, err := NewKeys(k)
	if err != nil {
		b.Fatal(err)
	}
	in, err := converter.GetDefaultDataConverter().ToPayload(events.OrderPlaced{
		OrderID: "order-0f8e2c4d", CustomerID: "cust-4711", MerchantID: "merch-0815", Currency: "EUR", Total: 7499,
		Lines: []events.OrderLine{{SKU: "sku-0001", Quantity: 2, UnitPrice: 1250}, {SKU: "sku-0002", Quantity: 1, UnitPrice: 4999}},
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, compress := range []bool{false, true} {
		c, err := New(ks, Options{Compress: compress})
		if err != nil {
			b.Fatal(err)
		}
		name := "plain"
		if compress {
			name = "compressed"
		}
		enc, err := c.Encode([]*commonpb.Payload{in})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/encode", func(b *testing.B) {
			b.SetBytes(int64(len(in.Data)))
			for b.Loop() {
				if _, err := c.Encode([]*commonpb.Payload{in}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/decode", func(b *testing.B) {
			b.SetBytes(int64(len(in.Data)))
			for b.Loop() {
				if _, err := c.Decode(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
