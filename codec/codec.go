package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

const (
	// EnvKeys is the environment variable every process of the system reads
	// its key file's path from; unset, payloads are not encrypted.
	EnvKeys = "SAGAFLOW_CODEC_KEYS"
	// EnvCompress turns compression before encryption on ("true").
	EnvCompress = "SAGAFLOW_CODEC_COMPRESS"

	// EncodingEncrypted is the metadata encoding of an encrypted payload.
	EncodingEncrypted = "binary/encrypted"
	// MetadataKeyID is the metadata entry naming the key a payload is
	// encrypted with.
	MetadataKeyID = "encryption-key-id"
)

// Options tune a Codec.
type Options struct {
	// Compress compresses a payload with zlib before encrypting it, when
	// that makes it smaller (ciphertext does not compress). Decoding
	// handles compressed payloads either way. Default false.
	Compress bool
}

// Codec is a converter.PayloadCodec that encrypts every payload with
// AES-256-GCM under the first key of its ring, with a fresh random nonce,
// and decrypts payloads under any key of the ring. The whole payload,
// metadata included, is the plaintext, so decoding restores it exactly;
// the key id is authenticated data, so a payload relabelled with another
// key id fails to decrypt. A Codec without keys passes payloads through
// when encoding and reports which key an encrypted payload needs when
// decoding. It is safe for concurrent use.
type Codec struct {
	keys  Keys
	aeads map[string]cipher.AEAD
	zlib  *zlibCodec
	opts  Options
}

var _ converter.PayloadCodec = (*Codec)(nil)

// New returns a codec with the key ring keys (empty: encryption off).
func New(keys Keys, opts Options) (*Codec, error) {
	c := &Codec{
		keys:  keys,
		aeads: make(map[string]cipher.AEAD, keys.Len()),
		zlib:  &zlibCodec{},
		opts:  opts,
	}
	for _, k := range keys.list {
		block, err := aes.NewCipher(k.secret)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k.id, err)
		}
		gcm, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k.id, err)
		}
		c.aeads[k.id] = gcm
	}
	return c, nil
}

// Enabled reports whether the codec encrypts: it has at least one key.
func (c *Codec) Enabled() bool { return c.keys.Len() > 0 }

// EncryptingKeyID is the id of the key new payloads are encrypted with, or
// "" when encryption is off.
func (c *Codec) EncryptingKeyID() string {
	if !c.Enabled() {
		return ""
	}
	return c.keys.list[0].id
}

// KeyIDs are the ids of the ring's keys, the encrypting one first.
func (c *Codec) KeyIDs() []string { return c.keys.IDs() }

// Encode implements converter.PayloadCodec.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	if !c.Enabled() {
		return payloads, nil
	}
	if c.opts.Compress {
		var err error
		if payloads, err = c.zlib.Encode(payloads); err != nil {
			return nil, err
		}
	}
	id := c.keys.list[0].id
	gcm := c.aeads[id]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("encrypt payload: %w", err)
		}
		nonce := make([]byte, gcm.NonceSize(), gcm.NonceSize()+len(plain)+gcm.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("encrypt payload: nonce: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(EncodingEncrypted),
				MetadataKeyID:              []byte(id),
			},
			Data: gcm.Seal(nonce, nonce, plain, []byte(id)),
		}
	}
	return out, nil
}

// Decode implements converter.PayloadCodec. Payloads that are not
// encrypted pass through. A payload under a key the ring does not hold is
// an *UnknownKeyError; one that fails authentication is a *DecryptError.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != EncodingEncrypted {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		gcm, ok := c.aeads[id]
		if !ok {
			return nil, &UnknownKeyError{KeyID: id, Known: c.keys.IDs()}
		}
		if len(p.GetData()) < gcm.NonceSize()+gcm.Overhead() {
			return nil, &DecryptError{KeyID: id}
		}
		nonce, sealed := p.GetData()[:gcm.NonceSize()], p.GetData()[gcm.NonceSize():]
		plain, err := gcm.Open(nil, nonce, sealed, []byte(id))
		if err != nil {
			return nil, &DecryptError{KeyID: id}
		}
		var orig commonpb.Payload
		if err := proto.Unmarshal(plain, &orig); err != nil {
			return nil, fmt.Errorf("payload under key %q: decrypted bytes are not a payload: %w", id, err)
		}
		out[i] = &orig
	}
	return c.zlib.Decode(out)
}

// DataConverter is the SDK's default data converter with this codec
// around it: what every client and worker of the system is built with.
func (c *Codec) DataConverter() converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// FailureConverter is the default failure converter on DataConverter.
// With encryption on it also moves failure messages and stack traces into
// an encrypted payload: a business rejection's message names accounts.
func (c *Codec) FailureConverter() converter.FailureConverter {
	return copyingFailureConverter{temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter:          c.DataConverter(),
		EncodeCommonAttributes: c.Enabled(),
	})}
}

// copyingFailureConverter decodes a copy of the failure it turns into an
// error. The SDK's default converter decodes the failure in place, and the
// Go SDK hands the failure of a local activity's marker to the workflow
// before it sends the marker: decoded in place, a failed local activity's
// message (a rejection names amounts and accounts) would reach the history
// in plaintext beside its encrypted copy.
type copyingFailureConverter struct{ converter.FailureConverter }

func (c copyingFailureConverter) FailureToError(f *failurepb.Failure) error {
	if f == nil {
		return nil
	}
	return c.FailureConverter.FailureToError(proto.Clone(f).(*failurepb.Failure))
}

// UnknownKeyError is an encrypted payload whose key the ring does not hold.
type UnknownKeyError struct {
	// KeyID is the key the payload needs ("" when its metadata names none).
	KeyID string
	// Known are the ring's key ids.
	Known []string
}

func (e *UnknownKeyError) Error() string {
	if e.KeyID == "" {
		return "encrypted payload without a key id"
	}
	if len(e.Known) == 0 {
		return fmt.Sprintf("payload is encrypted with key %q and no key is configured (set %s to a key file holding it)", e.KeyID, EnvKeys)
	}
	return fmt.Sprintf("payload is encrypted with key %q, which is not among the configured keys (%s)", e.KeyID, strings.Join(e.Known, ", "))
}

// DecryptError is an encrypted payload that failed authentication: its
// ciphertext was changed, or it was written under another key with the
// same id.
type DecryptError struct {
	// KeyID is the key the payload names.
	KeyID string
}

func (e *DecryptError) Error() string {
	return fmt.Sprintf("payload under key %q failed authentication (tampered, or written with a different key of that id)", e.KeyID)
}

// KeyIDOf returns the key id an encrypted payload names, and whether the
// payload is encrypted at all.
func KeyIDOf(p *commonpb.Payload) (string, bool) {
	if string(p.GetMetadata()[converter.MetadataEncoding]) != EncodingEncrypted {
		return "", false
	}
	return string(p.GetMetadata()[MetadataKeyID]), true
}
