package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailbrake/mailbrake/internal/api"
)

func accountCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "account", Short: "Account states: normal, watch, restricted (all outbound mail held), locked"}

	var state string
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List accounts with a recorded state, most recent change first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			as, err := c.ListAccounts(cmd.Context(), api.ListAccountsRequest{State: state})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), as)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ACCOUNT\tSTATE\tSINCE\tBY\tREASON")
			for _, a := range as {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Name, a.State, a.StateAt.Local().Format(time.DateTime), a.StateBy, a.Reason)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&state, "state", "all", "normal, watch, restricted, locked or all")
	list.Flags().BoolVar(&asJSON, "json", false, "JSON output")

	var showJSON bool
	show := &cobra.Command{
		Use:   "show ACCOUNT",
		Short: "Show an account: state, counters, recent holds and state history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			d, err := c.GetAccount(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if showJSON {
				return writeJSON(cmd.OutOrStdout(), d)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Account:   %s\n", d.Name)
			fmt.Fprintf(w, "State:     %s", d.State)
			if !d.StateAt.IsZero() {
				fmt.Fprintf(w, " (since %s by %s: %s)", d.StateAt.Local().Format(time.DateTime), d.StateBy, d.Reason)
			}
			fmt.Fprintln(w)
			fmt.Fprintf(w, "Last hour: %d messages, %d recipients\n", d.Counters.Messages1h, d.Counters.Recipients1h)
			fmt.Fprintf(w, "Last day:  %d messages, %d recipients\n", d.Counters.Messages24h, d.Counters.Recipients24h)
			if d.Score != nil {
				fmt.Fprintln(w, "\nScore:")
				for _, l := range d.Score.Summary() {
					fmt.Fprintf(w, "  %s\n", l)
				}
			}
			if d.Baseline != nil {
				fmt.Fprintln(w, "\nNormal sending:")
				for _, l := range d.Baseline.Summary() {
					fmt.Fprintf(w, "  %s\n", l)
				}
			}
			if d.Novelty != nil {
				fmt.Fprintln(w, "\nCorrespondents:")
				for _, l := range d.Novelty.Summary() {
					fmt.Fprintf(w, "  %s\n", l)
				}
			}
			if len(d.RecentHolds) > 0 {
				fmt.Fprintln(w, "\nRecent holds:")
				for _, h := range d.RecentHolds {
					fmt.Fprintf(w, "  %d  %s  %s  %d rcpts  %s  %s\n", h.ID, h.HeldAt.Local().Format(time.DateTime), h.State, h.RecipientCount, h.ClientFamily, strings.Join(h.Reasons, ","))
				}
			}
			if len(d.RecentVerdicts) > 0 {
				fmt.Fprintln(w, "\nRecent verdicts:")
				for _, v := range d.RecentVerdicts {
					line := fmt.Sprintf("  %s  %-6s  %-5s  %d rcpts  %s", v.Time.Local().Format(time.DateTime), v.Path, v.Action, v.Recipients, strings.Join(v.Reasons, ","))
					if v.Would != "" {
						line += "  (shadow: would " + v.Would + ")"
					}
					if len(v.DryRun) > 0 {
						line += "  dry-run: " + strings.Join(v.DryRun, ",")
					}
					fmt.Fprintln(w, line)
				}
			}
			if len(d.History) > 0 {
				fmt.Fprintln(w, "\nHistory:")
				for _, e := range d.History {
					fmt.Fprintf(w, "  %s  %s  %s  %s\n", e.Time.Local().Format(time.DateTime), e.Actor, e.Action, e.Detail)
				}
			}
			return nil
		},
	}
	show.Flags().BoolVar(&showJSON, "json", false, "JSON output")

	set := func(use, short, to string) *cobra.Command {
		var reason string
		c := &cobra.Command{
			Use:   use + " ACCOUNT --reason TEXT",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if strings.TrimSpace(reason) == "" {
					return &exitError{code: 2, err: fmt.Errorf("--reason is required: it goes into the audit log")}
				}
				c, err := g.client()
				if err != nil {
					return err
				}
				a, err := c.SetAccountState(cmd.Context(), api.SetAccountStateRequest{Account: args[0], State: to, Reason: reason})
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "account %s is now %s\n", a.Name, a.State)
				return nil
			},
		}
		c.Flags().StringVar(&reason, "reason", "", "why (recorded in the audit log)")
		return c
	}
	var override bool
	var unlockReason string
	unlock := &cobra.Command{
		Use:   "unlock ACCOUNT [--reason TEXT] [--override --reason TEXT]",
		Short: "Lift a lock: refused until the lock has lasted response.min_lock and the password has changed since the account was locked",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if override && strings.TrimSpace(unlockReason) == "" {
				return &exitError{code: 2, err: fmt.Errorf("--override needs --reason: it goes into the audit log")}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			a, err := c.UnlockAccount(cmd.Context(), api.UnlockAccountRequest{Account: args[0], Override: override, Reason: unlockReason})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "account %s is unlocked (now %s)\n", a.Name, a.State)
			return nil
		},
	}
	unlock.Flags().BoolVar(&override, "override", false, "unlock although the password has not changed or the minimum lock time has not passed")
	unlock.Flags().StringVar(&unlockReason, "reason", "", "why (recorded in the audit log; required with --override)")
	cmd.AddCommand(list, show, unlock,
		set("restrict", "Restrict an account: hold all its outbound mail, and put its queued mail on hold", "restricted"),
		set("unrestrict", "Return an account to normal", "normal"),
		set("watch", "Put an account on watch", "watch"),
		set("lock", "Lock an account's login on every configured system (ends only with unlock, once the password changed)", "locked"),
	)
	return cmd
}
