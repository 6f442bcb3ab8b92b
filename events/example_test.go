package events_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/sagaflow/sagaflow/events"
)

func Example() {
	// A saga step publishes a fact with an id derived from its workflow and
	// step, so a retry publishes the same id and consumers drop the copy.
	env, err := events.New(events.TypeTransferCompleted, "workflow/transfer-42",
		events.TransferCompleted{
			TransferID: "42", SourceAccountID: "alice", TargetAccountID: "bob",
			Amount: events.Money{Amount: 1050, Currency: "EUR"},
		},
		events.WithID(events.DeterministicID("transfer-42", "completed")),
		events.WithCorrelationID("transfer-42"),
		events.WithTime(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)),
	)
	if err != nil {
		panic(err)
	}
	b, err := env.Encode()
	if err != nil {
		panic(err)
	}

	// A consumer decodes it into the typed payload.
	got, p, err := events.DecodeAs[events.TransferCompleted](b)
	fmt.Println(got.Type, got.ID == env.ID, p.Amount, err)

	// A poison message is told apart from one not understood yet.
	_, _, err = events.Decode([]byte(`{"specversion":`))
	fmt.Println(errors.Is(err, events.ErrMalformed))
	// Output:
	// transfer.completed true 1050 EUR <nil>
	// true
}
