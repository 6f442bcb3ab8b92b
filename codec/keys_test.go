package codec

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

var (
	secretA = bytes.Repeat([]byte{0xa1}, KeySize)
	secretB = bytes.Repeat([]byte{0xb2}, KeySize)
)

func TestParseKeys(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		wantIDs []string
		wantErr string
	}{
		{name: "one key", file: "k1:" + b64(secretA) + "\n", wantIDs: []string{"k1"}},
		{name: "first encrypts, order kept", file: "k2:" + b64(secretB) + "\nk1:" + b64(secretA) + "\n", wantIDs: []string{"k2", "k1"}},
		{name: "comments, blanks and spaces", file: "# rotated 2026-11\n\n  k2 : " + b64(secretB) + "  \n# old\nk1:" + b64(secretA), wantIDs: []string{"k2", "k1"}},
		{name: "unpadded base64", file: "k1:" + base64.RawStdEncoding.EncodeToString(secretA), wantIDs: []string{"k1"}},
		{name: "empty file", file: "\n# nothing\n", wantErr: "no keys in the file"},
		{name: "no colon", file: "k1 " + b64(secretA), wantErr: "line 1: want id:base64key"},
		{name: "not base64", file: "k1:not*base64", wantErr: `line 1: key "k1" is not valid base64`},
		{name: "short key", file: "k1:" + b64(secretA[:16]), wantErr: `line 1: key "k1" is 16 bytes, want 32 (AES-256)`},
		{name: "long key", file: "k1:" + b64(append(secretA, 1)), wantErr: `line 1: key "k1" is 33 bytes, want 32 (AES-256)`},
		{name: "duplicate id", file: "k1:" + b64(secretA) + "\n\nk1:" + b64(secretB), wantErr: `line 3: key id "k1" is already on line 1`},
		{name: "bad id", file: "k 1:" + b64(secretA), wantErr: `line 1: key id "k 1": want 1 to 64 letters, digits, '.', '_' or '-'`},
		{name: "empty id", file: ":" + b64(secretA), wantErr: `line 1: key id "": want`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, err := ParseKeys(strings.NewReader(tt.file))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), "\n", "one line")
				require.NotContains(t, err.Error(), b64(secretA), "no key material in errors")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantIDs, ks.IDs())
		})
	}
}

func TestLoadKeysNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	_, err := LoadKeys(filepath.Join(dir, "missing"))
	require.EqualError(t, err, "key file "+filepath.Join(dir, "missing")+": no such file or directory")

	bad := filepath.Join(dir, "bad")
	require.NoError(t, os.WriteFile(bad, []byte("k1:"+b64(secretA[:31])), 0o600))
	_, err = LoadKeys(bad)
	require.EqualError(t, err, "key file "+bad+`: line 1: key "k1" is 31 bytes, want 32 (AES-256)`)

	good := filepath.Join(dir, "good")
	require.NoError(t, os.WriteFile(good, []byte("k1:"+b64(secretA)+"\n"), 0o600))
	c, err := Load(Config{KeysFile: good})
	require.NoError(t, err)
	require.Equal(t, "k1", c.EncryptingKeyID())

	off, err := Load(Config{})
	require.NoError(t, err)
	require.False(t, off.Enabled())
}

func TestNewKeysRejectsDuplicates(t *testing.T) {
	a, err := NewKey("k1", secretA)
	require.NoError(t, err)
	b, err := NewKey("k1", secretB)
	require.NoError(t, err)
	_, err = NewKeys(a, b)
	require.EqualError(t, err, `key id "k1" is listed twice`)
	_, err = NewKeys(Key{})
	require.Error(t, err)
}
