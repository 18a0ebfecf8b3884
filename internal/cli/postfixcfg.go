package cli

import (
	"fmt"
	"io"
	"slices"
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
	var onFailure, postfixDir, wiring string
	var services []string
	cmd := &cobra.Command{
		Use:   "postfix-config",
		Short: "Print a shell script of postconf commands that connect Postfix to mailbrake",
		Long: `Prints a shell script of postconf commands that wire Postfix to mailbrake:
the milter appended to smtpd_milters with its own default_action, the
policy service first in smtpd_recipient_restrictions and in
smtpd_end_of_data_restrictions, and mailbrake's milter on a content
filter's re-injection services. Review it, then run it as root:

    mailbrake postfix-config > wire-mailbrake.sh && sh wire-mailbrake.sh

Running it again changes nothing more.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.loadConfig()
			if err != nil {
				return err
			}
			ma, pd, err := failureActions(onFailure)
			if err != nil {
				return err
			}
			if wiring != "main" && wiring != "submission" {
				return &exitError{code: 2, err: fmt.Errorf("--wiring must be main or submission, got %q", wiring)}
			}
			for _, svc := range services {
				if name, typ, ok := strings.Cut(svc, "/"); !ok || name == "" || typ == "" || strings.ContainsAny(svc, " \t'\"$") {
					return &exitError{code: 2, err: fmt.Errorf("--services: %q is not service/type (as in master.cf: submission/inet)", svc)}
				}
			}
			WritePostfixConfig(cmd.OutOrStdout(), c, PostfixWiring{MilterAction: ma, PolicyDefault: pd, ConfigDir: postfixDir,
				Submission: wiring == "submission", Services: services})
			return nil
		},
	}
	cmd.Flags().StringVar(&onFailure, "on-failure", "tempfail", "when mailbrake is down: tempfail (4xx, nothing lost) or accept (fail open)")
	cmd.Flags().StringVar(&postfixDir, "postfix-dir", "", "Postfix configuration directory (postconf -c, postfix -c); empty for the default instance")
	cmd.Flags().StringVar(&wiring, "wiring", "main", "main: every smtpd, port 25 included (main.cf); submission: only --services (master.cf), so inbound mail never depends on mailbrake")
	cmd.Flags().StringSliceVar(&services, "services", []string{"submission/inet", "smtps/inet"}, "with --wiring submission: the master.cf services (service/type) that clients log in to")
	return cmd
}

// PostfixWiring is how WritePostfixConfig wires Postfix.
type PostfixWiring struct {
	// MilterAction is the milter's default_action when mailbrake does not
	// answer: tempfail or accept.
	MilterAction string
	// PolicyDefault is the policy service's default_action: a 4xx reply
	// or DUNNO.
	PolicyDefault string
	// ConfigDir is the Postfix configuration directory; "" for the
	// default instance.
	ConfigDir string
	// Submission wires only the master.cf services in Services (the
	// submission and smtps ports) instead of main.cf's smtpd settings,
	// which every smtpd uses, port 25 included: inbound mail then never
	// depends on mailbrake.
	Submission bool
	Services   []string // service/type, e.g. submission/inet
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// policyService is the check_policy_service restriction in Postfix 3.0's
// per-client form. An attribute whose value has spaces must itself be in
// braces, or smtpd dies with "fatal: malformed option" (postconf(5),
// "{ name = value }").
func policyService(endpoint, defaultAction string) string {
	da := "default_action=" + defaultAction
	if strings.ContainsAny(defaultAction, " \t,") {
		da = "{ default_action = " + defaultAction + " }"
	}
	return "check_policy_service { " + endpoint + ", timeout=10s, " + da + " }"
}

// WritePostfixConfig prints a POSIX shell script of postconf commands for
// c. It appends to what the site has (other milters, restrictions) and is
// idempotent: each change is made only when mailbrake's endpoint is not in
// the setting yet. internal/e2e runs it against a real Postfix.
func WritePostfixConfig(w io.Writer, c *config.Config, o PostfixWiring) {
	pc, pf := "postconf", "postfix"
	if o.ConfigDir != "" {
		pc, pf = "postconf -c "+shellQuote(o.ConfigDir), "postfix -c "+shellQuote(o.ConfigDir)
	}
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("#!/bin/sh")
	p("# Wires Postfix to mailbrake (generated by `mailbrake postfix-config`).")
	p("# Review it, then run it as root. Running it again changes nothing more.")
	p("#")
	p("# Who decides what:")
	p("# - Clients that log in (SMTP AUTH): the policy service, at RCPT (per recipient,")
	p("#   rate limits; this is where a message is counted when your Postfix asks only")
	p("#   at RCPT) and at END-OF-DATA (recipient_count known; HOLD of the whole message),")
	p("#   and the milter, which also sees headers and body.")
	p("# - Mail relayed without SMTP AUTH from identity.trusted_networks (webmail such")
	p("#   as Zimbra's mailbox servers): only the milter, which reads the relay's")
	p("#   account header. The policy service answers DUNNO for it and counts nothing.")
	p("# - Mail from anyone else is inbound: never charged to an account.")
	p("#")
	if o.MilterAction == "tempfail" && o.Submission {
		p("# --on-failure tempfail: while mailbrake is down, Postfix answers 4xx on the")
		p("# wired services only (clients retry; nothing is lost). Port 25, inbound mail")
		p("# included, does not depend on mailbrake. --on-failure accept lets mail through")
		p("# unchecked instead.")
	} else if o.MilterAction == "tempfail" {
		p("# --on-failure tempfail: while mailbrake is down, Postfix answers 4xx to every")
		p("# message these checks apply to, INBOUND MAIL FROM THE INTERNET INCLUDED: senders")
		p("# retry later, nothing is lost, but nothing arrives until mailbrake is back.")
		p("# --on-failure accept lets mail through unchecked instead.")
	} else {
		p("# --on-failure accept: while mailbrake is down, mail passes unchecked.")
	}
	p("set -e")
	if o.Submission {
		writeSubmissionWiring(p, pc, c, o)
	}
	if c.Milter.Enabled && !o.Submission {
		ep := postfixEndpoint(c.Milter.Listen)
		m := "{ " + ep + ", default_action=" + o.MilterAction + " }"
		p("")
		p("# 1. The milter, appended to smtpd_milters (other milters stay, in order), with")
		p("#    its own default_action (Postfix 3.0 per-milter settings), so")
		p("#    milter_default_action for your other milters is unchanged. It asks")
		p("#    Postfix for the macros it needs itself: milter_*_macros are left alone.")
		p("cur=$(%s -h smtpd_milters)", pc)
		p("case \"$cur\" in")
		p("*%s*) ;;", ep)
		p("*) %s -e \"smtpd_milters = ${cur:+$cur, }%s\" ;;", pc, m)
		p("esac")
	}
	if c.Policy.Enabled && !o.Submission {
		ep := postfixEndpoint(c.Policy.Listen)
		svc := policyService(ep, o.PolicyDefault)
		p("")
		p("# 2. The policy service first in smtpd_recipient_restrictions (before")
		p("#    permit_sasl_authenticated and permit_mynetworks, or it never runs for your")
		p("#    own senders) and in smtpd_end_of_data_restrictions. Relay permission stays")
		p("#    in smtpd_relay_restrictions.")
		for _, key := range []string{"smtpd_recipient_restrictions", "smtpd_end_of_data_restrictions"} {
			p("cur=$(%s -h %s)", pc, key)
			p("case \"$cur\" in")
			p("*%s*) ;;", ep)
			p("*) %s -e \"%s = %s${cur:+, $cur}\" ;;", pc, key, svc)
			p("esac")
		}
	}
	if c.Milter.Enabled && len(c.Postfix.ReinjectionListeners) > 0 {
		ep := postfixEndpoint(c.Milter.Listen)
		p("")
		p("# 3. A content filter (amavis, FILTER_README) hands every message back to a")
		p("#    re-injection smtpd: a second pass with a new queue ID. mailbrake listens")
		p("#    there only to learn the spam tags the filter added (phish.trust_tags); it")
		p("#    neither counts nor holds that pass (postfix.reinjection_listeners). Give")
		p("#    those services mailbrake's milter (accept when it is down) and take")
		p("#    no_milters out of their receive_override_options. Skipped for services")
		p("#    your master.cf does not have.")
		for _, l := range c.Postfix.ReinjectionListeners {
			svc := l + "/inet"
			p("if [ -n \"$(%s -M %s 2>/dev/null)\" ]; then", pc, shellQuote(svc))
			p("  %s -P %s %s", pc, shellQuote(svc+"/smtpd_milters="+ep), shellQuote(svc+"/milter_default_action=accept"))
			p("  opts=$(%s -P -h %s 2>/dev/null || true)", pc, shellQuote(svc+"/receive_override_options"))
			p("  new=$(printf '%%s' \"$opts\" | tr ', ' '\\n\\n' | grep -v -x -e no_milters -e '' | paste -s -d, -)")
			p("  [ \"$new\" = \"$opts\" ] || %s -P \"%s/receive_override_options=$new\"", pc, svc)
			p("fi")
		}
	}
	p("")
	p("%s check", pf)
	p("%s reload", pf)
}

// writeSubmissionWiring wires only the given master.cf services. A
// service's -o override replaces main.cf's value, and an override that
// names the parameter it overrides ($smtpd_milters) would refer to itself,
// so each service gets main.cf parameters of its own (as Debian's
// $mua_client_restrictions): mailbrake's milter and policy service before
// what the service used so far — its own override, or main.cf's value as
// it is now.
func writeSubmissionWiring(p func(string, ...any), pc string, c *config.Config, o PostfixWiring) {
	p("")
	p("# Submission wiring: only the services clients log in to (%s) use", strings.Join(o.Services, ", "))
	p("# mailbrake; port 25 does not, so inbound mail never depends on it. Mail that")
	p("# reaches Postfix another way (webmail relaying on port 25, a script on the")
	p("# server) is not seen: use --wiring main for that. Each service gets main.cf")
	p("# parameters of its own, mailbrake_<service>_*, holding mailbrake first and")
	p("# then what the service used so far, copied now: after changing main.cf's")
	p("# smtpd_milters or smtpd_*_restrictions, edit those parameters too.")
	type param struct{ name, value string }
	var params []param
	if c.Milter.Enabled {
		params = append(params, param{"smtpd_milters", "{ " + postfixEndpoint(c.Milter.Listen) + ", default_action=" + o.MilterAction + " }"})
	}
	if c.Policy.Enabled {
		svc := policyService(postfixEndpoint(c.Policy.Listen), o.PolicyDefault)
		params = append(params, param{"smtpd_recipient_restrictions", svc}, param{"smtpd_end_of_data_restrictions", svc})
	}
	for _, service := range o.Services {
		tag := strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
				return r
			}
			return '_'
		}, strings.ToLower(strings.SplitN(service, "/", 2)[0]))
		p("if [ -n \"$(%s -M %s 2>/dev/null)\" ]; then", pc, shellQuote(service))
		for _, pr := range params {
			own := "mailbrake_" + tag + "_" + strings.TrimPrefix(pr.name, "smtpd_")
			p("  cur=$(%s -P -h %s 2>/dev/null || true)", pc, shellQuote(service+"/"+pr.name))
			p("  case \"$cur\" in")
			p("  *'$%s'*) ;;", own)
			p("  *)")
			p("    [ -n \"$cur\" ] || cur=$(%s -h %s)", pc, pr.name)
			if pr.name == "smtpd_milters" {
				p("    %s -e \"%s = ${cur:+$cur, }%s\"", pc, own, pr.value)
			} else {
				p("    %s -e \"%s = %s${cur:+, $cur}\"", pc, own, pr.value)
			}
			p("    %s -P %s ;;", pc, shellQuote(service+"/"+pr.name+"=$"+own))
			p("  esac")
		}
		p("else")
		p("  echo \"mailbrake: no %s service in master.cf; skipped\" >&2", service)
		p("fi")
	}
}

func zimbraConfigCmd(g *globals) *cobra.Command {
	var onFailure string
	cmd := &cobra.Command{
		Use:   "zimbra-config",
		Short: "Print a shell script of zmprov commands that connect a Zimbra MTA to mailbrake",
		Long: `Prints a shell script for a Zimbra site: the global settings that make the
mailbox servers name the sending account, and, for the MTA server it runs
on, mailbrake's milter. Run it as the zimbra user on every MTA server.
docs/zimbra.md walks a multi-server site through it.`,
		Args: cobra.NoArgs,
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

// WriteZimbraConfig prints a POSIX shell script of zmprov commands for c.
// On Zimbra, zmconfigd writes main.cf from LDAP attributes (hand edits are
// lost), and only through the rules of its templates; every command here
// follows those rules, and internal/cli's TestZimbraConfigAgainstTemplates
// renders the result the way zmconfigd does (Zimbra/zm-ldap-utilities
// conf/zmconfigd.cf, Zimbra/zm-jython jylibs/serverconfig.py and state.py,
// Zimbra/zm-mta zmconfigd/*.cf, Zimbra/zm-postfix master.cf.in) and loads it
// into a real Postfix.
func WriteZimbraConfig(w io.Writer, c *config.Config, milterAction string) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("#!/bin/sh")
	p("# Connects a Zimbra MTA to mailbrake (generated by `mailbrake zimbra-config`).")
	p("# Run it as the zimbra user on every MTA server. zmconfigd writes main.cf and")
	p("# master.cf from LDAP and its templates: do not edit main.cf by hand.")
	p("# Running it again changes nothing more.")
	p("set -e")
	p("")
	p("# 1. Name the account. Webmail reaches the MTA from the mailbox servers on")
	p("#    zimbraSmtpPort (25) without SMTP AUTH, accepted because they are in")
	p("#    mynetworks; only a header the mailbox server adds says whose mail it is.")
	p("#    zimbraSmtpSendAddAuthenticatedUser is FALSE by default and exists only in")
	p("#    the global config (zm-mailbox store/conf/attrs/zimbra-attrs.xml, id 747).")
	p("#    MailSender adds it, X-Mailer (id 636, default TRUE) and X-Originating-IP")
	p("#    (id 435, default TRUE; mail without it is Zimbra's own, not a script) after")
	p("#    any copy the client wrote: mailbrake believes only the last copy.")
	p("zmprov mcf zimbraSmtpSendAddAuthenticatedUser TRUE zimbraSmtpSendAddMailer TRUE zimbraSmtpSendAddOriginatingIP TRUE")
	p("#    Mailbox servers cache the global config: make them all read it now.")
	p("zmprov fc -a config")
	if c.Milter.Enabled {
		ep := postfixEndpoint(c.Milter.Listen)
		m := "{ " + ep + ", default_action=" + milterAction + " }"
		p("")
		p("# 2. The milter, on this MTA server. It sees every message once, before amavis,")
		p("#    on ports 25, 465 and 587 (master.cf.in keeps main.cf's milters there).")
		p("#    zmconfigd writes smtpd_milters from zimbraMtaSmtpdMilters only while")
		p("#    zimbraMilterServerEnabled is TRUE, and then appends Zimbra's own milter")
		p("#    (inet:127.0.0.1:7026, started by zmmtactl): zm-jython serverconfig.py")
		p("#    lines 136-145. The attribute is one string: mailbrake's milter is appended")
		p("#    to what is there, with its own default_action (%s when mailbrake is down;", milterAction)
		p("#    zimbraMtaMilterDefaultAction still applies to the other milters).")
		p("host=$(zmhostname)")
		p("cur=$(zmprov gs \"$host\" zimbraMtaSmtpdMilters | sed -n 's/^zimbraMtaSmtpdMilters: //p')")
		p("case \"$cur\" in")
		p("*%s*) ;;", ep)
		p("*) zmprov ms \"$host\" zimbraMtaSmtpdMilters \"${cur:+$cur, }%s\" ;;", m)
		p("esac")
		p("zmprov ms \"$host\" zimbraMilterServerEnabled TRUE")
	}
	p("")
	p("# 3. No policy service: zmconfigd builds smtpd_recipient_restrictions from a")
	p("#    template that emits only restrictions it already contains, so a")
	p("#    check_policy_service in zimbraMtaRestriction is silently dropped")
	p("#    (zm-mta zmconfigd/smtpd_recipient_restrictions.cf), and it clears")
	p("#    smtpd_end_of_data_restrictions unless cbpolicyd runs (zm-ldap-utilities")
	p("#    conf/zmconfigd.cf). On Zimbra the milter decides everything: it applies the")
	p("#    RCPT-stage rules (the rate limits that defer, e.g. messages-per-hour) at the")
	p("#    end of each message none of whose recipients a policy service checked. A")
	p("#    message they defer gets a 451 at the end of the data and is not charged.")
	p("#    Rules testing recipient or recipient_domain cannot match there (no single")
	p("#    recipient).")
	if c.Milter.Enabled && slices.Contains(c.Postfix.ReinjectionListeners, "127.0.0.1:10025") {
		ep := postfixEndpoint(c.Milter.Listen)
		p("")
		p("# 4. Replies to phish: amavis adds X-Spam-Flag and the subject tag after the milter")
		p("#    saw the message, and hands it back on [127.0.0.1]:10025 with no milter")
		p("#    (master.cf.in lines 123-151: -o smtpd_milters=). Give that service")
		p("#    mailbrake's milter, which there only learns the tags (it neither counts nor")
		p("#    holds: postfix.reinjection_listeners). This edits the template zmconfigd")
		p("#    renders master.cf from; a Zimbra upgrade replaces it: run this again after")
		p("#    every upgrade. The original is kept as master.cf.in.mailbrake-orig.")
		p("f=${ZIMBRA_HOME:-/opt/zimbra}/common/conf/master.cf.in")
		p("if ! grep -q 'smtpd_milters=%s' \"$f\"; then", ep)
		p("  cp -p \"$f\" \"$f.mailbrake-orig\"")
		p("  sed -i '/^\\[%%%%zimbraLocalBindAddress%%%%\\]:10025 /,/^[^[:space:]]/ s/^\\([[:space:]]*\\)-o smtpd_milters=$/\\1-o smtpd_milters=%s\\n\\1-o milter_default_action=accept/' \"$f\"", strings.ReplaceAll(ep, "/", "\\/"))
		p("  grep -q 'smtpd_milters=%s' \"$f\" || { echo \"mailbrake: no [127.0.0.1]:10025 service with -o smtpd_milters= in $f; left unchanged\" >&2; exit 1; }", ep)
		p("fi")
	}
	p("")
	p("# Apply: zmconfigd rewrites main.cf and master.cf within a minute; or now:")
	p("zmmtactl restart")
}
