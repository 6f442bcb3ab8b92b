// Package webui checks, in a real browser, what people see of the sagas in
// the Temporal Web UI: an order saga that compensates, run by the whole
// system (internal/systemtest), shows its workflow id, its status and the
// names of its steps and compensations. The test drives headless Chromium
// (Debian's chromium package) through chromedp and keeps a screenshot of
// every page it checks.
package webui
