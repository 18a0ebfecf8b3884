package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/store"
)

func incidentCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "incident", Short: "Incidents: suspected compromises of an account and the playbook steps run against them"}

	var state, account string
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List incidents, most recently updated first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			incs, err := c.ListIncidents(cmd.Context(), api.ListIncidentsRequest{State: state, Account: account})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), incs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tACCOUNT\tSTATE\tSEVERITY\tPLAYBOOK\tUPDATED\tREASONS\tWAITING")
			for _, in := range incs {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", in.ID, in.Account, in.State, in.Severity, in.Playbook,
					in.Updated.Local().Format(time.DateTime), strings.Join(in.Reasons, ","), pending(&in))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&state, "state", "active", "open, confirmed, contained, resolved, dismissed, active or all")
	list.Flags().StringVar(&account, "account", "", "only this account")
	list.Flags().BoolVar(&asJSON, "json", false, "JSON output")

	var showJSON bool
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show an incident: evidence and the outcome of every step",
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
			in, err := c.GetIncident(cmd.Context(), id)
			if err != nil {
				return err
			}
			if showJSON {
				return writeJSON(cmd.OutOrStdout(), in)
			}
			printIncident(cmd.OutOrStdout(), in)
			return nil
		},
	}
	show.Flags().BoolVar(&showJSON, "json", false, "JSON output")

	change := func(use, short, change string, needNote bool) *cobra.Command {
		var note string
		c := &cobra.Command{
			Use:   use + " ID --note TEXT",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if needNote && strings.TrimSpace(note) == "" {
					return &exitError{code: 2, err: fmt.Errorf("--note is required: it goes into the audit log")}
				}
				id, err := parseID(args[0])
				if err != nil {
					return err
				}
				c, err := g.client()
				if err != nil {
					return err
				}
				in, err := c.ChangeIncident(cmd.Context(), api.ChangeIncidentRequest{ID: id, Change: change, Note: note})
				if err != nil {
					return err
				}
				in = follow(cmd, c, in)
				fmt.Fprintf(cmd.OutOrStdout(), "incident %d on %s is %s\n", in.ID, in.Account, in.State)
				printSteps(cmd.OutOrStdout(), in)
				return nil
			},
		}
		c.Flags().StringVar(&note, "note", "", "what you found (recorded in the audit log)")
		return c
	}

	var openPlaybook, openSeverity, openNote string
	open := &cobra.Command{
		Use:   "open ACCOUNT --note TEXT [--playbook NAME]",
		Short: "Open an incident by hand (confirmed: every step of the playbook runs)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(openNote) == "" {
				return &exitError{code: 2, err: fmt.Errorf("--note is required: it goes into the audit log")}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			in, err := c.OpenIncident(cmd.Context(), api.OpenIncidentRequest{Account: args[0], Playbook: openPlaybook, Severity: openSeverity, Note: openNote})
			if err != nil {
				return err
			}
			in = follow(cmd, c, in)
			fmt.Fprintf(cmd.OutOrStdout(), "incident %d on %s is %s\n", in.ID, in.Account, in.State)
			printSteps(cmd.OutOrStdout(), in)
			return nil
		},
	}
	open.Flags().StringVar(&openPlaybook, "playbook", "", "playbook to run (default: the first configured)")
	open.Flags().StringVar(&openSeverity, "severity", "", "low, medium, high or critical (default: the playbook's)")
	open.Flags().StringVar(&openNote, "note", "", "why (recorded with the incident)")

	cmd.AddCommand(list, show, open,
		change("confirm", "Confirm a compromise: run the steps waiting for confirmation (again: retry failed steps)", api.IncidentConfirm, false),
		change("dismiss", "Dismiss a false alarm: lift the restriction or lock mailbrake set", api.IncidentDismiss, true),
		change("resolve", "Close an incident once the user was contacted and the account is unlocked", api.IncidentResolve, false),
	)
	return cmd
}

func pending(in *store.Incident) int {
	n := 0
	for _, s := range in.Steps {
		if s.Status == store.StepPending || s.Status == store.StepFailed {
			n++
		}
	}
	return n
}

func printIncident(w io.Writer, in *store.Incident) {
	fmt.Fprintf(w, "Incident:  %d\nAccount:   %s\nState:     %s", in.ID, in.Account, in.State)
	if in.StateBy != "" {
		fmt.Fprintf(w, " (by %s)", in.StateBy)
	}
	fmt.Fprintf(w, "\nSeverity:  %s\nPlaybook:  %s\nOpened:    %s\nUpdated:   %s\nReasons:   %s\n", in.Severity, in.Playbook,
		in.Opened.Local().Format(time.DateTime), in.Updated.Local().Format(time.DateTime), strings.Join(in.Reasons, ", "))
	if in.Note != "" {
		fmt.Fprintf(w, "Note:      %s\n", in.Note)
	}
	fmt.Fprintf(w, "Evidence (%d):\n", len(in.Evidence))
	for _, e := range in.Evidence {
		fmt.Fprintf(w, "  %s  %s", e.Time.Local().Format(time.DateTime), e.Reason)
		if e.HoldID != 0 {
			fmt.Fprintf(w, "  hold %d", e.HoldID)
		}
		if e.Detail != "" {
			fmt.Fprintf(w, "  %s", e.Detail)
		}
		fmt.Fprintln(w)
	}
	printSteps(w, in)
}

func printSteps(w io.Writer, in *store.Incident) {
	if len(in.Steps) == 0 {
		return
	}
	fmt.Fprintln(w, "Steps:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, s := range in.Steps {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", s.Name, s.Status, s.At.Local().Format(time.DateTime), s.Detail)
	}
	tw.Flush()
}

// followLimit bounds how long the CLI follows a playbook run: steps retry
// with backoff, and a system that does not answer fails its step well
// within it. The run goes on in the daemon either way.
const followLimit = 3 * time.Minute

// follow waits while the incident's playbook runs in the daemon (the API
// answers at once) and returns the incident as the run left it. On
// stderr it says that it waits, and when it gives up.
func follow(cmd *cobra.Command, c *api.Client, in *store.Incident) *store.Incident {
	if in == nil || !in.Running {
		return in
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "incident %d: the playbook is running…\n", in.ID)
	deadline := time.Now().Add(followLimit)
	for in.Running && time.Now().Before(deadline) {
		select {
		case <-cmd.Context().Done():
			return in
		case <-time.After(200 * time.Millisecond):
		}
		next, err := c.GetIncident(cmd.Context(), in.ID)
		if err != nil {
			break
		}
		in = next
	}
	if in.Running {
		fmt.Fprintf(cmd.ErrOrStderr(), "incident %d: still running; follow it with `mailbrake incident show %d`\n", in.ID, in.ID)
	}
	return in
}
