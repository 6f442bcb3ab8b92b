package main

import (
	"fmt"
	"reflect"
	"runtime"
	"strings"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
)

// entry is one catalog type with the payload shape of each of its versions.
type entry struct {
	Type    string
	Kind    events.Kind
	Version int
	// Payloads holds the payload struct of every version from 1 to Version.
	Payloads map[int]reflect.Type
	// Upcasters names the function upcasting version i+1 to i+2 at index i.
	Upcasters []string
	// Queue is the queue a command is sent to, "" for events and replies.
	Queue string
}

// commandQueues maps the service a command or query type starts with to
// the queue that service consumes.
var commandQueues = map[string]string{
	"ledger":    contract.LedgerQueue,
	"inventory": contract.InventoryQueue,
	"orders":    contract.OrdersQueryQueue,
}

// catalogEntries reads every registered type of the events catalog, with
// the frozen shapes of its older versions from legacyPayloads.
func catalogEntries() ([]entry, error) {
	var out []entry
	var errs []string
	for _, typ := range events.Types() {
		info, _ := events.Lookup(typ)
		e := entry{Type: typ, Kind: info.Kind, Version: info.Version, Payloads: map[int]reflect.Type{info.Version: info.PayloadType}}
		for v := 1; v < info.Version; v++ {
			t, ok := legacyPayloads[typ][v]
			if !ok {
				errs = append(errs, fmt.Sprintf("%s version %d has no payload struct in internal/asyncapi/legacy.go", typ, v))
				continue
			}
			e.Payloads[v] = t
		}
		for _, u := range events.Upcasters(typ) {
			e.Upcasters = append(e.Upcasters, funcName(u))
		}
		if info.Kind == events.KindCommand {
			service, _, _ := strings.Cut(typ, ".")
			q, ok := commandQueues[service]
			if !ok {
				errs = append(errs, fmt.Sprintf("command %s: no queue for service %q in internal/asyncapi commandQueues", typ, service))
			}
			e.Queue = q
		}
		out = append(out, e)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("catalog: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

// funcName is the package-qualified name of a function, such as
// "events.UpcastOrderPlacedV1".
func funcName(f any) string {
	name := runtime.FuncForPC(reflect.ValueOf(f).Pointer()).Name()
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	return name
}
