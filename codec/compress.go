package codec

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
	"sync"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// encodingZlib is the encoding of a compressed payload: the same format as
// the SDK's converter.NewZlibCodec (the zlib stream of the marshalled
// payload), so either side can read the other's.
const encodingZlib = "binary/zlib"

// zlibCodec compresses like the SDK's zlib codec, keeping only what is
// smaller, but reuses its writers and readers: a fresh zlib writer
// allocates about a quarter of a megabyte, which costs more than the
// compression of a saga's small payloads itself.
type zlibCodec struct {
	writers sync.Pool // *zlib.Writer
	readers sync.Pool // io.ReadCloser that is a zlib.Resetter
}

func (z *zlibCodec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	var buf bytes.Buffer
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("compress payload: %w", err)
		}
		buf.Reset()
		w, _ := z.writers.Get().(*zlib.Writer)
		if w == nil {
			w = zlib.NewWriter(&buf)
		} else {
			w.Reset(&buf)
		}
		_, err = w.Write(plain)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		z.writers.Put(w)
		if err != nil {
			return nil, fmt.Errorf("compress payload: %w", err)
		}
		if buf.Len() >= len(plain) {
			out[i] = p
			continue
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{converter.MetadataEncoding: []byte(encodingZlib)},
			Data:     bytes.Clone(buf.Bytes()),
		}
	}
	return out, nil
}

func (z *zlibCodec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != encodingZlib {
			out[i] = p
			continue
		}
		plain, err := z.inflate(p.GetData())
		if err != nil {
			return nil, fmt.Errorf("decompress payload: %w", err)
		}
		var orig commonpb.Payload
		if err := proto.Unmarshal(plain, &orig); err != nil {
			return nil, fmt.Errorf("decompress payload: not a payload: %w", err)
		}
		out[i] = &orig
	}
	return out, nil
}

func (z *zlibCodec) inflate(data []byte) ([]byte, error) {
	src := bytes.NewReader(data)
	r, _ := z.readers.Get().(io.ReadCloser)
	if r == nil {
		var err error
		if r, err = zlib.NewReader(src); err != nil {
			return nil, err
		}
	} else if err := r.(zlib.Resetter).Reset(src, nil); err != nil {
		return nil, err
	}
	plain, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	z.readers.Put(r)
	return plain, nil
}
