package events

import (
	"strconv"

	"github.com/google/uuid"
)

// IDNamespace is the UUID namespace under which DeterministicID derives
// name-based (version 5, SHA-1) UUIDs. It is fixed forever: changing it would
// give a retried step a new id and defeat deduplication.
const IDNamespace = "5f9796ee-fd36-4120-8cc9-096535b9a6f5"

var idNamespace = uuid.MustParse(IDNamespace)

// DeterministicID returns the envelope id of step step of workflow workflowID:
// a version 5 UUID, the same for the same inputs on every call and every
// machine, so a retried activity resends the same id and its consumer
// deduplicates it. Each input is length-prefixed before hashing, so
// ("a/b", "c") and ("a", "b/c") give different ids.
func DeterministicID(workflowID, step string) string {
	name := make([]byte, 0, len(workflowID)+len(step)+24)
	name = strconv.AppendInt(name, int64(len(workflowID)), 10)
	name = append(name, ':')
	name = append(name, workflowID...)
	name = strconv.AppendInt(name, int64(len(step)), 10)
	name = append(name, ':')
	name = append(name, step...)
	return uuid.NewSHA1(idNamespace, name).String()
}

// newRandomID returns a random (version 4) UUID for envelopes that need no
// deterministic id.
func newRandomID() string {
	return uuid.NewString()
}
