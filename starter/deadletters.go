package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sagaflow/sagaflow/amqp"
)

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
	Headers            map[string]any `json:"headers,omitempty"`
	Body               string         `json:"body,omitempty"`
}

func viewOf(d amqp.DeadLetter, full bool) deadLetterView {
	v := deadLetterView{
		Position: d.Position, ID: d.ID, Type: d.Type, CorrelationID: d.CorrelationID, Timestamp: d.Timestamp,
		Consumer: d.Consumer, LastError: d.LastError, Attempts: d.Attempts, Redrives: d.Redrives,
		OriginalExchange: d.OriginalExchange, OriginalRoutingKey: d.OriginalRoutingKey,
	}
	if full {
		v.Headers = d.Headers
		v.Body = string(d.Body)
	}
	return v
}

func (a *app) deadLettersCommand() *cobra.Command {
	return group("dead-letters", "Browse a consumer's dead letters and send them back to it",
		a.deadLettersListCommand(), a.deadLettersShowCommand(), a.deadLettersRedriveCommand())
}

func (a *app) deadLettersListCommand() *cobra.Command {
	c := newCommand("list CONSUMER", "List the dead letters of a consumer (its queue name, e.g. bridge or ledger.commands) with their reasons")
	c.Args = cobra.ExactArgs(1)
	limit := c.Flags().Int("limit", amqp.DefaultDeadLetterLimit, "most messages to show, oldest first")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if *limit <= 0 {
			return usagef("--limit %d: must be positive", *limit)
		}
		ctx, cancel := a.context(cmd.Context())
		defer cancel()
		conn, err := a.broker(ctx)
		if err != nil {
			return err
		}
		dls, err := conn.ListDeadLetters(ctx, args[0], *limit)
		if err != nil {
			return err
		}
		views := make([]deadLetterView, 0, len(dls))
		for _, d := range dls {
			views = append(views, viewOf(d, false))
		}
		if a.cfg.JSON {
			return a.printJSON(views)
		}
		if len(views) == 0 {
			a.printf("No dead letters for %s\n", args[0])
			return nil
		}
		tw := tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "#\tMESSAGE ID\tTYPE\tFROM\tATTEMPTS\tLAST ERROR")
		for _, v := range views {
			from := v.OriginalRoutingKey
			if v.OriginalExchange != "" {
				from = v.OriginalExchange + "/" + from
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", v.Position, v.ID, v.Type, from, v.Attempts, oneLine(v.LastError, 100))
		}
		return tw.Flush()
	}
	return c
}

func (a *app) deadLettersShowCommand() *cobra.Command {
	c := newCommand("show CONSUMER MESSAGE-ID", "Show one dead letter in full: headers, reason and body")
	c.Args = cobra.ExactArgs(2)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, cancel := a.context(cmd.Context())
		defer cancel()
		conn, err := a.broker(ctx)
		if err != nil {
			return err
		}
		dls, err := conn.ListDeadLetters(ctx, args[0], 100000)
		if err != nil {
			return err
		}
		for _, d := range dls {
			if d.ID != args[1] {
				continue
			}
			v := viewOf(d, true)
			if a.cfg.JSON {
				return a.printJSON(v)
			}
			a.printf("Message %s (#%d in %s)\n", v.ID, v.Position, d.Queue)
			a.printf("  type:        %s\n  correlation: %s\n  timestamp:   %s\n", v.Type, v.CorrelationID, stamp(v.Timestamp))
			a.printf("  from:        exchange %q, routing key %q\n", v.OriginalExchange, v.OriginalRoutingKey)
			a.printf("  attempts:    %d, redrives %d\n  last error:  %s\n", v.Attempts, v.Redrives, v.LastError)
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

func (a *app) deadLettersRedriveCommand() *cobra.Command {
	c := newCommand("redrive CONSUMER [MESSAGE-ID...]", "Send dead letters back to their consumer, by message id or --all")
	c.Args = cobra.MinimumNArgs(1)
	all := c.Flags().Bool("all", false, "send every dead letter of the consumer back")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		ids := args[1:]
		if *all == (len(ids) > 0) {
			return usagef("give message ids or --all")
		}
		ctx, cancel := a.context(cmd.Context())
		defer cancel()
		conn, err := a.broker(ctx)
		if err != nil {
			return err
		}
		var res amqp.RedriveResult
		if *all {
			res, err = conn.RedriveAll(ctx, args[0])
		} else {
			res, err = conn.Redrive(ctx, args[0], ids)
		}
		if err != nil {
			return err
		}
		if res.Redriven == nil {
			res.Redriven = []string{}
		}
		if a.cfg.JSON {
			if err := a.printJSON(res); err != nil {
				return err
			}
		} else {
			a.printf("Sent %d message(s) back to %s", len(res.Redriven), args[0])
			if len(res.Redriven) > 0 {
				a.printf(": %s", strings.Join(res.Redriven, ", "))
			}
			a.printf("\n")
		}
		if len(res.NotFound) > 0 {
			return fmt.Errorf("not in the dead letters of %s: %s", args[0], strings.Join(res.NotFound, ", "))
		}
		return nil
	}
	return c
}

// oneLine flattens s and cuts it to n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
