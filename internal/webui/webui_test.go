package webui_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
	"github.com/sagaflow/sagaflow/internal/systemtest"
	"github.com/sagaflow/sagaflow/internal/temporaltest"
	"github.com/sagaflow/sagaflow/internal/testenv"
)

// Environment variables the test reads.
const (
	// envChromium overrides the browser binary (default defaultChromium).
	envChromium = "CHROMIUM_PATH"
	// envScreenshotDir keeps the screenshots in a fixed directory instead of
	// the test's artifact directory (removed after the run unless go test
	// runs with -artifacts).
	envScreenshotDir = "WEBUI_SCREENSHOT_DIR"
)

const defaultChromium = "/usr/bin/chromium"

// uiPort is where the shared dev server serves its Web UI, chosen free when
// the test binary starts.
var uiPort int

func TestMain(m *testing.M) {
	port, err := freePort()
	if err != nil {
		fmt.Fprintln(os.Stderr, "webui: choose a port for the Web UI:", err)
		os.Exit(2)
	}
	uiPort = port
	// The UI decodes every payload through the codec server, which passes
	// unencrypted ones through: one dev server serves both tests.
	endpoint, stopCodec, err := startCodecServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "webui: start the codec server:", err)
		os.Exit(2)
	}
	temporaltest.AtExit(stopCodec)
	// The whole system (systemtest) uses the shared dev server, which
	// serves the UI only when asked to from the start.
	temporaltest.MainWith(m, temporaltest.Config{UIPort: uiPort, UICodecEndpoint: endpoint})
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// page is a workflow's page in the Web UI and what it must show.
type page struct {
	// name names its screenshot.
	name string
	// workflowID is the workflow whose page it is.
	workflowID string
	// status is the workflow's status as the UI writes it.
	status string
	// events must be rows of the event history list, in this order: the row
	// of an event type that shows a detail (an activity type, a child's
	// workflow type, a signal name) on a line of its own.
	events []event
	// timeline are labels the timeline above the list must show.
	timeline []string
}

// event is a row of the event history list.
type event struct{ typ, detail string }

// TestOrderCompensationInWebUI runs an order whose payment is refused for
// insufficient funds through the whole system, so the saga releases the
// reserved stock, then checks in headless Chromium what the Web UI shows:
// the order saga, completed, with its step (ReserveInventory), the hold's
// time-to-live timer, its payment child and, after it, its compensation
// (ReleaseInventory); the payment's transfer saga, completed, with its
// refused withdrawal.
func TestOrderCompensationInWebUI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole system and a browser")
	}
	chromium := chromiumPath(t)
	sys := systemtest.Start(t, systemtest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	order, _, res := runCompensatedOrder(ctx, t, sys, sys.Temporal, "")
	require.Equal(t, "insufficient_funds", res.Reason)
	require.Equal(t, contract.StepOrderPayment, res.FailedStep)

	pages := []page{
		{
			name:       "order",
			workflowID: contract.OrderWorkflowID(order.OrderID),
			status:     "Completed",
			events: []event{
				{"Activity Task Scheduled", "ReserveInventory"},
				{"Start Child Workflow Execution Initiated", "TransferWorkflow"},
				{"Child Workflow Execution Completed", "TransferWorkflow"},
				// The compensation of the reservation: the order releases
				// the stock it holds.
				{"Activity Task Scheduled", "ReleaseInventory"},
				{"Workflow Execution Completed", "Result"},
			},
			timeline: []string{"ReserveInventory", "TransferWorkflow", "ReleaseInventory"},
		},
		{
			name:       "payment",
			workflowID: contract.TransferWorkflowID(contract.OrderTransferID(order.OrderID)),
			status:     "Completed",
			// The transfer's steps run as local activities: the UI shows
			// each as a "Local Activity" with its type.
			events: []event{
				{"Local Activity", "Withdraw"},
				{"Workflow Execution Completed", "Result"},
			},
			timeline: []string{"Withdraw"},
		},
	}

	base := fmt.Sprintf("http://127.0.0.1:%d", uiPort)
	waitUI(t, base)
	browser := newBrowser(t, chromium)
	dir := screenshotDir(t)
	for _, p := range pages {
		t.Run(p.name, func(t *testing.T) {
			desc, err := sys.Temporal.DescribeWorkflowExecution(ctx, p.workflowID, "")
			require.NoError(t, err)
			require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, desc.GetWorkflowExecutionInfo().GetStatus())
			checkPage(t, browser, base, dir, p, historyLength(ctx, t, sys.Temporal, p.workflowID))
		})
	}
}

// historyLength counts the events of a closed workflow's history.
func historyLength(ctx context.Context, t *testing.T, c client.Client, workflowID string) int {
	t.Helper()
	it := c.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for it.HasNext() {
		_, err := it.Next()
		require.NoError(t, err)
		n++
	}
	return n
}

// chromiumPath finds the browser, skipping the test without one (failing
// it in CI).
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv(envChromium)
	if p == "" {
		p = defaultChromium
	}
	if info, err := os.Stat(p); err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
		testenv.Unavailable(t, "Chromium at "+p, "install it with `apt-get install -y chromium` (.ci/run does) or set "+envChromium)
	}
	return p
}

// screenshotDir is where the screenshots go: envScreenshotDir, else the
// test's artifact directory.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(envScreenshotDir)
	if dir == "" {
		return t.ArtifactDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// waitUI polls the Web UI until it answers: the dev server reports ready
// when its frontend accepts clients, and the UI server starts beside it
// with no signal of its own.
func waitUI(t *testing.T, base string) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := c.Get(base + "/")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("Web UI at %s not answering after 60s: %s", base, last)
}

// newBrowser starts headless Chromium with a fresh profile and returns a
// browser context (one tab) that ends with the test.
func newBrowser(t *testing.T, chromium string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// Containers often give /dev/shm only 64MB, too little for a tab.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1600, 1400),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	// Cleanups run last-in first-out: the browser exits before t.TempDir
	// removes its profile.
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	// Start the browser now, so that a broken installation fails here
	// rather than in the first page's check.
	require.NoError(t, chromedp.Do(ctx), "start %s", chromium)
	return ctx
}

// snapshot is what a workflow's page shows, read from its DOM.
type snapshot struct {
	// Heading is the workflow id heading.
	Heading string `json:"heading"`
	// Header are the texts of the header's innermost elements, the status
	// badge among them.
	Header []string `json:"header"`
	// Timeline are the labels of the timeline.
	Timeline []string `json:"timeline"`
	// Rows are the rows of the event history list.
	Rows []row `json:"rows"`
}

// row is a row of the event history list.
type row struct {
	EventID int `json:"id"`
	// Lines are the row's text lines, trimmed, empty ones dropped.
	Lines []string `json:"lines"`
}

// snapshotScript reads a snapshot from the page (data-testid attributes
// are the UI's own test hooks).
const snapshotScript = `(() => {
	const lines = (el) => el.innerText.split("\n").map((l) => l.trim()).filter((l) => l !== "");
	const heading = document.querySelector('[data-testid="workflow-id-heading"]');
	return {
		heading: heading ? heading.innerText.trim() : "",
		header: [...document.querySelectorAll("header *")]
			.filter((e) => e.children.length === 0)
			.map((e) => e.textContent.trim())
			.filter((t) => t !== ""),
		timeline: [...document.querySelectorAll("svg text")].map((e) => e.textContent.trim()),
		rows: [...document.querySelectorAll('[data-testid="event-summary-row"]')]
			.map((r) => ({ id: Number(r.dataset.eventid), lines: lines(r) })),
	};
})()`

// checkPage opens the workflow's page, waits until it shows the workflow
// and its whole history (historyLength events), saves a screenshot and
// checks the page against p.
func checkPage(t *testing.T, browser context.Context, base, dir string, p page, historyLength int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(browser, 90*time.Second)
	defer cancel()
	url := fmt.Sprintf("%s/namespaces/default/workflows/%s", base, p.workflowID)

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(`main`))), "open %s", url)
	// The page renders in steps (header, then the history as it is
	// fetched): wait for the last of them.
	ready := fmt.Sprintf(`(() => {
		const h = document.querySelector('[data-testid="workflow-id-heading"]');
		return h !== null && h.innerText.trim() === %s &&
			document.querySelectorAll('[data-testid="event-summary-row"]').length >= %d;
	})()`, strconv.Quote(p.workflowID), historyLength)
	_, waitErr := chromedp.Run(ctx, chromedp.Poll[bool](ready,
		chromedp.WithPollingTimeout(60*time.Second), chromedp.WithPollingInterval(250*time.Millisecond)))

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err, "screenshot of %s", url)
	shot := filepath.Join(dir, p.name+".png")
	require.NoError(t, os.WriteFile(shot, png, 0o644))
	t.Logf("screenshot of %s: %s", url, shot)

	snap, err := chromedp.Run(ctx, chromedp.Evaluate[snapshot](snapshotScript))
	require.NoError(t, err, "read %s", url)
	require.NoError(t, waitErr, "%s never showed %s with %d events; it shows %q with %d rows", url, p.workflowID, historyLength, snap.Heading, len(snap.Rows))

	require.Equal(t, p.workflowID, snap.Heading)
	require.Contains(t, snap.Header, p.status, "status badge")
	for _, label := range p.timeline {
		// A step with a summary shows as "Name • summary" (the forward
		// steps say until when they are retried).
		require.True(t, slices.ContainsFunc(snap.Timeline, func(entry string) bool {
			return entry == label || strings.HasPrefix(entry, label+" • ")
		}), "timeline %q has no %q", snap.Timeline, label)
	}
	require.Len(t, snap.Rows, historyLength)
	// The list shows the newest event first; the expected events are in
	// history order.
	last := 0
	for _, want := range p.events {
		id := findEvent(snap.Rows, want, last)
		require.NotZero(t, id, "no %q row showing %q after event %d in:\n%s", want.typ, want.detail, last, rowsText(snap.Rows))
		last = id
	}
}

// findEvent returns the id of the first event after event id after that
// matches want, or 0.
func findEvent(rows []row, want event, after int) int {
	best := 0
	for _, r := range rows {
		if r.EventID <= after || (best != 0 && r.EventID >= best) {
			continue
		}
		if slices.Contains(r.Lines, want.typ) && slices.Contains(r.Lines, want.detail) {
			best = r.EventID
		}
	}
	return best
}

func rowsText(rows []row) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%d: %s\n", r.EventID, strings.Join(r.Lines, " | "))
	}
	return b.String()
}

// runCompensatedOrder opens a customer too poor to pay and a merchant,
// stocks the sku, and runs an order through c (prefix keeps its ids apart
// from other tests'): the payment fails and the saga compensates.
func runCompensatedOrder(ctx context.Context, t *testing.T, sys *systemtest.System, c client.Client, prefix string) (events.OrderPlaced, client.WorkflowRun, contract.OrderResult) {
	t.Helper()
	run := uuid.NewString()[:8]
	customer, merchant, sku := prefix+"cust-"+run, prefix+"merch-"+run, prefix+"sku-"+run
	sys.MustAccept(ctx, contract.LedgerQueue, events.CmdLedgerOpen, events.LedgerOpen{AccountID: customer, Currency: "EUR", Owner: "Customer", InitialBalance: 100})
	sys.MustAccept(ctx, contract.LedgerQueue, events.CmdLedgerOpen, events.LedgerOpen{AccountID: merchant, Currency: "EUR", Owner: "Merchant"})
	sys.MustAccept(ctx, contract.InventoryQueue, events.CmdInventoryRestock, events.InventoryRestock{SKU: sku, Quantity: 10})
	order := events.OrderPlaced{
		OrderID: "webui-" + prefix + run, CustomerID: customer, MerchantID: merchant, Currency: "EUR",
		Lines: []events.OrderLine{{SKU: sku, Quantity: 2, UnitPrice: 2500}}, Total: 5000,
	}
	wr, err := c.ExecuteWorkflow(ctx, contract.OrderStartOptions(order, sys.TaskQueue), contract.OrderWorkflowType, order)
	require.NoError(t, err)
	var res contract.OrderResult
	require.NoError(t, wr.Get(ctx, &res))
	require.Equal(t, contract.OrderCancelled, res.Outcome, "the payment must fail and the saga compensate: %+v", res)
	return order, wr, res
}
