package contract

// MemoTraceID is the memo key under which a saga started by the CLI, the
// bridge or the load generator carries the id of its OpenTelemetry trace
// (32 hex digits), so that the Web UI and `starter status` lead to it. It
// is absent when tracing is off.
const MemoTraceID = "trace_id"
