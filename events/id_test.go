package events_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/events"
)

func TestDeterministicIDIsStable(t *testing.T) {
	id := events.DeterministicID("transfer-42", "withdraw")
	require.Equal(t, id, events.DeterministicID("transfer-42", "withdraw"))
	// Pinned: a change here would give every retried step a new id after an
	// upgrade, and its consumer would apply it twice.
	require.Equal(t, "f813fbd6-0904-5fcb-9c3a-4523571385b7", id)

	u, err := uuid.Parse(id)
	require.NoError(t, err)
	require.Equal(t, uuid.Version(5), u.Version())
	require.Equal(t, uuid.RFC4122, u.Variant())
}

func TestDeterministicIDDiffersForDifferentInputs(t *testing.T) {
	pairs := [][2]string{
		{"transfer-42", "withdraw"},
		{"transfer-42", "deposit"},
		{"transfer-43", "withdraw"},
		{"a/b", "c"},
		{"a", "b/c"},
		{"ab", "c"},
		{"a", "bc"},
		{"", "abc"},
		{"abc", ""},
		{"", ""},
		{"1:a", ""},
		{"", "1:a"},
		{"a1:", "b"},
	}
	seen := map[string][2]string{}
	for _, p := range pairs {
		id := events.DeterministicID(p[0], p[1])
		prev, dup := seen[id]
		require.False(t, dup, "%q and %q share id %s", p, prev, id)
		seen[id] = p
	}
}

func TestDeterministicIDUsesTheProjectNamespace(t *testing.T) {
	ns := uuid.MustParse(events.IDNamespace)
	// "11:transfer-42" + "8:withdraw": the length-prefixed name.
	want := uuid.NewSHA1(ns, []byte("11:transfer-428:withdraw")).String()
	require.Equal(t, want, events.DeterministicID("transfer-42", "withdraw"))
}
