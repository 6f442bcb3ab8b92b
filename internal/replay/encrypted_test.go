package replay

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"

	"github.com/sagaflow/sagaflow/codec"
	"github.com/sagaflow/sagaflow/workflows"
)

func testCodec(t *testing.T, ids ...string) *codec.Codec {
	t.Helper()
	var keys []codec.Key
	for i, id := range ids {
		k, err := codec.NewKey(id, bytes.Repeat([]byte{byte(i + 1)}, codec.KeySize))
		require.NoError(t, err)
		keys = append(keys, k)
	}
	ring, err := codec.NewKeys(keys...)
	require.NoError(t, err)
	c, err := codec.New(ring, codec.Options{})
	require.NoError(t, err)
	return c
}

// encrypted is a recorded history with every payload encrypted by c, as a
// worker with the codec writes them.
func encrypted(t *testing.T, c *codec.Codec, file string) *History {
	h, err := ReadFile(filepath.Join(recorded, file))
	require.NoError(t, err)
	n := 0
	for _, ev := range h.Events.GetEvents() {
		eachPayload(ev.ProtoReflect(), func(p *commonpb.Payload) {
			out, err := c.Encode([]*commonpb.Payload{p})
			require.NoError(t, err)
			p.Metadata, p.Data = out[0].Metadata, out[0].Data
			n++
		})
	}
	require.Positive(t, n)
	return h
}

// TestEncryptedHistoriesNeedTheirKey: replay decodes payloads, so an
// encrypted history replays with its key and fails without it, naming the
// key (the live test in starter records one with the codec on).
func TestEncryptedHistoriesNeedTheirKey(t *testing.T) {
	k1 := testCodec(t, "k1")
	for _, file := range []string{"order_payment_refused.json", "reservation_expired.json"} {
		t.Run(file, func(t *testing.T) {
			h := encrypted(t, k1, file)
			keyID, ok := codec.KeyIDOf(h.Events.Events[0].GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()[0])
			require.True(t, ok)
			require.Equal(t, "k1", keyID)

			r, err := New(Options{Register: workflows.Register, Codec: k1})
			require.NoError(t, err)
			require.Nil(t, r.Replay(h))

			for codecName, c := range map[string]*codec.Codec{"no key": nil, "another key": testCodec(t, "k2")} {
				r, err := New(Options{Register: workflows.Register, Codec: c})
				require.NoError(t, err)
				f := r.Replay(h)
				require.NotNil(t, f, codecName)
				require.Equal(t, KindEncrypted, f.Kind, f.Error())
				require.Contains(t, f.Error(), "payloads are encrypted with key k1 and ")
				require.Contains(t, f.Error(), "set SAGAFLOW_CODEC_KEYS (--codec-keys) to a key file holding it")
				if c != nil {
					require.Contains(t, f.Error(), "the configured keys are k2")
				}
			}
		})
	}
}
