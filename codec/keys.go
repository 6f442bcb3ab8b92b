package codec

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// KeySize is the length of every key: AES-256.
const KeySize = 32

// keyIDPattern is what a key id may be: it travels in every payload's
// metadata and in error messages, so it stays short and printable.
var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Key is one AES-256 key and the id payloads name it by.
type Key struct {
	id     string
	secret []byte
}

// NewKey returns a key after checking its id and its length.
func NewKey(id string, secret []byte) (Key, error) {
	if !keyIDPattern.MatchString(id) {
		return Key{}, fmt.Errorf("key id %q: want 1 to 64 letters, digits, '.', '_' or '-'", id)
	}
	if len(secret) != KeySize {
		return Key{}, fmt.Errorf("key %q is %d bytes, want %d (AES-256)", id, len(secret), KeySize)
	}
	return Key{id: id, secret: bytes.Clone(secret)}, nil
}

// ID is the key's id.
func (k Key) ID() string { return k.id }

// Keys is an ordered key ring: the first key encrypts, every key decrypts.
// Rotating means putting a new key first and keeping the old ones listed
// for as long as payloads written under them must stay readable.
type Keys struct {
	list []Key
}

// NewKeys returns a key ring of keys, the first one encrypting. Ids must be
// unique.
func NewKeys(keys ...Key) (Keys, error) {
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if k.id == "" {
			return Keys{}, errors.New("a key without an id (use NewKey)")
		}
		if seen[k.id] {
			return Keys{}, fmt.Errorf("key id %q is listed twice", k.id)
		}
		seen[k.id] = true
	}
	return Keys{list: append([]Key(nil), keys...)}, nil
}

// Len is the number of keys.
func (ks Keys) Len() int { return len(ks.list) }

// IDs are the key ids, the encrypting one first.
func (ks Keys) IDs() []string {
	ids := make([]string, len(ks.list))
	for i, k := range ks.list {
		ids[i] = k.id
	}
	return ids
}

func (ks Keys) lookup(id string) (Key, bool) {
	for _, k := range ks.list {
		if k.id == id {
			return k, true
		}
	}
	return Key{}, false
}

// ParseKeys reads a key file: one "id:base64key" per line, the first key
// encrypting; blank lines and lines starting with '#' are ignored. The key
// is 32 bytes in standard base64 (`openssl rand -base64 32`). Errors name
// the line and never show key material.
func ParseKeys(r io.Reader) (Keys, error) {
	var keys []Key
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		id, b64, ok := strings.Cut(text, ":")
		if !ok {
			return Keys{}, fmt.Errorf("line %d: want id:base64key", line)
		}
		id, b64 = strings.TrimSpace(id), strings.TrimSpace(b64)
		if first, dup := seen[id]; dup {
			return Keys{}, fmt.Errorf("line %d: key id %q is already on line %d", line, id, first)
		}
		secret, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			if secret, err = base64.RawStdEncoding.DecodeString(b64); err != nil {
				return Keys{}, fmt.Errorf("line %d: key %q is not valid base64", line, id)
			}
		}
		k, err := NewKey(id, secret)
		if err != nil {
			return Keys{}, fmt.Errorf("line %d: %w", line, err)
		}
		seen[id] = line
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return Keys{}, err
	}
	if len(keys) == 0 {
		return Keys{}, errors.New("no keys in the file")
	}
	return NewKeys(keys...)
}

// LoadKeys reads the key file at path (see ParseKeys). Errors start with
// the path.
func LoadKeys(path string) (Keys, error) {
	f, err := os.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return Keys{}, fmt.Errorf("key file %s: %w", path, err)
	}
	defer f.Close()
	ks, err := ParseKeys(f)
	if err != nil {
		return Keys{}, fmt.Errorf("key file %s: %w", path, err)
	}
	return ks, nil
}
