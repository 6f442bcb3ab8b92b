package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/sagastats"
)

// unreachable points every connection at a closed port so that a command
// that got past validation fails fast at run time.
var unreachable = []string{"--address", "127.0.0.1:1", "--amqp-url", "amqp://guest:guest@127.0.0.1:1/", "--dial-timeout", "300ms"}

func TestBadInputIsAOneLineUsageError(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"bogus"}, `unknown command "bogus"`},
		{"unknown subcommand", []string{"account", "close", "a"}, `unknown command "close" for "starter account"`},
		{"group without subcommand", []string{"account"}, "account needs a subcommand: open, deposit, balance, statement"},
		{"unknown flag", []string{"transfer", "--frm", "a"}, "unknown flag: --frm"},
		{"missing argument", []string{"account", "balance"}, "accepts 1 arg(s), received 0"},
		{"negative amount", []string{"transfer", "--from", "a", "--to", "b", "--amount", "-5"}, `amount "-5": must be positive`},
		{"zero amount", []string{"account", "deposit", "a", "--amount", "0"}, `amount "0": must be positive`},
		{"float noise", []string{"account", "deposit", "a", "--amount", "12.505"}, `amount "12.505": EUR has 2 decimals`},
		{"malformed amount", []string{"account", "deposit", "a", "--amount", "1e3"}, `amount "1e3": want minor units`},
		{"bad currency", []string{"transfer", "--from", "a", "--to", "b", "--amount", "5", "--currency", "eur"}, `currency "eur": want three upper-case letters`},
		{"same accounts", []string{"transfer", "--from", "a", "--to", "a", "--amount", "5"}, `--from and --to are the same account "a"`},
		{"missing accounts", []string{"transfer", "--amount", "5"}, "--from and --to are required"},
		{"negative initial balance", []string{"account", "open", "a", "--initial", "-1"}, "--initial -1: must not be negative"},
		{"malformed line", []string{"order", "--customer", "c", "--merchant", "m", "--line", "apple:2"}, `line "apple:2": want sku:quantity:unit-price`},
		{"zero quantity", []string{"order", "--customer", "c", "--merchant", "m", "--line", "apple:0:150"}, `line "apple:0:150": quantity must be positive`},
		{"negative price", []string{"publish", "--customer", "c", "--merchant", "m", "--line", "apple:1:-150"}, `line "apple:1:-150": unit price must be positive`},
		{"no lines", []string{"order", "--customer", "c", "--merchant", "m"}, "at least one --line"},
		{"customer is merchant", []string{"order", "--customer", "c", "--merchant", "c", "--line", "a:1:1"}, "merchant_id: must differ from customer_id"},
		{"reserve bad line", []string{"reserve", "--line", "apple"}, `line "apple": want sku:quantity`},
		{"reserve bad ttl", []string{"reserve", "--line", "apple:1", "--ttl", "-1s"}, "--ttl -1s: must be positive"},
		{"stock add without quantity", []string{"stock", "add", "apple"}, "--quantity 0: must be positive"},
		{"list bad status", []string{"list", "--status", "Done"}, `--status "Done": want one of Running, Compensating`},
		{"list quote injection", []string{"list", "--customer", "x' OR 'a'='a"}, "quotes and backslashes are not allowed"},
		{"orders needs a target", []string{"orders"}, "give an order id or --customer"},
		{"orders bad status", []string{"orders", "--customer", "c", "--status", "lost"}, `status: must be "placed"`},
		{"redrive needs ids or all", []string{"dead-letters", "redrive", "bridge"}, "give message ids or --all"},
		{"redrive bad reason pattern", []string{"dead-letters", "redrive", "bridge", "--reason", "a("}, `--reason "a(": error parsing regexp`},
		{"redrive all and ids", []string{"dead-letters", "redrive", "bridge", "--all", "m1"}, "--all takes no message ids"},
		{"purge needs a selection", []string{"dead-letters", "purge", "bridge"}, "give message ids or --all"},
		{"resolve needs a reason", []string{"resolve", "order-1"}, "--reason is required"},
		{"resolve needs a target", []string{"resolve", "--reason", "x"}, "give a saga id or --query"},
		{"retry id and query", []string{"retry-compensation", "order-1", "--query", "SagaStatus='CompensationFailed'"}, "give a saga id or --query, one of them"},
		{"load bad mix", []string{"load", "--mix", "transfer,refund"}, `--mix: unknown saga type "refund"`},
		{"load bad rate", []string{"load", "--failure-rate", "1.5"}, "--failure-rate 1.5: must be between 0 and 1"},
		{"load negative duration", []string{"load", "--duration", "-1m"}, "--duration -1m0s: must not be negative"},
		{"load malformed duration", []string{"load", "--duration", "soon"}, `invalid argument "soon" for "--duration"`},
		{"load no sagas", []string{"load", "--sagas", "0"}, "--sagas 0: must be positive"},
		{"load no concurrency", []string{"load", "--concurrency", "-2"}, "--concurrency -2: must be positive"},
		{"bad timeout", []string{"list", "--timeout", "0s"}, "--timeout 0s: must be positive"},
		{"tls halves", []string{"list", "--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, append(tc.args, unreachable...)...)
			require.Equal(t, exitUsage, code, "stderr: %s", errOut)
			require.Empty(t, out)
			first, _, _ := strings.Cut(errOut, "\n")
			require.True(t, strings.HasPrefix(first, "starter: "), errOut)
			require.Contains(t, first, tc.want)
			require.NotContains(t, errOut, "Usage:", "no usage dump")
			require.NotContains(t, errOut, "goroutine", "no stack trace")
		})
	}
}

func TestUnreachableServersFailFastWithOneLine(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"rabbitmq", []string{"account", "balance", "alice"}, "cannot reach RabbitMQ at amqp://guest:***@127.0.0.1:1/"},
		{"temporal", []string{"status", "transfer-x"}, "cannot reach Temporal at 127.0.0.1:1 (namespace default)"},
		{"temporal TLS CA", []string{"status", "transfer-x", "--tls-ca", "/nonexistent/ca.pem"}, "temporal TLS CA: open /nonexistent/ca.pem"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, nil, append(tc.args, unreachable...)...)
			require.Equal(t, exitFailure, code)
			require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
			require.Contains(t, errOut, "starter: "+tc.want)
		})
	}
}

func TestHelpForEverySubcommand(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"account", "--help"}, {"account", "open", "--help"}, {"account", "statement", "--help"},
		{"stock", "add", "--help"}, {"transfer", "--help"}, {"reserve", "--help"}, {"order", "--help"},
		{"publish", "--help"}, {"orders", "--help"}, {"status", "--help"}, {"history", "--help"}, {"list", "--help"},
		{"cancel", "--help"}, {"dead-letters", "redrive", "--help"}, {"load", "--help"},
	} {
		code, out, errOut := runCLI(t, nil, args...)
		require.Equal(t, exitOK, code, "%v: %s", args, errOut)
		require.Contains(t, out, "Usage:", "%v", args)
		require.Contains(t, out, "--address", "%v shows the global flags", args)
	}
}

func TestGlobalFlagsDefaultToTheWorkersEnvironment(t *testing.T) {
	a := newApp(func(k string) string {
		return map[string]string{
			"TEMPORAL_ADDRESS": "temporal:7233", "TEMPORAL_NAMESPACE": "sagas", "TEMPORAL_TASK_QUEUE": "q",
			"TEMPORAL_UI_URL": "https://ui.example", "AMQP_URL": "amqp://u:p@rabbit:5672/", "TEMPORAL_TLS_CA": "ca.pem",
			"AMQP_QUEUE_TYPE": "classic", "AMQP_DELIVERY_LIMIT": "9",
		}[k]
	}, nil, nil)
	root := a.rootCommand()
	require.NoError(t, root.ParseFlags(nil))
	require.Equal(t, "temporal:7233", a.cfg.Address)
	require.Equal(t, "sagas", a.cfg.Namespace)
	require.Equal(t, "q", a.cfg.TaskQueue)
	require.Equal(t, "amqp://u:p@rabbit:5672/", a.cfg.AMQPURL)
	require.Equal(t, "classic", a.cfg.AMQPQueueType)
	require.Equal(t, 9, a.cfg.AMQPDeliveryLimit)
	require.Equal(t, "ca.pem", a.cfg.TLSCA)
	require.Equal(t, "https://ui.example/namespaces/sagas/workflows/transfer-1", a.cfg.workflowURL("transfer-1"))

	// The worker's flag names work too.
	require.NoError(t, root.ParseFlags([]string{"--temporal-address", "other:7233"}))
	require.Equal(t, "other:7233", a.cfg.Address)

	d := newApp(func(string) string { return "" }, nil, nil)
	d.rootCommand()
	require.Equal(t, "127.0.0.1:7233", d.cfg.Address)
	require.Equal(t, "default", d.cfg.Namespace)
	require.Equal(t, "sagas", d.cfg.TaskQueue)
	require.Equal(t, "http://localhost:8233", d.cfg.UIURL)
	require.Equal(t, 30*time.Second, d.cfg.Timeout)
	require.Equal(t, "quorum", d.cfg.AMQPQueueType)
	require.Equal(t, 20, d.cfg.AMQPDeliveryLimit)
}

func TestAMQPNodeListIsValidatedEntryByEntry(t *testing.T) {
	a := newApp(func(k string) string {
		return map[string]string{"AMQP_URL": "amqp://u:pw@a:5672/, amqp://u:pw@b:port/"}[k]
	}, nil, nil)
	a.rootCommand()
	err := a.cfg.Validate()
	require.ErrorContains(t, err, "url 2 of 2 amqp://u:***@b:port/")
	require.NotContains(t, err.Error(), "pw")
}

func TestParseAmountIsExact(t *testing.T) {
	tests := []struct {
		in, currency string
		want         int64
		err          string
	}{
		{"1250", "EUR", 1250, ""},
		{"12.50", "EUR", 1250, ""},
		{"12.5", "EUR", 1250, ""},
		{"0.01", "EUR", 1, ""},
		{".5", "EUR", 50, ""},
		{"1000", "JPY", 1000, ""},
		{"1.5", "JPY", 0, "JPY has 0 decimals"},
		{"1.234", "KWD", 1234, ""},
		{"0.1", "EUR", 10, ""}, // 0.1 is not representable as a float; exact here
		{"92233720368547758.07", "EUR", 9223372036854775807, ""},
		{"92233720368547758.08", "EUR", 0, "out of range"},
		{"0", "EUR", 0, "must be positive"},
		{"-1", "EUR", 0, "must be positive"},
		{"1.", "EUR", 0, "want minor units"},
		{"1,50", "EUR", 0, "want minor units"},
		{"", "EUR", 0, "amount is required"},
	}
	for _, tc := range tests {
		got, err := parseAmount(tc.in, tc.currency)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
	require.Equal(t, "12.50 EUR", formatMoney(1250, "EUR"))
	require.Equal(t, "-0.05 EUR", formatMoney(-5, "EUR"))
	require.Equal(t, "1000 JPY", formatMoney(1000, "JPY"))
}

func TestOrderFlagsBuildAValidOrderPlaced(t *testing.T) {
	f := orderFlags{id: "o1", customer: "c", merchant: "m", currency: "EUR", lines: []string{"apple:2:150", "pear:1:0.99"}}
	o, err := f.order()
	require.NoError(t, err)
	require.Equal(t, events.OrderPlaced{OrderID: "o1", CustomerID: "c", MerchantID: "m", Currency: "EUR", Total: 399,
		Lines: []events.OrderLine{{SKU: "apple", Quantity: 2, UnitPrice: 150}, {SKU: "pear", Quantity: 1, UnitPrice: 99}}}, o)

	f.id = ""
	o, err = f.order()
	require.NoError(t, err)
	require.NotEmpty(t, o.OrderID, "an id is generated")
}

func TestTransferInputGeneratesAnID(t *testing.T) {
	in, err := transferInput("a", "b", "12.50", "EUR", "")
	require.NoError(t, err)
	require.NotEmpty(t, in.TransferID)
	require.EqualValues(t, 1250, in.Amount)
}

func TestListQuery(t *testing.T) {
	q, err := listFilter{SagaStatus: "Completed", Customer: "c1", Order: "o1", Type: "OrderWorkflow"}.query()
	require.NoError(t, err)
	require.Equal(t, "SagaStatus = 'Completed' AND CustomerId = 'c1' AND OrderId = 'o1' AND WorkflowType = 'OrderWorkflow'", q)
	q, err = listFilter{}.query()
	require.NoError(t, err)
	require.Empty(t, q)
}

func TestLoadReport(t *testing.T) {
	var samples []loadSample
	for i := 1; i <= 100; i++ {
		o := loadCompleted
		if i%10 == 0 {
			o = loadCompensated
		}
		if i == 100 {
			o = loadFailed
		}
		samples = append(samples, loadSample{Type: loadTransfer, Outcome: o, Latency: time.Duration(i) * time.Millisecond})
	}
	st := summarize(samples, 10*time.Second)
	tr := st.ByType[loadTransfer]
	require.Equal(t, loadTypeStats{Counts: sagastats.Counts{Count: 100, Completed: 90, Compensated: 9, Failed: 1}, P50ms: 50, P95ms: 95, P99ms: 99, Throughput: 10}, tr)
	require.InDelta(t, 10.0, st.Throughput, 1e-9)

	js, err := json.Marshal(st)
	require.NoError(t, err)
	require.Contains(t, string(js), `"p95_ms":95`)

	require.Equal(t, 100, st.Started)
	require.Zero(t, st.NotStarted)
	require.Equal(t, loadCompleted, classify(json.RawMessage(`{"outcome":"confirmed"}`), nil))
	require.Equal(t, loadCompensated, classify(json.RawMessage(`{"outcome":"failed"}`), nil))
	require.Equal(t, loadCompensated, classify(json.RawMessage(`{"outcome":"cancelled"}`), nil))
}

// A load stopped half way reports the sagas it did not start as "not
// started" under their own type, never as failed, and leaves them out of
// the throughput and the percentiles.
func TestLoadReportsSagasNotStarted(t *testing.T) {
	var samples []loadSample
	for i := range 10 {
		typ := []string{loadTransfer, loadOrder}[i%2]
		switch {
		case i < 4:
			samples = append(samples, loadSample{Type: typ, Outcome: loadCompleted, Latency: time.Duration(i+1) * time.Second})
		case i == 4:
			samples = append(samples, loadSample{Type: typ, Outcome: loadUnfinished})
		default:
			samples = append(samples, loadSample{Type: typ, Outcome: loadNotStarted})
		}
	}
	st := summarize(samples, 2*time.Second)
	st.StoppedBy = "--duration 2s"
	require.Equal(t, 10, st.Sagas)
	require.Equal(t, 5, st.Started)
	require.Equal(t, 5, st.NotStarted)
	require.InDelta(t, 2.5, st.Throughput, 1e-9, "started sagas per second")
	require.NotContains(t, st.ByType, "", "no row without a saga type")
	require.Equal(t, loadTypeStats{Counts: sagastats.Counts{Count: 5, Completed: 2, Unfinished: 1, NotStarted: 2}, P50ms: 1000, P95ms: 3000, P99ms: 3000, Throughput: 1.5}, st.ByType[loadTransfer])
	require.Equal(t, loadTypeStats{Counts: sagastats.Counts{Count: 5, Completed: 2, NotStarted: 3}, P50ms: 2000, P95ms: 4000, P99ms: 4000, Throughput: 1}, st.ByType[loadOrder])

	var b strings.Builder
	writeLoadReport(&b, st)
	require.Contains(t, b.String(), "stopped by --duration 2s: 5 of 10 sagas not started")
	require.Contains(t, b.String(), "completed 2, compensated 0, failed 0, unfinished 1, not started 2")
	require.Contains(t, b.String(), "completed 2, compensated 0, failed 0, not started 3")
}

func TestProgressOnAPipePrintsLines(t *testing.T) {
	var b strings.Builder
	p := &progress{w: &b, total: 3, counts: map[loadOutcome]int{}, interval: time.Hour}
	p.add(loadCompleted)
	p.add(loadFailed)
	p.add(loadCompensated)
	require.Equal(t, "1/3 sagas  completed 1  compensated 0  failed 0\n3/3 sagas  completed 1  compensated 1  failed 1\n", b.String())
}
