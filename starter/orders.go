package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sagaflow/sagaflow/contract"
	"github.com/sagaflow/sagaflow/events"
)

func (a *app) ordersCommand() *cobra.Command {
	c := newCommand("orders [ORDER-ID]", "Show an order, or a customer's orders, from the orders read model")
	customer := c.Flags().String("customer", "", "list this customer's orders (newest first)")
	status := c.Flags().String("status", "", "with --customer: only orders with this status (placed, reserved, confirmed, cancelled)")
	limit := c.Flags().Int("limit", events.DefaultOrdersListLimit, fmt.Sprintf("with --customer: most orders to show (at most %d)", events.MaxOrdersListLimit))
	c.Args = cobra.MaximumNArgs(1)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) == 1 && *customer != "":
			return usagef("give an order id or --customer, not both")
		case len(args) == 0 && *customer == "":
			return usagef("give an order id or --customer")
		}
		var q events.OrdersListQuery
		if *customer != "" {
			q = events.OrdersListQuery{CustomerID: *customer, Status: events.OrderStatus(*status), Limit: *limit}
			if err := q.Validate(); err != nil {
				return &usageError{joinLines(err)}
			}
		}
		ctx, cancel := a.context(cmd.Context())
		defer cancel()
		var list []contract.OrderRecord
		if len(args) == 1 {
			var o contract.OrderRecord
			if err := a.request(ctx, serviceOrders, a.cfg.OrdersQueue, events.QueryOrdersGet, args[0],
				events.OrdersGetQuery{OrderID: args[0]}, &o); err != nil {
				return err
			}
			if a.cfg.JSON {
				return a.printJSON(o)
			}
			list = []contract.OrderRecord{o}
		} else {
			if err := a.request(ctx, serviceOrders, a.cfg.OrdersQueue, events.QueryOrdersList, q.CustomerID, q, &list); err != nil {
				return err
			}
			if a.cfg.JSON {
				if list == nil {
					list = []contract.OrderRecord{}
				}
				return a.printJSON(list)
			}
		}
		tw := tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ORDER\tCUSTOMER\tMERCHANT\tTOTAL\tSTATUS\tREASON\tCREATED\tSAGA")
		for _, o := range list {
			reason := o.FailureReason
			if o.FailedStep != "" {
				reason += " at " + o.FailedStep
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\tstarter history %s\n", o.OrderID, o.CustomerID, o.MerchantID,
				formatMoney(o.Total, o.Currency), o.Status, reason, stamp(o.CreatedAt), contract.OrderWorkflowID(o.OrderID))
		}
		return tw.Flush()
	}
	return c
}
