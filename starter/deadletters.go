package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sagaflow/sagaflow/amqp"
)

// confirmInput is where purge reads its confirmation from.
var confirmInput io.Reader = os.Stdin

// maxDeadLetters bounds the dead letters one redrive, purge or show looks at.
const maxDeadLetters = 100000

// deadLetterView is a dead letter as list and show print it.
type deadLetterView struct {
	Position           int            `json:"position"`
	ID                 string         `json:"id"`
	Type               string         `json:"type,omitempty"`
	CorrelationID      string         `json:"correlation_id,omitempty"`
	Timestamp          time.Time      `json:"timestamp,omitzero"`
	Consumer           string         `json:"consumer"`
	LastError          string         `json:"last_error,omitempty"`
	Attempts           int            `json:"attempts"`
	Redrives           int            `json:"redrives,omitempty"`
	OriginalExchange   string         `json:"original_exchange"`
	OriginalRoutingKey string         `json:"original_routing_key"`
	Saga               messageSaga    `json:"saga"`
	SagaState          string         `json:"saga_state"`
	RedriveLog         []redriveEntry `json:"redrive_log,omitempty"`
	Headers            map[string]any `json:"headers,omitempty"`
	Body               string         `json:"body,omitempty"`
}

// redriveEntry is one earlier redrive of a message.
type redriveEntry = amqp.RedriveRecord

func viewOf(d amqp.DeadLetter, s messageSaga, info sagaInfo, full bool) deadLetterView {
	v := deadLetterView{
		Position: d.Position, ID: d.ID, Type: d.Type, CorrelationID: d.CorrelationID, Timestamp: d.Timestamp,
		Consumer: d.Consumer, LastError: d.LastError, Attempts: d.Attempts, Redrives: d.Redrives,
		OriginalExchange: d.OriginalExchange, OriginalRoutingKey: d.OriginalRoutingKey,
		Saga: s, SagaState: info.State, RedriveLog: amqp.RedriveLog(d.Headers),
	}
	if full {
		v.Headers = d.Headers
		v.Body = string(d.Body)
	}
	return v
}

func (a *app) deadLettersCommand() *cobra.Command {
	return group("dead-letters", "Browse a consumer's dead letters with their sagas' states, send them back to it, or purge them",
		a.deadLettersListCommand(), a.deadLettersShowCommand(), a.deadLettersRedriveCommand(), a.deadLettersPurgeCommand())
}

// deadLetters reads up to limit dead letters of consumer with their sagas'
// states from Temporal.
func (a *app) deadLetters(ctx context.Context, consumer string, limit int) ([]amqp.DeadLetter, []messageSaga, []sagaInfo, error) {
	conn, err := a.broker(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	dls, err := conn.ListDeadLetters(ctx, consumer, limit)
	if err != nil {
		return nil, nil, nil, err
	}
	sagas := make([]messageSaga, len(dls))
	infos := make([]sagaInfo, len(dls))
	if len(dls) == 0 {
		return dls, sagas, infos, nil
	}
	tc, err := a.temporalClient(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	states := newSagaStates(tc)
	for i, d := range dls {
		sagas[i] = sagaOf(d)
		if infos[i], err = states.of(ctx, sagas[i].WorkflowID, sagas[i].RunID); err != nil {
			return nil, nil, nil, err
		}
	}
	return dls, sagas, infos, nil
}

func (a *app) deadLettersListCommand() *cobra.Command {
	c := newCommand("list CONSUMER", "List the dead letters of a consumer (its queue name, e.g. bridge or ledger.commands) with their reasons, their sagas and the sagas' states")
	c.Args = cobra.ExactArgs(1)
	limit := c.Flags().Int("limit", amqp.DefaultDeadLetterLimit, "most messages to show, oldest first")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if *limit <= 0 {
			return usagef("--limit %d: must be positive", *limit)
		}
		ctx, cancel := a.context(cmd.Context())
		defer cancel()
		dls, sagas, infos, err := a.deadLetters(ctx, args[0], *limit)
		if err != nil {
			return err
		}
		views := make([]deadLetterView, 0, len(dls))
		for i, d := range dls {
			views = append(views, viewOf(d, sagas[i], infos[i], false))
		}
		if a.cfg.JSON {
			return a.printJSON(views)
		}
		if len(views) == 0 {
			a.printf("No dead letters for %s\n", args[0])
			return nil
		}
		tw := tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "#\tMESSAGE ID\tTYPE\tSAGA\tSAGA STATE\tATTEMPTS\tREDRIVES\tLAST ERROR")
		for _, v := range views {
			saga := v.Saga.WorkflowID
			if saga == "" {
				saga = "-"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", v.Position, v.ID, v.Type, saga, v.SagaState, v.Attempts, v.Redrives, oneLine(v.LastError, 100))
		}
		return tw.Flush()
	}
	return c
}

func (a *app) deadLettersShowCommand() *cobra.Command {
	c := newCommand("show CONSUMER MESSAGE-ID", "Show one dead letter in full: headers, reason, saga, earlier redrives and body")
	c.Args = cobra.ExactArgs(2)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, cancel := a.context(cmd.Context())
		defer cancel()
		conn, err := a.broker(ctx)
		if err != nil {
			return err
		}
		dls, err := conn.ListDeadLetters(ctx, args[0], maxDeadLetters)
		if err != nil {
			return err
		}
		for _, d := range dls {
			if d.ID != args[1] {
				continue
			}
			tc, err := a.temporalClient(ctx)
			if err != nil {
				return err
			}
			s := sagaOf(d)
			info, err := newSagaStates(tc).of(ctx, s.WorkflowID, s.RunID)
			if err != nil {
				return err
			}
			v := viewOf(d, s, info, true)
			if a.cfg.JSON {
				return a.printJSON(v)
			}
			a.printf("Message %s (#%d in %s)\n", v.ID, v.Position, d.Queue)
			a.printf("  type:        %s\n  correlation: %s\n  timestamp:   %s\n", v.Type, v.CorrelationID, stamp(v.Timestamp))
			a.printf("  saga:        %s (%s)\n", orDash(s.WorkflowID), info.State)
			a.printf("  from:        exchange %q, routing key %q\n", v.OriginalExchange, v.OriginalRoutingKey)
			a.printf("  attempts:    %d, redrives %d\n  last error:  %s\n", v.Attempts, v.Redrives, v.LastError)
			for _, r := range v.RedriveLog {
				a.printf("  redriven:    %s by %s (batch %s, %s)\n", stamp(r.At), r.By, r.Batch, redriveBatchText(r))
			}
			a.printf("  headers:\n")
			for k, h := range v.Headers {
				a.printf("    %s: %v\n", k, h)
			}
			a.printf("  body:\n%s\n", v.Body)
			return nil
		}
		return fmt.Errorf("no dead letter %s for %s", args[1], args[0])
	}
	return c
}

func redriveBatchText(r amqp.RedriveRecord) string {
	s := fmt.Sprintf("%d message(s): %s", r.Count, strings.Join(r.Messages, ", "))
	if more := r.Count - len(r.Messages); more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	if r.Forced {
		s += "; forced"
	}
	return s
}

// deadLetterSelection is which dead letters redrive and purge act on.
type deadLetterSelection struct {
	ids    []string
	all    bool
	saga   string
	reason string
	re     *regexp.Regexp
}

func (s *deadLetterSelection) bind(c *cobra.Command) {
	c.Flags().BoolVar(&s.all, "all", false, "every dead letter of the consumer")
	c.Flags().StringVar(&s.saga, "saga", "", "the dead letters of this saga (workflow id)")
	c.Flags().StringVar(&s.reason, "reason", "", "the dead letters whose last error matches this regular expression")
}

// parse checks the selection of a command with the message ids ids.
func (s *deadLetterSelection) parse(ids []string) error {
	s.ids = ids
	filters := s.saga != "" || s.reason != ""
	if !s.all && !filters && len(ids) == 0 {
		return usagef("give message ids or --all, --saga SAGA-ID or --reason PATTERN")
	}
	if s.all && (filters || len(ids) > 0) {
		return usagef("--all takes no message ids, --saga or --reason")
	}
	if filters && len(ids) > 0 {
		return usagef("give message ids or --saga/--reason, not both")
	}
	if s.reason != "" {
		re, err := regexp.Compile(s.reason)
		if err != nil {
			return usagef("--reason %q: %s", s.reason, oneLine(err.Error(), 200))
		}
		s.re = re
	}
	return nil
}

func (s *deadLetterSelection) matches(d amqp.DeadLetter, saga messageSaga) bool {
	switch {
	case s.all:
		return true
	case len(s.ids) > 0:
		for _, id := range s.ids {
			if d.ID == id {
				return true
			}
		}
		return false
	}
	return (s.saga == "" || saga.WorkflowID == s.saga) && (s.re == nil || s.re.MatchString(d.LastError))
}

// unknownSaga returns an error when --saga names a saga that neither
// appears among the dead letters nor exists in Temporal: a mistyped id
// would otherwise select nothing and look like a saga without dead letters.
func (a *app) unknownSaga(ctx context.Context, s *deadLetterSelection, consumer string, sagas []messageSaga) error {
	if s.saga == "" {
		return nil
	}
	for _, m := range sagas {
		if m.WorkflowID == s.saga {
			return nil
		}
	}
	tc, err := a.temporalClient(ctx)
	if err != nil {
		return err
	}
	info, err := newSagaStates(tc).of(ctx, s.saga, "")
	if err != nil {
		return err
	}
	if !info.Exists {
		return fmt.Errorf("--saga %s: no such saga in this namespace, and none of the dead letters of %s belongs to it", s.saga, consumer)
	}
	return nil
}

// notFound returns the requested ids that are not among the dead letters.
func (s *deadLetterSelection) notFound(dls []amqp.DeadLetter) []string {
	have := map[string]bool{}
	for _, d := range dls {
		have[d.ID] = true
	}
	var out []string
	for _, id := range s.ids {
		if !have[id] {
			out = append(out, id)
			have[id] = true
		}
	}
	return out
}

// redriveLine is what redrive did, or would do, with one dead letter.
type redriveLine struct {
	ID        string      `json:"id"`
	Type      string      `json:"type,omitempty"`
	Saga      messageSaga `json:"saga"`
	SagaState string      `json:"saga_state"`
	// Action is sent, skipped, would-send, would-skip or gone (removed from
	// the dead letters by someone else meanwhile).
	Action string `json:"action"`
	Why    string `json:"why"`
}

// redriveReport is redrive's --json output.
type redriveReport struct {
	Consumer string        `json:"consumer"`
	DryRun   bool          `json:"dry_run"`
	Forced   bool          `json:"forced"`
	Batch    string        `json:"batch,omitempty"`
	By       string        `json:"by"`
	Messages []redriveLine `json:"messages"`
	Sent     int           `json:"sent"`
	Skipped  int           `json:"skipped"`
	NotFound []string      `json:"not_found,omitempty"`
}

// operator names who runs an operator command: --operator, else $USER.
func (a *app) operator(flag string) string {
	if flag != "" {
		return flag
	}
	if u := a.getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

func (a *app) deadLettersRedriveCommand() *cobra.Command {
	c := newCommand("redrive CONSUMER [MESSAGE-ID...]",
		"Send dead letters back to their consumer: by message id, --saga, --reason or --all; only those their saga can still use unless --force")
	c.Long = `Send dead letters back to their consumer. Without --force only the messages
their saga can still use go back: a command or reply whose activity still waits
for it, an order.placed whose saga the bridge has not started, another bridge
event whose saga still runs, or an event for any other subscriber (which has
not applied it). Every skipped message is named with the reason.

Each message is published with a confirm to the consumer's queue before it is
removed from the dead letters, and the redrive (who, when, with which
messages) is appended to its x-redrive-log header.`
	c.Args = cobra.MinimumNArgs(1)
	var sel deadLetterSelection
	sel.bind(c)
	force := c.Flags().Bool("force", false, "send the selected messages back whatever their saga's state")
	dryRun := c.Flags().Bool("dry-run", false, "show what would be sent and skipped, and change nothing")
	operator := c.Flags().String("operator", "", "who redrives, recorded in the messages' headers (default $USER)")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if err := sel.parse(args[1:]); err != nil {
			return err
		}
		consumer := args[0]
		ctx, cancel := a.context(cmd.Context())
		defer cancel()
		dls, sagas, infos, err := a.deadLetters(ctx, consumer, maxDeadLetters)
		if err != nil {
			return err
		}
		if err := a.unknownSaga(ctx, &sel, consumer, sagas); err != nil {
			return err
		}
		rep := redriveReport{Consumer: consumer, DryRun: *dryRun, Forced: *force, By: a.operator(*operator),
			Messages: []redriveLine{}, NotFound: sel.notFound(dls)}
		var send []string
		queued := map[string]bool{}
		for i, d := range dls {
			if !sel.matches(d, sagas[i]) {
				continue
			}
			ok, why := redriveVerdict(d, sagas[i], infos[i])
			line := redriveLine{ID: d.ID, Type: d.Type, Saga: sagas[i], SagaState: infos[i].State, Why: why}
			switch {
			case ok || *force:
				if !ok {
					line.Why += "; sent with --force"
				}
				line.Action = "sent"
				if !queued[d.ID] {
					send = append(send, d.ID)
					queued[d.ID] = true
				}
			default:
				line.Action = "skipped"
				line.Why += "; --force sends it anyway"
			}
			rep.Messages = append(rep.Messages, line)
		}
		if *dryRun {
			for i := range rep.Messages {
				rep.Messages[i].Action = map[string]string{"sent": "would-send", "skipped": "would-skip"}[rep.Messages[i].Action]
			}
		} else if len(send) > 0 {
			conn, err := a.broker(ctx)
			if err != nil {
				return err
			}
			rep.Batch = newID()
			res, err := conn.RedriveRecorded(ctx, consumer, send, amqp.RedriveRecord{
				By: rep.By, At: time.Now().UTC().Truncate(time.Millisecond), Batch: rep.Batch, Forced: *force,
			})
			sent := map[string]bool{}
			for _, id := range res.Redriven {
				sent[id] = true
			}
			for i, l := range rep.Messages {
				switch {
				case l.Action != "sent" || sent[l.ID]:
				case err != nil:
					rep.Messages[i].Action, rep.Messages[i].Why = "not-sent", "still in the dead letters: the redrive stopped"
				default:
					rep.Messages[i].Action, rep.Messages[i].Why = "gone", "left the dead letters meanwhile"
				}
			}
			if err != nil {
				// What was sent before the failure is sent: say so.
				_ = a.reportRedrive(rep)
				return err
			}
		}
		if err := a.reportRedrive(rep); err != nil {
			return err
		}
		if len(rep.NotFound) > 0 {
			return fmt.Errorf("not in the dead letters of %s: %s", consumer, strings.Join(rep.NotFound, ", "))
		}
		return nil
	}
	return c
}

func (a *app) reportRedrive(rep redriveReport) error {
	for _, l := range rep.Messages {
		switch l.Action {
		case "sent", "would-send":
			rep.Sent++
		case "skipped", "would-skip":
			rep.Skipped++
		}
	}
	if a.cfg.JSON {
		return a.printJSON(rep)
	}
	tw := tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
	for _, l := range rep.Messages {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s (%s)\t%s\n", l.Action, l.ID, orDash(l.Type), orDash(l.Saga.WorkflowID), l.SagaState, l.Why)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verb, skipped := "Sent", "skipped"
	if rep.DryRun {
		verb, skipped = "Would send", "would skip"
	}
	a.printf("%s %d message(s) back to %s, %s %d", verb, rep.Sent, rep.Consumer, skipped, rep.Skipped)
	if rep.Batch != "" {
		a.printf(" (redrive %s by %s)", rep.Batch, rep.By)
	}
	a.printf("\n")
	return nil
}

func (a *app) deadLettersPurgeCommand() *cobra.Command {
	c := newCommand("purge CONSUMER [MESSAGE-ID...]", "Delete dead letters for good: by message id, --saga, --reason or --all, after a confirmation")
	c.Args = cobra.MinimumNArgs(1)
	var sel deadLetterSelection
	sel.bind(c)
	yes := c.Flags().Bool("yes", false, "do not ask for confirmation (for scripts)")
	dryRun := c.Flags().Bool("dry-run", false, "show what would be deleted, and delete nothing")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if err := sel.parse(args[1:]); err != nil {
			return err
		}
		consumer := args[0]
		ctx, cancel := a.context(cmd.Context())
		defer cancel()
		dls, sagas, infos, err := a.deadLetters(ctx, consumer, maxDeadLetters)
		if err != nil {
			return err
		}
		if err := a.unknownSaga(ctx, &sel, consumer, sagas); err != nil {
			return err
		}
		notFound := sel.notFound(dls)
		var ids []string
		var lines []redriveLine
		chosen := map[string]bool{}
		for i, d := range dls {
			if !sel.matches(d, sagas[i]) {
				continue
			}
			lines = append(lines, redriveLine{ID: d.ID, Type: d.Type, Saga: sagas[i], SagaState: infos[i].State, Action: "purge", Why: oneLine(d.LastError, 100)})
			if !chosen[d.ID] {
				ids = append(ids, d.ID)
				chosen[d.ID] = true
			}
		}
		if len(notFound) > 0 {
			return fmt.Errorf("not in the dead letters of %s: %s", consumer, strings.Join(notFound, ", "))
		}
		if len(ids) == 0 {
			if a.cfg.JSON {
				return a.printJSON(map[string]any{"consumer": consumer, "purged": []string{}, "dry_run": *dryRun})
			}
			a.printf("No dead letters of %s match\n", consumer)
			return nil
		}
		if !a.cfg.JSON || *dryRun {
			tw := tabwriter.NewWriter(a.errOutOr(*dryRun), 0, 0, 2, ' ', 0)
			for _, l := range lines {
				fmt.Fprintf(tw, "%s\t%s\t%s (%s)\t%s\n", l.ID, orDash(l.Type), orDash(l.Saga.WorkflowID), l.SagaState, l.Why)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		if *dryRun {
			if a.cfg.JSON {
				return a.printJSON(map[string]any{"consumer": consumer, "would_purge": ids, "dry_run": true})
			}
			a.printf("Would delete %d message(s) of %s\n", len(ids), consumer)
			return nil
		}
		if !*yes {
			ok, err := confirm(confirmInput, a.errOut, fmt.Sprintf("Delete these %d dead letter(s) of %s for good? [y/N] ", len(lines), consumer))
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("purge of %s not confirmed: nothing deleted (answer y, or pass --yes)", consumer)
			}
		}
		conn, err := a.broker(ctx)
		if err != nil {
			return err
		}
		res, err := conn.PurgeDeadLetters(ctx, consumer, ids)
		if err != nil {
			return err
		}
		if res.Purged == nil {
			res.Purged = []string{}
		}
		if a.cfg.JSON {
			return a.printJSON(map[string]any{"consumer": consumer, "purged": res.Purged, "dry_run": false})
		}
		a.printf("Deleted %d message(s) of %s", len(res.Purged), consumer)
		if len(res.NotFound) > 0 {
			a.printf("; %d left the dead letters meanwhile", len(res.NotFound))
		}
		a.printf("\n")
		return nil
	}
	return c
}

// errOutOr is where purge lists the messages: stdout for a dry run, stderr
// beside the confirmation prompt otherwise.
func (a *app) errOutOr(dryRun bool) io.Writer {
	if dryRun {
		return a.out
	}
	return a.errOut
}

// confirm asks question on w and reads a yes or no from r; end of input is
// no.
func confirm(r io.Reader, w io.Writer, question string) (bool, error) {
	fmt.Fprint(w, question)
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && err != io.EOF {
		return false, fmt.Errorf("read the confirmation: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine flattens s and cuts it to n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
