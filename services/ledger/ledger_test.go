package ledger

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/amqp"
	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/services/command"
	"github.com/sagaflow/sagaflow/services/command/commandtest"
	"github.com/sagaflow/sagaflow/services/store"
	"github.com/sagaflow/sagaflow/services/store/storetest"
)

// send delivers one command and returns its reply.
type send func(t *testing.T, env events.Envelope) events.Reply

// inProcess delivers straight into the processor and reads the stored reply.
func inProcess(s *Service) send {
	return func(t *testing.T, env events.Envelope) events.Reply {
		t.Helper()
		return commandtest.DeliverInProcess(t, s.proc, s.db, ServiceName, env)
	}
}

// newService builds the ledger on db and migrates its schema.
func newService(t testing.TB, db *store.DB, cfg Config) *Service {
	t.Helper()
	s, err := New(db, cfg)
	require.NoError(t, err)
	require.NoError(t, s.Migrate(context.Background()))
	return s
}

func eur(n int64) events.Money { return events.Money{Amount: n, Currency: "EUR"} }

type step struct {
	name        string
	env         func(t *testing.T, acct string) events.Envelope
	wantReason  string // "" for accepted
	wantBalance int64  // checked when accepted and >= 0
}

func cmd(typ string, p func(acct string) events.Payload) func(t *testing.T, acct string) events.Envelope {
	return func(t *testing.T, acct string) events.Envelope { return commandtest.Envelope(t, typ, p(acct)) }
}

func raw(typ, data string, p func(acct string) events.Payload) func(t *testing.T, acct string) events.Envelope {
	return func(t *testing.T, acct string) events.Envelope {
		return commandtest.WithData(commandtest.Envelope(t, typ, p(acct)), data)
	}
}

// ledgerSteps is the life of one account through every command and every
// rejection, in order; each step's expectation depends on the ones before.
var ledgerSteps = []step{
	{"open", cmd(events.CmdLedgerOpen, func(a string) events.Payload {
		return events.LedgerOpen{AccountID: a, Currency: "EUR", Owner: "ann", InitialBalance: 100}
	}), "", 100},
	{"open again", cmd(events.CmdLedgerOpen, func(a string) events.Payload {
		return events.LedgerOpen{AccountID: a, Currency: "EUR"}
	}), events.ReasonAccountExists, -1},
	{"open with negative balance", raw(events.CmdLedgerOpen, `{"account_id":"neg","currency":"EUR","initial_balance":-5}`, func(a string) events.Payload {
		return events.LedgerOpen{AccountID: a, Currency: "EUR"}
	}), events.ReasonInvalidAmount, -1},
	{"deposit", cmd(events.CmdLedgerDeposit, func(a string) events.Payload {
		return events.LedgerDeposit{AccountID: a, Amount: eur(50), TransferID: "t1"}
	}), "", 150},
	{"deposit zero", raw(events.CmdLedgerDeposit, `{"account_id":"x","amount":{"amount":0,"currency":"EUR"}}`, func(a string) events.Payload {
		return events.LedgerDeposit{AccountID: a, Amount: eur(1)}
	}), events.ReasonInvalidAmount, -1},
	{"deposit other currency", cmd(events.CmdLedgerDeposit, func(a string) events.Payload {
		return events.LedgerDeposit{AccountID: a, Amount: events.Money{Amount: 5, Currency: "USD"}}
	}), events.ReasonCurrencyMismatch, -1},
	{"deposit to unknown account", cmd(events.CmdLedgerDeposit, func(a string) events.Payload {
		return events.LedgerDeposit{AccountID: a + "-nope", Amount: eur(5)}
	}), events.ReasonUnknownAccount, -1},
	{"withdraw more than balance", cmd(events.CmdLedgerWithdraw, func(a string) events.Payload {
		return events.LedgerWithdraw{AccountID: a, Amount: eur(151)}
	}), events.ReasonInsufficientFunds, -1},
	{"withdraw", cmd(events.CmdLedgerWithdraw, func(a string) events.Payload {
		return events.LedgerWithdraw{AccountID: a, Amount: eur(120), TransferID: "t2"}
	}), "", 30},
	{"withdraw negative", raw(events.CmdLedgerWithdraw, `{"account_id":"x","amount":{"amount":-3,"currency":"EUR"}}`, func(a string) events.Payload {
		return events.LedgerWithdraw{AccountID: a, Amount: eur(1)}
	}), events.ReasonInvalidAmount, -1},
	{"freeze", cmd(events.CmdLedgerFreeze, func(a string) events.Payload {
		return events.LedgerFreeze{AccountID: a, Reason: "audit"}
	}), "", 30},
	{"freeze again is a no-op", cmd(events.CmdLedgerFreeze, func(a string) events.Payload {
		return events.LedgerFreeze{AccountID: a}
	}), "", 30},
	{"deposit to frozen", cmd(events.CmdLedgerDeposit, func(a string) events.Payload {
		return events.LedgerDeposit{AccountID: a, Amount: eur(5)}
	}), events.ReasonAccountFrozen, -1},
	{"withdraw from frozen", cmd(events.CmdLedgerWithdraw, func(a string) events.Payload {
		return events.LedgerWithdraw{AccountID: a, Amount: eur(5)}
	}), events.ReasonAccountFrozen, -1},
	{"refund to frozen applies", cmd(events.CmdLedgerRefund, func(a string) events.Payload {
		return events.LedgerRefund{AccountID: a, Amount: eur(20), TransferID: "t2"}
	}), "", 50},
	{"refund in other currency", cmd(events.CmdLedgerRefund, func(a string) events.Payload {
		return events.LedgerRefund{AccountID: a, Amount: events.Money{Amount: 5, Currency: "USD"}}
	}), events.ReasonCurrencyMismatch, -1},
	{"refund to unknown account", cmd(events.CmdLedgerRefund, func(a string) events.Payload {
		return events.LedgerRefund{AccountID: a + "-nope", Amount: eur(5)}
	}), events.ReasonUnknownAccount, -1},
	{"close", cmd(events.CmdLedgerClose, func(a string) events.Payload {
		return events.LedgerClose{AccountID: a, Reason: "customer left"}
	}), "", 50},
	{"withdraw from closed", cmd(events.CmdLedgerWithdraw, func(a string) events.Payload {
		return events.LedgerWithdraw{AccountID: a, Amount: eur(5)}
	}), events.ReasonAccountClosed, -1},
	{"deposit to closed", cmd(events.CmdLedgerDeposit, func(a string) events.Payload {
		return events.LedgerDeposit{AccountID: a, Amount: eur(5)}
	}), events.ReasonAccountClosed, -1},
	{"refund to closed applies", cmd(events.CmdLedgerRefund, func(a string) events.Payload {
		return events.LedgerRefund{AccountID: a, Amount: eur(5)}
	}), "", 55},
	{"freeze closed", cmd(events.CmdLedgerFreeze, func(a string) events.Payload {
		return events.LedgerFreeze{AccountID: a}
	}), events.ReasonAccountClosed, -1},
	{"close again", cmd(events.CmdLedgerClose, func(a string) events.Payload {
		return events.LedgerClose{AccountID: a}
	}), events.ReasonAccountClosed, -1},
	{"freeze unknown", cmd(events.CmdLedgerFreeze, func(a string) events.Payload {
		return events.LedgerFreeze{AccountID: a + "-nope"}
	}), events.ReasonUnknownAccount, -1},
	{"close unknown", cmd(events.CmdLedgerClose, func(a string) events.Payload {
		return events.LedgerClose{AccountID: a + "-nope"}
	}), events.ReasonUnknownAccount, -1},
}

// runSteps plays ledgerSteps through send and checks every reply.
func runSteps(t *testing.T, s send) (acct string, sent []events.Envelope) {
	acct = "acct-" + uuid.NewString()
	for _, st := range ledgerSteps {
		t.Run(st.name, func(t *testing.T) {
			env := st.env(t, acct)
			sent = append(sent, env)
			r := s(t, env)
			require.Equal(t, env.ID, r.CommandID)
			require.Equal(t, env.Type, r.CommandType)
			if st.wantReason != "" {
				require.Equal(t, events.ReplyRejected, r.Status, r.Message)
				require.Equal(t, st.wantReason, r.Reason)
				return
			}
			require.Equal(t, events.ReplyAccepted, r.Status, "%s: %s", r.Reason, r.Message)
			a := commandtest.Result[contract.Account](t, r)
			require.Equal(t, st.wantBalance, a.Balance)
		})
	}
	return acct, sent
}

func TestCommands(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		s := newService(t, db, Config{})
		acct, sent := runSteps(t, inProcess(s))

		ctx := context.Background()
		a, err := s.Balance(ctx, acct)
		require.NoError(t, err)
		require.Equal(t, contract.Account{ID: acct, Owner: "ann", Currency: "EUR", Balance: 55, Status: contract.AccountClosed, Version: 7}, a)

		st, err := s.Statement(ctx, acct)
		require.NoError(t, err)
		var types []string
		for _, e := range st.Events {
			types = append(types, e.Type)
			require.NotEmpty(t, e.CommandID)
			require.Contains(t, e.CorrelationID, "saga-")
		}
		require.Equal(t, []string{contract.AccountEventOpened, contract.AccountEventDeposited, contract.AccountEventWithdrawn, contract.AccountEventFrozen,
			contract.AccountEventRefunded, contract.AccountEventClosed, contract.AccountEventRefunded}, types)

		// Each stream event names the command and saga that caused it.
		byID := map[string]events.Envelope{}
		for _, env := range sent {
			byID[env.ID] = env
		}
		for _, e := range st.Events {
			require.Equal(t, byID[e.CommandID].CorrelationID, e.CorrelationID)
		}

		// Exactly the funds.* stream events are published, caused by their
		// commands, with ids derived from the command ids.
		_, published := commandtest.Outbox(t, db, ServiceName)
		var pubTypes []string
		for _, env := range published {
			pubTypes = append(pubTypes, env.Type)
			cause := byID[env.CausationID]
			require.Equal(t, cause.CorrelationID, env.CorrelationID)
			require.Equal(t, events.DeterministicID(cause.ID, "event/0/"+env.Type), env.ID)
		}
		require.Equal(t, []string{events.TypeFundsDeposited, events.TypeFundsWithdrawn, events.TypeFundsRefunded, events.TypeFundsRefunded}, pubTypes)
		_, w, err := events.DecodeAs[events.FundsWithdrawn](mustEncode(t, published[1]))
		require.NoError(t, err)
		require.Equal(t, events.FundsWithdrawn{AccountID: acct, Amount: eur(120), Balance: eur(30), TransferID: "t2"}, w)

		_, err = s.Balance(ctx, "nobody")
		require.ErrorIs(t, err, ErrUnknownAccount)
		_, err = s.Statement(ctx, "nobody")
		require.ErrorIs(t, err, ErrUnknownAccount)
	})
}

func mustEncode(t *testing.T, env events.Envelope) []byte {
	b, err := env.Encode()
	require.NoError(t, err)
	return b
}

func TestRepeatedCommandChangesStateOnce(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newService(t, db, Config{})
		send := inProcess(s)
		acct := "acct-" + uuid.NewString()
		send(t, commandtest.Envelope(t, events.CmdLedgerOpen, events.LedgerOpen{AccountID: acct, Currency: "EUR"}))
		dep := commandtest.Envelope(t, events.CmdLedgerDeposit, events.LedgerDeposit{AccountID: acct, Amount: eur(7)})
		for range 3 {
			require.NoError(t, s.proc.Deliver(ctx, commandtest.Delivery(t, dep)))
		}
		a, err := s.Balance(ctx, acct)
		require.NoError(t, err)
		require.EqualValues(t, 7, a.Balance)

		rows, err := db.Outbox(ctx, ServiceName)
		require.NoError(t, err)
		var replies [][]byte
		deposits := 0
		for _, r := range rows {
			if r.Message.Type == events.TypeCommandReplied && r.Message.ID == command.ReplyID(dep.ID) {
				replies = append(replies, r.Message.Body)
			}
			if r.Message.Type == events.TypeFundsDeposited {
				deposits++
			}
		}
		require.Len(t, replies, 3, "every delivery is answered")
		require.Equal(t, replies[0], replies[1])
		require.Equal(t, replies[0], replies[2])
		require.Equal(t, 1, deposits, "the event is published once")
	})
}

func TestMalformedCommandsAreDeadLettered(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		s := newService(t, db, Config{})
		valid := commandtest.Envelope(t, events.CmdLedgerFreeze, events.LedgerFreeze{AccountID: "a"})
		other := commandtest.Envelope(t, events.CmdInventoryCommit, events.InventoryCommit{ReservationID: "r"})
		tests := []struct {
			name string
			d    amqp.Delivery
		}{
			{"not JSON", amqp.Delivery{Message: amqp.Message{ID: "x", Body: []byte("{nope")}}},
			{"unknown type", amqp.Delivery{Message: amqp.Message{ID: "y", Body: []byte(`{"specversion":"1.0","id":"y","source":"t","type":"ledger.explode","time":"2024-01-01T00:00:00Z","datacontenttype":"application/json","dataversion":1,"data":{}}`)}}},
			{"another service's command", commandtest.Delivery(t, other)},
			{"missing account id", commandtest.Delivery(t, commandtest.WithData(valid, `{"reason":"x"}`))},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := s.proc.Deliver(context.Background(), tt.d)
				require.Error(t, err)
				require.True(t, amqp.IsPermanent(err), "%v", err)
			})
		}
		replies, _ := commandtest.Outbox(t, db, ServiceName)
		require.Empty(t, replies)
	})
}

func TestSnapshotPlusTailEqualsFullReplay(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newService(t, db, Config{SnapshotEvery: 4})
		send := inProcess(s)
		acct := "acct-" + uuid.NewString()
		send(t, commandtest.Envelope(t, events.CmdLedgerOpen, events.LedgerOpen{AccountID: acct, Currency: "EUR", InitialBalance: 10}))
		for i := range 10 {
			typ, p := events.CmdLedgerDeposit, events.Payload(events.LedgerDeposit{AccountID: acct, Amount: eur(int64(i + 1))})
			if i%3 == 2 {
				typ, p = events.CmdLedgerWithdraw, events.LedgerWithdraw{AccountID: acct, Amount: eur(2)}
			}
			require.Equal(t, events.ReplyAccepted, send(t, commandtest.Envelope(t, typ, p)).Status)
		}
		snap, err := s.es.snapshot(ctx, db, acct)
		require.NoError(t, err)
		require.EqualValues(t, 8, snap.Version, "a snapshot at the last multiple of 4")

		loaded, err := s.es.load(ctx, db, acct)
		require.NoError(t, err)
		replayed, err := s.es.replay(ctx, db, acct)
		require.NoError(t, err)
		require.Equal(t, replayed, loaded)
		require.EqualValues(t, 11, loaded.Version)

		// Loading really starts at the snapshot: without the events it
		// covers, load still works while a full replay cannot.
		_, err = db.Exec(ctx, "DELETE FROM ledger_events WHERE stream_id = ? AND version <= 8", acct)
		require.NoError(t, err)
		fromSnapshot, err := s.es.load(ctx, db, acct)
		require.NoError(t, err)
		require.Equal(t, loaded, fromSnapshot)
		_, err = s.es.replay(ctx, db, acct)
		require.Error(t, err)
	})
}

func TestStaleAppendIsAConflict(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newService(t, db, Config{})
		acct := "acct-" + uuid.NewString()
		inProcess(s)(t, commandtest.Envelope(t, events.CmdLedgerOpen, events.LedgerOpen{AccountID: acct, Currency: "EUR"}))
		stale := contract.Account{} // version 0: someone else already appended version 1
		err := db.InTx(ctx, func(tx *store.Tx) error {
			_, err := s.es.append(ctx, tx, stale, acct, []newEvent{{contract.AccountEventFrozen, contract.AccountStatusChanged{}}}, "c", "k")
			return err
		})
		require.ErrorIs(t, err, command.ErrConflict)
	})
}
