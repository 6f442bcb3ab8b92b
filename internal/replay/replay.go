package replay

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sagaflow/sagaflow/codec"
)

// Kind classifies why a history did not pass.
type Kind string

// The kinds of failure.
const (
	// KindNonDeterministic: the code produced other commands than the
	// history recorded; deploying it would break this workflow.
	KindNonDeterministic Kind = "nondeterministic"
	// KindUnknownType: no registered workflow has the history's type.
	KindUnknownType Kind = "unknown-workflow-type"
	// KindEncrypted: the payloads are encrypted with a key the codec does
	// not hold, so the replay could not read them.
	KindEncrypted Kind = "encrypted"
	// KindUnreadable: the history could not be read (a file) or fetched (a
	// server).
	KindUnreadable Kind = "unreadable"
	// KindNotAHistory: the input is not a workflow history.
	KindNotAHistory Kind = "not-a-history"
	// KindFailed: the replay failed otherwise (a panic in workflow code, a
	// payload it could not decode).
	KindFailed Kind = "failed"
)

// Failure is why one history did not pass.
type Failure struct {
	Kind Kind
	Err  error
}

func (f *Failure) Error() string { return oneLine(f.Err.Error()) }
func (f *Failure) Unwrap() error { return f.Err }

// Options configure a Replayer.
type Options struct {
	// Register registers the workflow code to replay against, the way the
	// worker registers it (workflows.Register), or a variant of it in a
	// test. Required.
	Register func(worker.WorkflowRegistry)
	// Codec decodes the payloads, as the workers encoded them. Default: a
	// codec without keys, which reads plaintext payloads and names the key
	// an encrypted one needs.
	Codec *codec.Codec
}

// Replayer replays histories against the registered workflows. It is safe
// for concurrent use.
type Replayer struct {
	opts  Options
	types []string
}

// New returns a Replayer for opts.
func New(opts Options) (*Replayer, error) {
	if opts.Register == nil {
		return nil, errors.New("replay: Options.Register is required")
	}
	if opts.Codec == nil {
		c, err := codec.New(codec.Keys{}, codec.Options{})
		if err != nil {
			return nil, err
		}
		opts.Codec = c
	}
	names := &typeNames{}
	opts.Register(names)
	if len(names.names) == 0 {
		return nil, errors.New("replay: Options.Register registered no workflow")
	}
	sort.Strings(names.names)
	return &Replayer{opts: opts, types: names.names}, nil
}

// WorkflowTypes are the registered workflow types, sorted.
func (r *Replayer) WorkflowTypes() []string { return slices.Clone(r.types) }

// Replay replays h and returns nil when it passes.
func (r *Replayer) Replay(h *History) *Failure {
	if !slices.Contains(r.types, h.WorkflowType) {
		return r.unknownType(h.WorkflowType)
	}
	rp, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
		DataConverter:    r.opts.Codec.DataConverter(),
		FailureConverter: r.opts.Codec.FailureConverter(),
	})
	if err != nil {
		return &Failure{KindFailed, err}
	}
	r.opts.Register(rp)
	opts := worker.ReplayWorkflowHistoryOptions{}
	opts.OriginalExecution.ID, opts.OriginalExecution.RunID = h.WorkflowID, h.RunID
	err = rp.ReplayWorkflowHistoryWithOptions(nopLogger{}, h.Events, opts)
	if err == nil {
		return nil
	}
	return r.classify(h, err)
}

func (r *Replayer) unknownType(name string) *Failure {
	return &Failure{KindUnknownType, fmt.Errorf("workflow type %s is not in this binary (it knows %s)", name, strings.Join(r.types, ", "))}
}

func (r *Replayer) classify(h *History, err error) *Failure {
	msg := err.Error()
	// Replay decodes payloads (the workflow's input, the results it
	// reads): without their key the workflow fails early, which the SDK
	// reports as non-determinism. The missing key is the cause.
	if missing := r.missingKeys(h); len(missing) > 0 {
		need := strings.Join(missing, ", ")
		have := "no key is configured"
		if ids := r.opts.Codec.KeyIDs(); len(ids) > 0 {
			have = "the configured keys are " + strings.Join(ids, ", ")
		}
		return &Failure{KindEncrypted, fmt.Errorf("payloads are encrypted with key %s and %s: set %s (--codec-keys) to a key file holding it (replay: %s)",
			need, have, codec.EnvKeys, firstLine(msg))}
	}
	if strings.Contains(msg, "[TMPRL1100]") || strings.Contains(msg, "doesn't return the same result as the last event") {
		return &Failure{KindNonDeterministic, errors.New(firstLine(msg))}
	}
	return &Failure{KindFailed, errors.New(firstLine(msg))}
}

// missingKeys lists the key ids of the history's encrypted payloads that
// the codec does not hold.
func (r *Replayer) missingKeys(h *History) []string {
	have := r.opts.Codec.KeyIDs()
	var missing []string
	for _, ev := range h.Events.GetEvents() {
		eachPayload(ev.ProtoReflect(), func(p *commonpb.Payload) {
			if id, ok := codec.KeyIDOf(p); ok && !slices.Contains(have, id) && !slices.Contains(missing, id) {
				missing = append(missing, id)
			}
		})
	}
	sort.Strings(missing)
	return missing
}

var payloadName = (&commonpb.Payload{}).ProtoReflect().Descriptor().FullName()

// eachPayload calls fn with every Payload inside m.
func eachPayload(m protoreflect.Message, fn func(*commonpb.Payload)) {
	if m.Descriptor().FullName() == payloadName {
		if p, ok := m.Interface().(*commonpb.Payload); ok {
			fn(p)
		} else {
			var p commonpb.Payload
			proto.Merge(&p, m.Interface())
			fn(&p)
		}
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				eachPayload(v.List().Get(i).Message(), fn)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				eachPayload(mv.Message(), fn)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			eachPayload(v.Message(), fn)
		}
		return true
	})
}

// firstLine is the first line of an SDK error, without the stack traces
// some carry.
func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return oneLine(s)
}

// typeNames is a worker.WorkflowRegistry that records the workflow types
// registered with it.
type typeNames struct{ names []string }

func (t *typeNames) RegisterWorkflow(w any) { t.names = append(t.names, funcName(w)) }

func (t *typeNames) RegisterWorkflowWithOptions(w any, opts workflow.RegisterOptions) {
	if opts.Name == "" {
		t.RegisterWorkflow(w)
		return
	}
	t.names = append(t.names, opts.Name)
}

func (t *typeNames) RegisterDynamicWorkflow(any, workflow.DynamicRegisterOptions) {}

// funcName is the name the SDK registers a workflow function under: its
// name without the package path.
func funcName(w any) string {
	name := runtime.FuncForPC(reflect.ValueOf(w).Pointer()).Name()
	if i := strings.LastIndex(name, "."); i >= 0 {
		name = name[i+1:]
	}
	return strings.TrimSuffix(name, "-fm")
}

// nopLogger drops the SDK's replay logging, which prints stack traces.
type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}

var _ log.Logger = nopLogger{}
