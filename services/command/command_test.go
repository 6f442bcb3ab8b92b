package command_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/services/command"
	"github.com/sagaflow/sagaflow/services/command/commandtest"
	"github.com/sagaflow/sagaflow/services/store"
	"github.com/sagaflow/sagaflow/services/store/storetest"
)

func TestEventsGoToTheConfiguredExchange(t *testing.T) {
	tests := []struct {
		name, exchange, want string
	}{
		{"default", "", "sagas.events"},
		{"configured", "tenant-a.events", "tenant-a.events"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := storetest.Open(t, store.SQLite)
			proc, err := command.NewProcessor(db, command.Config{Service: "ledger", Exchange: tt.exchange})
			require.NoError(t, err)
			proc.Handle(events.CmdLedgerDeposit, func(_ context.Context, _ *store.Tx, cmd command.Command) (command.Outcome, error) {
				dep := cmd.Payload.(events.LedgerDeposit)
				return command.Accept(nil, command.Event{Type: events.TypeFundsDeposited, Subject: dep.AccountID,
					Payload: events.FundsDeposited{AccountID: dep.AccountID, Amount: dep.Amount, Balance: dep.Amount}}), nil
			})
			env := commandtest.Envelope(t, events.CmdLedgerDeposit,
				events.LedgerDeposit{AccountID: "acc", Amount: events.Money{Amount: 5, Currency: "EUR"}})
			require.True(t, commandtest.DeliverInProcess(t, proc, db, "ledger", env).Accepted())

			rows, err := db.Outbox(t.Context(), "ledger")
			require.NoError(t, err)
			routes := map[string][2]string{}
			for _, r := range rows {
				routes[r.Message.Type] = [2]string{r.Message.Exchange, r.Message.RoutingKey}
			}
			require.Equal(t, map[string][2]string{
				events.TypeFundsDeposited: {tt.want, events.TypeFundsDeposited},
				events.TypeCommandReplied: {"", "replies"},
			}, routes, "the event on the event exchange, the reply straight to the reply-to queue")
		})
	}
}
