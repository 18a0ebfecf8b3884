package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/store"
)

func (g *globals) client() (*api.Client, error) {
	sock, err := g.socketPath()
	if err != nil {
		return nil, err
	}
	return api.NewClient(sock), nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func parseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, &exitError{code: 2, err: fmt.Errorf("ID must be a positive number, got %q", s)}
	}
	return id, nil
}

func quarantineCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "quarantine", Aliases: []string{"q"}, Short: "Review messages held in the Postfix hold queue"}

	var state, account string
	var asJSON bool
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List held messages (newest first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.ListHolds(cmd.Context(), api.ListHoldsRequest{State: state, Account: account, Limit: limit})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), res.Holds)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tQUEUE ID\tSTATE\tHELD AT\tACCOUNT\tRCPTS\tCLIENT\tREASONS")
			for _, h := range res.Holds {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", h.ID, h.QueueID, h.State, h.HeldAt.Local().Format(time.DateTime), oneLine(h.Account), h.RecipientCount, h.ClientFamily, strings.Join(h.Reasons, ","))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&state, "state", "held", "held, released, deleted, expired or all")
	list.Flags().StringVar(&account, "account", "", "only this account")
	list.Flags().IntVar(&limit, "limit", 100, "at most this many (max 1000)")
	list.Flags().BoolVar(&asJSON, "json", false, "JSON output")

	var showJSON bool
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one held message: envelope, reasons, headers and text preview",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			h, err := c.GetHold(cmd.Context(), id)
			if err != nil {
				return err
			}
			if showJSON {
				return writeJSON(cmd.OutOrStdout(), h)
			}
			writeHold(cmd.OutOrStdout(), h)
			return nil
		},
	}
	show.Flags().BoolVar(&showJSON, "json", false, "JSON output")

	act := func(use, short string, f func(c *api.Client, cmd *cobra.Command, id int64) (*store.Hold, error), verb string) *cobra.Command {
		return &cobra.Command{
			Use:   use + " ID",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				id, err := parseID(args[0])
				if err != nil {
					return err
				}
				c, err := g.client()
				if err != nil {
					return err
				}
				h, err := f(c, cmd, id)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "hold %d (queue id %s) %s\n", h.ID, h.QueueID, verb)
				return nil
			},
		}
	}
	release := act("release", "Release a held message: delivered once, not held again (postsuper -H, postqueue -i)",
		func(c *api.Client, cmd *cobra.Command, id int64) (*store.Hold, error) {
			return c.ReleaseHold(cmd.Context(), id)
		}, "released")
	del := act("delete", "Delete a held message from the Postfix queue (postsuper -d)",
		func(c *api.Client, cmd *cobra.Command, id int64) (*store.Hold, error) {
			return c.DeleteHold(cmd.Context(), id)
		}, "deleted")

	sync := &cobra.Command{
		Use:   "sync",
		Short: "Reconcile held messages with the Postfix queue now (postqueue -j)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.SyncQueue(cmd.Context())
			if err != nil {
				return err
			}
			for _, ch := range res.Changed {
				fmt.Fprintf(cmd.OutOrStdout(), "hold %d (queue id %s) is now %s\n", ch.ID, ch.QueueID, ch.State)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d change(s)\n", len(res.Changed))
			return nil
		},
	}
	var spamNote string
	spam := &cobra.Command{
		Use:   "spam ID [--note TEXT]",
		Short: "Mark a held message as spam: delete it and open (and confirm) an incident on its sender",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			inc, err := c.MarkHoldSpam(cmd.Context(), id, spamNote)
			if err != nil {
				return err
			}
			inc = follow(cmd, c, inc)
			fmt.Fprintf(cmd.OutOrStdout(), "hold %d deleted; incident %d on %s is %s\n", id, inc.ID, inc.Account, inc.State)
			printSteps(cmd.OutOrStdout(), inc)
			return nil
		},
	}
	spam.Flags().StringVar(&spamNote, "note", "", "what you saw (recorded with the incident)")
	var trustFor time.Duration
	var trustNote string
	trust := &cobra.Command{
		Use:   "trust ID [--for 168h] [--note TEXT]",
		Short: "Release a held message and trust its sender with its client for a while (rule and volume findings do not act)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			h, err := c.ReleaseAndTrust(cmd.Context(), id, api.TrustRequest{Duration: trustFor, Note: trustNote})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "hold %d (queue id %s) released; %s trusted with %s\n", h.ID, h.QueueID, h.Account, h.ClientFamily)
			return nil
		},
	}
	trust.Flags().DurationVar(&trustFor, "for", 7*24*time.Hour, "how long the trust lasts (at most 90 days)")
	trust.Flags().StringVar(&trustNote, "note", "", "why (recorded in the audit log)")
	cmd.AddCommand(list, show, release, del, bulkCmd(g, "release"), bulkCmd(g, "delete"), sync, spam, trust, auditCmd(g))
	return cmd
}

// bulkCmd is release-all or delete-all: every held message matching the
// filter, as it is when the command runs (mail held later is left alone).
// Without --yes it only says how many match.
func bulkCmd(g *globals, action string) *cobra.Command {
	var f api.ListHoldsRequest
	var yes bool
	what := map[string]string{"release": "released: delivered once to their recipients", "delete": "deleted from the Postfix queue for good"}[action]
	cmd := &cobra.Command{
		Use:   action + "-all --account NAME [--reason R] [--yes]",
		Short: fmt.Sprintf("%s every held message matching a filter (audited with the count); without --yes, only count them", strings.ToUpper(action[:1])+action[1:]),
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			f.State, f.Limit = string(store.HoldHeld), 1
			l, err := c.ListHolds(cmd.Context(), f)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if l.Total == 0 {
				fmt.Fprintln(out, "no held message matches")
				return nil
			}
			if !yes {
				fmt.Fprintf(out, "%d held messages match (newest hold %d); with --yes they are %s\n", l.Total, l.Newest, what)
				return nil
			}
			res, err := c.BulkHolds(cmd.Context(), api.BulkHoldsRequest{Action: action, Filter: f, Through: l.Newest, Expect: l.Total})
			if err != nil {
				return err
			}
			for _, fl := range res.Failed {
				fmt.Fprintf(out, "hold %d: %s\n", fl.ID, oneLine(fl.Error))
			}
			fmt.Fprintf(out, "%s %d of %d held messages", action, res.Done, res.Matched)
			if res.Remaining > 0 {
				fmt.Fprintf(out, "; %d more match: run the command again", res.Remaining)
			}
			fmt.Fprintln(out)
			if len(res.Failed) > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d held messages could not be %sd", len(res.Failed), action)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&f.Account, "account", "", "only this account")
	cmd.Flags().StringVar(&f.Reason, "reason", "", "only messages held for this reason")
	cmd.Flags().StringVar(&f.ClientFamily, "client-family", "", "only messages from this client family")
	cmd.Flags().BoolVar(&yes, "yes", false, "act; without it the command only counts")
	return cmd
}

func auditCmd(g *globals) *cobra.Command {
	var asJSON bool
	var limit int
	var target string
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show the audit log: who did what, when",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			es, err := c.ListAudit(cmd.Context(), store.AuditFilter{Target: target, Limit: limit})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), es)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tACTOR\tACTION\tTARGET\tDETAIL")
			for _, e := range es {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format(time.DateTime), e.Actor, e.Action, oneLine(e.Target), oneLine(e.Detail))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many")
	cmd.Flags().StringVar(&target, "target", "", "only entries for this target, e.g. hold:12")
	return cmd
}

func writeHold(w io.Writer, h *store.Hold) {
	fmt.Fprintf(w, "ID:          %d\n", h.ID)
	fmt.Fprintf(w, "Queue ID:    %s\n", h.QueueID)
	fmt.Fprintf(w, "State:       %s (since %s", h.State, h.StateAt.Local().Format(time.DateTime))
	if h.StateBy != "" {
		fmt.Fprintf(w, ", by %s", h.StateBy)
	}
	fmt.Fprintln(w, ")")
	fmt.Fprintf(w, "Held at:     %s (by the %s path)\n", h.HeldAt.Local().Format(time.RFC3339), h.Path)
	fmt.Fprintf(w, "Reasons:     %s\n", strings.Join(h.Reasons, ", "))
	for _, r := range h.Reasons {
		t := api.LetThrough[r]
		if t == "" {
			t = "the site's rule of this name not matching (rules: in the configuration)."
		}
		fmt.Fprintf(w, "  would have gone through with (%s): %s\n", r, t)
	}
	fmt.Fprintf(w, "Account:     %s\n", oneLine(h.Account))
	fmt.Fprintf(w, "Sender:      %s\n", oneLine(h.Sender))
	fmt.Fprintf(w, "Client:      %s [%s] from %s\n", oneLine(h.Client), h.ClientFamily, h.ClientAddress)
	fmt.Fprintf(w, "Subject:     %s\n", oneLine(h.Subject))
	fmt.Fprintf(w, "Size:        %d bytes\n", h.Size)
	fmt.Fprintf(w, "Recipients:  %d\n", h.RecipientCount)
	for i, r := range h.Recipients {
		if i == 20 {
			fmt.Fprintf(w, "  … and %d more\n", len(h.Recipients)-20)
			break
		}
		fmt.Fprintf(w, "  %s\n", oneLine(r))
	}
	if h.Headers != "" {
		fmt.Fprintf(w, "\nHeaders:\n%s\n", strings.TrimRight(h.Headers, "\r\n"))
	}
	if h.Preview != "" {
		fmt.Fprintf(w, "\nPreview:\n%s\n", strings.TrimRight(h.Preview, "\r\n"))
	}
}
