package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/milter"
	"github.com/mailbrake/mailbrake/internal/postfixtest"
)

// This file models how a Zimbra MTA turns LDAP attributes into main.cf and
// master.cf, from Zimbra's own sources, to check what `mailbrake
// zimbra-config` prints:
//
//   - Zimbra/zm-ldap-utilities conf/zmconfigd.cf, commit
//     9cbc6ea1eb44b35429fa3e68ce7648ef38cb1df1 (SECTION mta lines 109–119,
//     242): which postconf keys come from which attributes;
//   - Zimbra/zm-jython jylibs/serverconfig.py lines 136–145 and
//     jylibs/state.py lines 356–382, 969–1018 (contains, exact), commit
//     10b6631e05f2bb8df6282ad5a65398811444cc70: the milter rewrite and the
//     template directives;
//   - Zimbra/zm-mta zmconfigd/smtpd_recipient_restrictions.cf, commit
//     d13735534490ab208d98399cc77b21bcaa47c904;
//   - Zimbra/zm-postfix conf/postfix/master.cf.in lines 123–151, commit
//     06c5ad4606769e6a283f8652404a5216162a9caf: the post-amavis
//     re-injection service.

// zmRecipientTemplate is zm-mta zmconfigd/smtpd_recipient_restrictions.cf
// (all 25 lines, commit d13735534490).
const zmRecipientTemplate = `%%contains VAR:zimbraMtaRestriction check_client_access lmdb:/opt/zimbra/conf/postfix_blacklist%%
%%contains VAR:zimbraServiceEnabled cbpolicyd^ check_policy_service inet:localhost:%%zimbraCBPolicydBindPort%%%%
reject_non_fqdn_recipient
permit_sasl_authenticated
permit_mynetworks
reject_unlisted_recipient
%%exact VAR:zimbraMtaRestriction reject_invalid_helo_hostname%%
%%exact VAR:zimbraMtaRestriction reject_non_fqdn_helo_hostname%%
%%exact VAR:zimbraMtaRestriction reject_non_fqdn_sender%%
%%exact VAR:zimbraMtaRestriction reject_unknown_client_hostname%%
%%exact VAR:zimbraMtaRestriction reject_unknown_reverse_client_hostname%%
%%exact VAR:zimbraMtaRestriction reject_unknown_helo_hostname%%
%%exact VAR:zimbraMtaRestriction reject_unknown_sender_domain%%
%%exact VAR:zimbraMtaRestriction reject_unverified_recipient%%
%%contains VAR:zimbraMtaRestriction check_recipient_access lmdb:/opt/zimbra/conf/postfix_recipient_access%%
%%contains VAR:zimbraMtaRestriction check_client_access lmdb:/opt/zimbra/conf/postfix_rbl_override%%
%%contains VAR:zimbraMtaRestriction check_reverse_client_hostname_access pcre:/opt/zimbra/conf/fqrdns.pcre%%
%%explode reject_rbl_client VAR:zimbraMtaRestrictionRBLs%%
%%explode reject_rhsbl_client VAR:zimbraMtaRestrictionRHSBLCs%%
%%explode reject_rhsbl_reverse_client VAR:zimbraMtaRestrictionRHSBLRCs%%
%%explode reject_rhsbl_sender VAR:zimbraMtaRestrictionRHSBLSs%%
%%contains VAR:zimbraMtaRestriction check_policy_service unix:private/policy%%
%%contains VAR:zimbraMtaRestriction check_recipient_access ldap:/opt/zimbra/conf/ldap-splitdomain.cf%%
%%exact VAR:zimbraMtaRestriction reject%%
permit
`

// zmMasterReinject is zm-postfix conf/postfix/master.cf.in lines 123–151
// (commit 06c5ad460676), the service amavis hands mail back to, followed by
// the next service's first line (line 152).
const zmMasterReinject = `[%%zimbraLocalBindAddress%%]:10025 inet n  -       n       -       -  smtpd
	-o content_filter=
	-o local_recipient_maps=
	-o virtual_mailbox_maps=
	-o virtual_alias_maps=
	-o relay_recipient_maps=
	-o smtpd_restriction_classes=
	-o smtpd_delay_reject=no
	-o smtpd_client_restrictions=permit_mynetworks,reject
	-o smtpd_data_restrictions=
	-o smtpd_end_of_data_restrictions=
	-o smtpd_helo_restrictions=
	-o smtpd_milters=
	-o smtpd_sender_restrictions=
	-o smtpd_reject_unlisted_sender=no
	-o smtpd_relay_restrictions=
	-o smtpd_recipient_restrictions=permit_mynetworks,reject
	-o smtpd_sasl_auth_enable=no
	-o mynetworks_style=host
	-o mynetworks=127.0.0.0/8,[::1]/128
	-o strict_rfc821_envelopes=yes
	-o smtpd_error_sleep_time=0
	-o smtpd_soft_error_limit=1001
	-o smtpd_hard_error_limit=1000
	-o smtpd_client_connection_count_limit=0
	-o smtpd_client_connection_rate_limit=0
	-o receive_override_options=no_header_body_checks,no_unknown_recipient_checks,no_address_mappings
	-o local_header_rewrite_clients=
	-o syslog_name=postfix/amavisd
[%%zimbraLocalBindAddress%%]:10030 inet n - n - - smtpd
`

// fakeZmprov keeps attributes as files: $ZMSTORE/global/<attr> and
// $ZMSTORE/server/<attr>, and answers the zmprov commands zimbra-config
// uses (mcf, ms, gs with serverInherited attributes, fc).
const fakeZmprov = `#!/bin/sh
set -e
cmd=$1; shift
case "$cmd" in
mcf) dir=$ZMSTORE/global ;;
ms) shift; dir=$ZMSTORE/server ;;
gs) shift; echo "# name mta.example"
    for a in "$@"; do
      if [ -f "$ZMSTORE/server/$a" ]; then echo "$a: $(cat "$ZMSTORE/server/$a")"
      elif [ -f "$ZMSTORE/global/$a" ]; then echo "$a: $(cat "$ZMSTORE/global/$a")"; fi
    done; exit 0 ;;
fc) echo "$*" >> "$ZMSTORE/flushed"; exit 0 ;;
*) echo "fake zmprov: $cmd not modelled" >&2; exit 1 ;;
esac
mkdir -p "$dir"
while [ $# -ge 2 ]; do printf '%s' "$2" > "$dir/$1"; shift 2; done
`

// zmconfigd renders the main.cf settings zimbra-config is about from the
// fake store, as zmconfigd does.
type zmconfigd struct{ store string }

// v is lookUpConfig("VAR", key): the global value, overridden by the
// server's (state.py lines 363–369); ok false when neither is set.
func (z zmconfigd) v(key string) (string, bool) {
	for _, scope := range []string{"server", "global"} {
		if b, err := os.ReadFile(filepath.Join(z.store, scope, key)); err == nil {
			return string(b), true
		}
	}
	return "", false
}

// isTrue is state.py's checkConditional truth: not empty, not no/false/0.
func isTrue(s string) bool {
	return s != "" && !regexp.MustCompile(`(?i)^(no|false|0+)`).MatchString(s)
}

func (z zmconfigd) mainCF() map[string]string {
	out := map[string]string{}
	// serverconfig.py 136–145: smtpd milters count only with Zimbra's
	// milter server on, which is then appended.
	milters, _ := z.v("zimbraMtaSmtpdMilters")
	if enabled, _ := z.v("zimbraMilterServerEnabled"); enabled == "TRUE" {
		port, ok := z.v("zimbraMilterBindPort")
		if !ok {
			port = "7026"
		}
		zm := "inet:127.0.0.1:" + port
		if milters != "" {
			milters = milters + ", " + zm
		} else {
			milters = zm
		}
	} else {
		milters = ""
	}
	// zmconfigd.cf 109–112: cleared, then copied when true.
	out["smtpd_milters"] = ""
	if isTrue(milters) {
		out["smtpd_milters"] = milters
	}
	// zmconfigd.cf 242: POSTCONF milter_default_action VAR …, default tempfail.
	out["milter_default_action"] = "tempfail"
	if a, ok := z.v("zimbraMtaMilterDefaultAction"); ok {
		out["milter_default_action"] = a
	}
	// zmconfigd.cf 117–119: cleared unless cbpolicyd is a service.
	out["smtpd_end_of_data_restrictions"] = ""
	out["smtpd_recipient_restrictions"] = z.render(zmRecipientTemplate)
	return out
}

// render expands a zmconfigd FILE template: each line transformed, empty
// ones dropped, joined with ", " (state.py 372–378), with contains
// (substring, 969–990), exact (whitespace token, 992–1018) and explode
// (1043–1058); multi-valued attributes are space-joined (config.py 31–39).
func (z zmconfigd) render(tmpl string) string {
	var lines []string
	directive := regexp.MustCompile(`^%%(contains|exact|explode) (.*)%%$`)
	for _, l := range strings.Split(tmpl, "\n") {
		l = strings.TrimSpace(l)
		m := directive.FindStringSubmatch(l)
		if m == nil {
			if l != "" {
				lines = append(lines, l)
			}
			continue
		}
		switch m[1] {
		case "contains", "exact":
			st, replace, _ := strings.Cut(m[2], "^")
			f := strings.SplitN(st, " ", 2)
			key := strings.TrimPrefix(f[0], "VAR:")
			needle := strings.TrimSpace(f[1])
			val, _ := z.v(key)
			hit := strings.Contains(val, needle)
			if m[1] == "exact" {
				hit = slices.Contains(strings.Fields(val), needle)
			}
			if hit {
				if replace = strings.TrimSpace(replace); replace == "" {
					replace = needle
				}
				lines = append(lines, replace)
			}
		case "explode":
			f := strings.Fields(m[2])
			val, _ := z.v(strings.TrimPrefix(f[len(f)-1], "VAR:"))
			for _, v := range strings.Fields(val) {
				lines = append(lines, strings.Join(f[:len(f)-1], " ")+" "+v)
			}
		}
	}
	return strings.Join(lines, ", ")
}

// TestZimbraConfigAgainstTemplates runs `mailbrake zimbra-config` against a
// fake zmprov, renders main.cf and the re-injection service the way
// zmconfigd does from Zimbra's templates (above), and loads the result into
// a real Postfix with a content filter playing amavis: mail is decided by
// mailbrake's milter, Zimbra's own milter still runs, the re-injected pass
// reaches mailbrake and is only learned from. It also shows why no policy
// service is printed: zimbraMtaRestriction cannot carry one.
func TestZimbraConfigAgainstTemplates(t *testing.T) {
	dir := t.TempDir()
	bin, store, home := filepath.Join(dir, "bin"), filepath.Join(dir, "store"), filepath.Join(dir, "zimbra")
	for _, d := range []string{bin, store, filepath.Join(home, "common", "conf")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range map[string]string{
		"zmprov":     fakeZmprov,
		"zmhostname": "#!/bin/sh\necho mta.example\n",
		"zmmtactl":   "#!/bin/sh\necho \"$*\" >> \"$ZMSTORE/mtactl\"\n",
	} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	masterIn := filepath.Join(home, "common", "conf", "master.cf.in")
	if err := os.WriteFile(masterIn, []byte(zmMasterReinject), 0o644); err != nil {
		t.Fatal(err)
	}

	// Zimbra's own milter (zmmilterctl), which the site's mail keeps going
	// through: an accept-all milter on the port zimbraMilterBindPort names.
	zln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	zsrv := &milter.Server{Handler: acceptAll{}}
	go zsrv.Serve(zln)
	t.Cleanup(func() { zsrv.Shutdown(context.Background()) })
	_, zport, _ := net.SplitHostPort(zln.Addr().String())
	if err := os.MkdirAll(filepath.Join(store, "global"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(store, "global", "zimbraMilterBindPort"), []byte(zport), 0o644)

	mAddr := freeAddr(t)
	cfgPath := filepath.Join(dir, "mailbrake.yaml")
	os.WriteFile(cfgPath, []byte("milter: {listen: "+mAddr+"}\n"), 0o600)
	script, err := exec.Command(binary, "zimbra-config", "--config", cfgPath).Output()
	if err != nil {
		t.Fatalf("zimbra-config: %v", err)
	}
	scriptPath := filepath.Join(dir, "zimbra-config.sh")
	os.WriteFile(scriptPath, script, 0o600)
	runScript := func() {
		t.Helper()
		cmd := exec.Command("sh", scriptPath)
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "ZMSTORE="+store, "ZIMBRA_HOME="+home)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("zimbra-config script: %v\n%s\n%s", err, out, script)
		}
	}
	runScript()
	runScript() // idempotent: a second run changes nothing
	z := zmconfigd{store: store}
	main := z.mainCF()
	wantMilters := "{ inet:" + mAddr + ", default_action=tempfail }, inet:127.0.0.1:" + zport
	if main["smtpd_milters"] != wantMilters {
		t.Fatalf("rendered smtpd_milters = %q, want %q", main["smtpd_milters"], wantMilters)
	}
	for _, a := range []string{"zimbraSmtpSendAddAuthenticatedUser", "zimbraSmtpSendAddMailer", "zimbraSmtpSendAddOriginatingIP"} {
		if v, _ := z.v(a); v != "TRUE" {
			t.Errorf("%s = %q, want TRUE", a, v)
		}
		if _, server := os.Stat(filepath.Join(store, "server", a)); server == nil {
			t.Errorf("%s set on the server; it exists only in the global config", a)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(store, "flushed")); !strings.Contains(string(b), "-a config") {
		t.Error("the global config cache is not flushed on all servers (zmprov fc -a config)")
	}
	master, _ := os.ReadFile(masterIn)
	block := strings.SplitN(string(master), "[%%zimbraLocalBindAddress%%]:10030", 2)[0]
	if strings.Count(block, "smtpd_milters=inet:"+mAddr) != 1 || !strings.Contains(block, "-o milter_default_action=accept") || strings.Contains(block, "-o smtpd_milters=\n") {
		t.Fatalf("master.cf.in 10025 service not given mailbrake's milter once:\n%s", block)
	}
	if _, err := os.Stat(masterIn + ".mailbrake-orig"); err != nil {
		t.Errorf("the original master.cf.in was not kept: %v", err)
	}

	// zimbraMtaRestriction cannot carry a policy service: the template
	// drops it.
	os.MkdirAll(filepath.Join(store, "global"), 0o755)
	os.WriteFile(filepath.Join(store, "global", "zimbraMtaRestriction"), []byte("reject_invalid_helo_hostname reject_non_fqdn_sender check_policy_service inet:127.0.0.1:10041"), 0o644)
	if rr := z.mainCF()["smtpd_recipient_restrictions"]; strings.Contains(rr, "10041") ||
		rr != "reject_non_fqdn_recipient, permit_sasl_authenticated, permit_mynetworks, reject_unlisted_recipient, reject_invalid_helo_hostname, reject_non_fqdn_sender, permit" {
		t.Fatalf("rendered smtpd_recipient_restrictions = %q", rr)
	}

	// The rendered configuration on a real Postfix, amavis played by the
	// test's content filter, the re-injection service as rendered.
	var reinject []string
	for _, l := range strings.Split(block, "\n")[1:] {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "-o ") && !strings.HasPrefix(l, "-o mynetworks_style") {
			reinject = append(reinject, l)
		}
	}
	in := postfixtest.Start(t, postfixtest.Options{ContentFilter: true, Filter: spamFilter, ReinjectOptions: reinject,
		ExtraMainCF: map[string]string{"smtpd_milters": main["smtpd_milters"], "milter_default_action": main["milter_default_action"],
			"smtpd_end_of_data_restrictions": main["smtpd_end_of_data_restrictions"]}})
	d := startDaemon(t, daemonOptions{Milter: mAddr, PostfixConfigDir: in.ConfigDir, ReinjectionListeners: []string{in.ReinjectAddr}})
	in.Run(t, "postfix", "check")
	relay := [][2]string{{"X-Originating-IP", "[198.51.100.23]"}, {"X-Mailer", zclient}, {"X-Authenticated-User", "alice@campus.example"}}
	bulk := in.Send(t, postfixtest.SendOptions{From: "alice@campus.example", To: recipients(60, "dest.example"), Data: relayedMessage("zimbra bulk", nil, relay)})
	if !bulk.Accepted {
		t.Fatalf("not accepted: %s\n%s", bulk.Transcript, tailLines(in.MailLog(), 20))
	}
	h := d.waitHold(bulk.QueueID)
	if h.Account != "alice@campus.example" || !slices.Contains(h.Reasons, "bulk-from-scripted-client") {
		t.Fatalf("hold %+v", h)
	}
	ok := in.Send(t, postfixtest.SendOptions{From: "bob@campus.example", To: recipients(2, "dest.example"),
		Data: relayedMessage("zimbra ordinary", nil, [][2]string{{"X-Originating-IP", "[198.51.100.24]"}, {"X-Mailer", ajax}, {"X-Authenticated-User", "bob@campus.example"}})})
	if !ok.Accepted {
		t.Fatalf("not accepted: %s", ok.Transcript)
	}
	in.Sink.WaitRecipients(t, 2, 30*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.log.String(), "re-injected message") {
		if time.Now().After(deadline) {
			t.Fatal("the re-injected pass did not reach mailbrake's milter")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b := d.account("bob@campus.example"); b.Counters.Messages24h != 1 {
		t.Errorf("bob counted %d times", b.Counters.Messages24h)
	}
}

// acceptAll is Zimbra's own milter as far as this test is concerned.
type acceptAll struct{}

func (acceptAll) EndOfMessage(context.Context, *milter.Message) (milter.Decision, error) {
	return milter.Decision{Kind: milter.Accept}, nil
}
