package main

import (
	"context"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
)

// forEachID builds the RunE of verbs that act on named objects one at a time:
// resolve all arguments to IDs first (so a typo fails before anything is
// touched), then act on each, stopping at the first error.
func forEachID(a *app, resolve func(context.Context, []string) ([]string, error), act func(ctx context.Context, id string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		ctx, cancel, err := a.ctx(cmd.Context())
		if err != nil {
			return err
		}
		defer cancel()
		ids, err := resolve(ctx, args)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := act(ctx, id); err != nil {
				return err
			}
		}
		return nil
	}
}

// forEachImage is forEachID for images. Each argument is resolved just before
// it is acted on, because acting (rmi) changes what later arguments match,
// and act gets the argument too, since image errors name what the user typed.
func forEachImage(a *app, act func(ctx context.Context, arg, id string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		ctx, cancel, err := a.ctx(cmd.Context())
		if err != nil {
			return err
		}
		defer cancel()
		for _, arg := range args {
			id, err := a.resolveImage(ctx, arg)
			if err != nil {
				return err
			}
			if err := act(ctx, arg, id); err != nil {
				return err
			}
		}
		return nil
	}
}

// printStatus prints what an inspect verb learned about one object: the
// summary table with -o table, otherwise the status plus the runtime's
// verbose info as one JSON (default) or YAML document.
func (a *app) printStatus(status proto.Message, info map[string]string, summary func()) error {
	f := a.format("json")
	if f == "table" {
		summary()
		return nil
	}
	doc, err := withInfo("status", status, info)
	if err != nil {
		return err
	}
	return printDoc(a.stdout, f, doc)
}
