package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/sdk/converter"

	"github.com/sagaflow/sagaflow/codec"
)

// encryptHistory turns a recorded plaintext history into what a system with
// the codec writes: failure messages moved into encoded attributes, then
// every payload but the search attributes encrypted.
func encryptHistory(t *testing.T, events []*historypb.HistoryEvent, c *codec.Codec) []*historypb.HistoryEvent {
	t.Helper()
	ctx := context.Background()
	for _, e := range events {
		require.NoError(t, proxy.VisitFailures(ctx, e, proxy.VisitFailuresOptions{
			Visitor: func(_ *proxy.VisitFailuresContext, f *failurepb.Failure) error {
				return converter.EncodeCommonFailureAttributes(converter.GetDefaultDataConverter(), f)
			},
		}))
		require.NoError(t, proxy.VisitPayloads(ctx, e, proxy.VisitPayloadsOptions{
			Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
				return c.Encode(ps)
			},
			SkipSearchAttributes: true,
		}))
	}
	return events
}

func testCodec(t *testing.T, id string) *codec.Codec {
	t.Helper()
	k, err := codec.NewKey(id, bytes.Repeat([]byte{7}, codec.KeySize))
	require.NoError(t, err)
	ks, err := codec.NewKeys(k)
	require.NoError(t, err)
	c, err := codec.New(ks, codec.Options{})
	require.NoError(t, err)
	return c
}

// TestEncryptedHistoriesGiveTheSameAuditTrail: with the keys, the audit
// trail of an encrypted history is the plaintext one; without them, it
// shows the steps and names the key, never the data.
func TestEncryptedHistoriesGiveTheSameAuditTrail(t *testing.T) {
	c := testCodec(t, "k1")
	off, err := codec.New(codec.Keys{}, codec.Options{})
	require.NoError(t, err)
	for _, tc := range historyCases {
		t.Run(tc.name, func(t *testing.T) {
			plain := Build(loadHistory(t, tc.name), nil, Options{})
			encrypted := encryptHistory(t, loadHistory(t, tc.name), c)

			got := Build(encrypted, nil, Options{DataConverter: c.DataConverter()})
			require.Equal(t, plain, got)

			locked := Build(encrypted, nil, Options{DataConverter: off.DataConverter()})
			require.Equal(t, []string{"k1"}, locked.EncryptedKeys)
			require.Equal(t, recordKinds(plain), recordKinds(locked), "the steps still show (named by activity type: the step names are in the inputs)")
			require.Equal(t, plain.SagaStatus, locked.SagaStatus, "search attributes are not encrypted")
			js, err := json.Marshal(locked)
			require.NoError(t, err)
			require.Contains(t, string(js), `encrypted with key k1`)
			for _, r := range plain.Records {
				if len(r.Input) > 2 && r.Kind != "timer" { // a timer's input is its duration, not a payload
					require.NotContains(t, string(js), string(r.Input), "no plaintext input")
				}
				if len(r.Error) > 20 {
					require.NotContains(t, string(js), r.Error, "no plaintext error")
				}
			}
			var text bytes.Buffer
			require.NoError(t, WriteText(&text, locked, TextOptions{}))
			require.Contains(t, text.String(), "note:    payloads are encrypted with key k1, which is not configured here: set SAGAFLOW_CODEC_KEYS to a key file holding it")
		})
	}
}

func recordKinds(tl Timeline) []string {
	kinds := make([]string, len(tl.Records))
	for i, r := range tl.Records {
		kinds[i] = string(r.Kind)
	}
	return kinds
}
