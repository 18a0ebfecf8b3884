package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mailbrake/mailbrake/internal/config"
)

// postfixEndpoint turns a listen address into Postfix's inet:/unix: form.
func postfixEndpoint(listen string) string {
	if rest, ok := strings.CutPrefix(listen, "unix:"); ok {
		return "unix:" + rest
	}
	return "inet:" + listen
}

func failureActions(mode string) (milterAction, policyDefault string, err error) {
	switch mode {
	case "tempfail":
		// Nothing is lost: the client keeps the message and retries.
		return "tempfail", "451 4.3.5 Policy service unavailable, try again later", nil
	case "accept":
		return "accept", "DUNNO", nil
	}
	return "", "", &exitError{code: 2, err: fmt.Errorf("--on-failure must be tempfail or accept, got %q", mode)}
}

func postfixConfigCmd(g *globals) *cobra.Command {
	var onFailure string
	cmd := &cobra.Command{
		Use:   "postfix-config",
		Short: "Print the main.cf lines that connect Postfix to mailbrake",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.loadConfig()
			if err != nil {
				return err
			}
			ma, pd, err := failureActions(onFailure)
			if err != nil {
				return err
			}
			WritePostfixConfig(cmd.OutOrStdout(), c, ma, pd)
			return nil
		},
	}
	cmd.Flags().StringVar(&onFailure, "on-failure", "tempfail", "when mailbrake is down: tempfail (4xx, nothing lost) or accept (fail open)")
	return cmd
}

// WritePostfixConfig prints main.cf settings for c.
func WritePostfixConfig(w io.Writer, c *config.Config, milterAction, policyDefault string) {
	fmt.Fprintln(w, "# main.cf settings for mailbrake. Merge them into your existing restrictions:")
	fmt.Fprintln(w, "# check_policy_service must come BEFORE permit_sasl_authenticated and")
	fmt.Fprintln(w, "# permit_mynetworks, or it never runs for your own (authenticated) senders.")
	fmt.Fprintln(w, "# Relay permission stays in smtpd_relay_restrictions.")
	if c.Milter.Enabled {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "# Milter: sees headers and body (client fingerprint, preview); holds by quarantine.")
		fmt.Fprintf(w, "smtpd_milters = %s\n", postfixEndpoint(c.Milter.Listen))
		fmt.Fprintln(w, "milter_protocol = 6")
		fmt.Fprintf(w, "milter_default_action = %s\n", milterAction)
		fmt.Fprintln(w, "milter_mail_macros = i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}")
		fmt.Fprintln(w, "milter_end_of_data_macros = i")
	}
	if c.Policy.Enabled {
		svc := fmt.Sprintf("check_policy_service { %s, timeout=10s, default_action=%s }", postfixEndpoint(c.Policy.Listen), policyDefault)
		fmt.Fprintln(w)
		fmt.Fprintln(w, "# Policy delegation: per-recipient rate checks at RCPT, the per-message verdict")
		fmt.Fprintln(w, "# (HOLD) at END-OF-DATA, where recipient_count is known.")
		fmt.Fprintln(w, "smtpd_recipient_restrictions =")
		fmt.Fprintf(w, "    %s,\n", svc)
		fmt.Fprintln(w, "    permit_sasl_authenticated,")
		fmt.Fprintln(w, "    permit_mynetworks,")
		fmt.Fprintln(w, "    reject_unauth_destination")
		fmt.Fprintln(w, "smtpd_end_of_data_restrictions =")
		fmt.Fprintf(w, "    %s\n", svc)
		fmt.Fprintln(w, "# Keep policy connections open between requests (seconds).")
		fmt.Fprintln(w, "smtpd_policy_service_max_idle = 300s")
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "# Apply with: postfix reload")
}

func zimbraConfigCmd(g *globals) *cobra.Command {
	var onFailure string
	cmd := &cobra.Command{
		Use:   "zimbra-config",
		Short: "Print the zmprov commands that connect a Zimbra MTA to mailbrake",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.loadConfig()
			if err != nil {
				return err
			}
			ma, _, err := failureActions(onFailure)
			if err != nil {
				return err
			}
			WriteZimbraConfig(cmd.OutOrStdout(), c, ma)
			return nil
		},
	}
	cmd.Flags().StringVar(&onFailure, "on-failure", "tempfail", "when mailbrake is down: tempfail (4xx, nothing lost) or accept (fail open)")
	return cmd
}

// WriteZimbraConfig prints zmprov commands for c. Zimbra regenerates
// main.cf from LDAP (zmconfigd), so hand edits to main.cf are lost.
func WriteZimbraConfig(w io.Writer, c *config.Config, milterAction string) {
	fmt.Fprintln(w, "# Run as the zimbra user on each MTA server. zmconfigd rewrites main.cf from")
	fmt.Fprintln(w, "# these attributes, so do not edit main.cf by hand.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "# Webmail relays to the MTA without SASL; name the account in a header so")
	fmt.Fprintln(w, "# mailbrake can charge the right account (trust only your mailbox servers:")
	fmt.Fprintln(w, "# identity.trusted_networks in the mailbrake config).")
	fmt.Fprintln(w, "zmprov mcf zimbraSmtpSendAddAuthenticatedUser TRUE")
	fmt.Fprintln(w, "# Keep X-Mailer: it is how the scripted HTML client (zclient) is recognised.")
	fmt.Fprintln(w, "zmprov mcf zimbraSmtpSendAddMailer TRUE")
	fmt.Fprintln(w)
	if c.Milter.Enabled {
		fmt.Fprintln(w, "# The milter is the path that sees webmail: Zimbra's recipient restrictions")
		fmt.Fprintln(w, "# permit mynetworks (the mailbox servers) before any policy check.")
		fmt.Fprintf(w, "zmprov ms $(zmhostname) zimbraMtaSmtpdMilters %s\n", postfixEndpoint(c.Milter.Listen))
		fmt.Fprintf(w, "zmprov ms $(zmhostname) zimbraMtaMilterDefaultAction %s\n", milterAction)
	}
	if c.Policy.Enabled {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "# Optional, for SMTP AUTH submissions (port 587): per-recipient rate checks.")
		fmt.Fprintln(w, "# zimbraMtaRestriction entries are placed in smtpd_recipient_restrictions.")
		fmt.Fprintf(w, "zmprov mcf +zimbraMtaRestriction \"check_policy_service %s\"\n", postfixEndpoint(c.Policy.Listen))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "# Apply: zmmtactl restart (or wait for zmconfigd)")
}
