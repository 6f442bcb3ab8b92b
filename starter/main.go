// Command starter is the command line of the saga system: it sends commands
// and queries to the participant services over RabbitMQ request-reply,
// starts, inspects and cancels sagas on Temporal, publishes order.placed
// events for the bridge, shows a saga's audit trail from its workflow
// history, browses, redrives and purges dead letters beside their sagas'
// states, resolves or retries the compensation of sagas waiting for an
// operator, runs load tests, and replays workflow histories against its
// workflow code before a deploy.
//
// Every subcommand has --help. Errors are printed on one line as
// "starter: <error>"; the exit code is 2 for bad input and 1 for failures
// at run time (a rejection by a service, an unreachable server).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sagaflow/sagaflow/codec"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// usageError is bad input: a malformed flag or argument. It exits with
// exitUsage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef returns a usageError.
func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// run executes the command line args with the environment getenv and
// returns the exit code. Output goes to stdout, errors to stderr.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	a := newApp(getenv, stdout, stderr)
	defer a.close()
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	msg := strings.TrimSpace(err.Error())
	// Keep the promise of one line: joined errors become "a; b".
	msg = strings.ReplaceAll(msg, "\n", "; ")
	fmt.Fprintf(stderr, "starter: %s\n", msg)
	var ue *usageError
	if errors.As(err, &ue) || !a.running {
		// Errors before a command ran are cobra's: an unknown command, a
		// bad flag or a wrong number of arguments.
		if !a.running {
			fmt.Fprintf(stderr, "Run 'starter --help' for usage.\n")
		}
		return exitUsage
	}
	return exitFailure
}

// newCommand is a cobra command with the settings every subcommand shares.
func newCommand(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:           use,
		Short:         short,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
}

// group is a command that only holds subcommands; run without one it fails
// with the list of them.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := newCommand(use, short)
	c.Args = cobra.NoArgs
	c.RunE = func(cmd *cobra.Command, args []string) error {
		names := make([]string, 0, len(subs))
		for _, s := range subs {
			names = append(names, s.Name())
		}
		return usagef("%s needs a subcommand: %s (see 'starter %s --help')", cmd.Name(), strings.Join(names, ", "), cmd.Name())
	}
	c.AddCommand(subs...)
	return c
}

func (a *app) rootCommand() *cobra.Command {
	root := newCommand("starter", "Start, inspect and drive the sagas")
	root.Long = `starter drives the saga system: accounts and stock through the services'
RabbitMQ request-reply, sagas on Temporal (transfer, reserve, order), events
for the bridge (publish), the orders read model, the audit trail of a saga
(history), dead letters, load tests, and the replay of histories against
this binary's workflow code before a deploy (replay).

Every global flag defaults to its environment variable, then to the value shown.`
	root.Args = cobra.NoArgs
	root.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		a.running = true
		if err := a.cfg.Validate(); err != nil {
			return err
		}
		cdc, err := codec.Load(a.cfg.Codec)
		if err != nil {
			return usagef("--codec-keys: %w", err)
		}
		a.codec = cdc
		return a.setupTracing()
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	a.cfg.bind(root, a.getenv)
	root.AddCommand(
		a.accountCommand(),
		a.stockCommand(),
		a.transferCommand(),
		a.reserveCommand(),
		a.orderCommand(),
		a.publishCommand(),
		a.ordersCommand(),
		a.statusCommand(),
		a.historyCommand(),
		a.listCommand(),
		a.cancelCommand(),
		a.resolveCommand(),
		a.retryCompensationCommand(),
		a.deadLettersCommand(),
		a.loadCommand(),
		a.demoCommand(),
		a.codecServerCommand(),
		a.replayCommand(),
	)
	root.CompletionOptions.DisableDefaultCmd = true
	return root
}
