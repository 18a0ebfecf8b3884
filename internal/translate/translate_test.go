package translate

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/fingerprint"
	"github.com/mailbrake/mailbrake/internal/milter"
	"github.com/mailbrake/mailbrake/internal/policy"
	"github.com/mailbrake/mailbrake/internal/quarantine"
)

// TestClassifyClientRelayCopyDecides: the relay's X-Mailer is the last
// copy (zm-mailbox MailSender.updateHeaders adds it with addHeader, which
// ZInternetHeaders places after every existing copy; commit
// 2b7f9787c69ed6b95ce37a415ba27c50f1091c72). A forged AJAX copy written
// before it by a SOAP upload does not hide the zclient script; it is
// reported as another family.
func TestClassifyClientRelayCopyDecides(t *testing.T) {
	zclient := "Zimbra 8.8.15_GA_4545 (zclient/8.8.15_GA_4545)"
	ajax := "Zimbra 8.8.15_GA_4545 (ZimbraWebClient - GC120 (Win)/8.8.15_GA_4545)"
	ip := milter.Header{Name: "X-Originating-IP", Value: "[192.0.2.7]"}
	for _, c := range []struct {
		name   string
		hs     []milter.Header
		want   fingerprint.Family
		others []fingerprint.Family
	}{
		{"forged ajax first, relay zclient last", []milter.Header{{Name: "X-Mailer", Value: ajax}, ip, {Name: "x-mailer", Value: zclient}}, fingerprint.FamilyZimbraHTML, []fingerprint.Family{fingerprint.FamilyZimbraAjax}},
		{"forged zclient first, relay ajax last", []milter.Header{{Name: "X-Mailer", Value: zclient}, {Name: "X-Mailer", Value: ajax}, ip}, fingerprint.FamilyZimbraAjax, []fingerprint.Family{fingerprint.FamilyZimbraHTML}},
		{"client's own mailer first", []milter.Header{{Name: "X-Mailer", Value: "PHPMailer 6.0"}, {Name: "x-mailer", Value: zclient}, ip}, fingerprint.FamilyZimbraHTML, []fingerprint.Family{fingerprint.FamilyPHPMailer}},
		{"two equal copies", []milter.Header{{Name: "X-Mailer", Value: zclient}, {Name: "X-Mailer", Value: zclient}, ip}, fingerprint.FamilyZimbraHTML, nil},
		{"one copy", []milter.Header{{Name: "X-Mailer", Value: " Microsoft Outlook 16.0"}}, fingerprint.FamilyOutlook, nil},
		{"bare with originating IP", []milter.Header{{Name: "X-Mailer", Value: "Zimbra 10.0.6_GA_4638"}, ip}, fingerprint.FamilyZimbraBare, nil},
		{"bare without originating IP (out-of-office)", []milter.Header{{Name: "X-Mailer", Value: "Zimbra 10.0.6_GA_4638"}, {Name: "Auto-Submitted", Value: "auto-replied (zimbra; vacation)"}}, fingerprint.FamilyZimbraSystem, nil},
		{"none", nil, fingerprint.FamilyNone, nil},
	} {
		got, others := ClassifyClient(&milter.Message{Headers: c.hs})
		if got.Family != c.want || !slices.Equal(others, c.others) {
			t.Errorf("%s: %s %v, want %s %v", c.name, got.Family, others, c.want, c.others)
		}
	}
}

func TestTextPreview(t *testing.T) {
	msg := &milter.Message{
		Headers: []milter.Header{{Name: "Content-Type", Value: `multipart/alternative; boundary="b"`}},
		Preview: []byte("--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=C3=A9 click\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>Hello <b>there</b></p><script>x()</script>\r\n--b--\r\n"),
	}
	got := TextPreview(msg, 1000)
	for _, want := range []string{"Café click", "Hello there"} {
		if !strings.Contains(got, want) {
			t.Errorf("preview %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "x()") || strings.Contains(got, "<b>") {
		t.Errorf("preview keeps markup or script: %q", got)
	}
	if p := TextPreview(msg, 5); len(p) > 5 {
		t.Errorf("preview longer than its limit: %q", p)
	}
}

// TestStageOf: decisions are made at RCPT and at DATA or END-OF-MESSAGE
// (DATA knows recipient_count too; zmconfigd wires
// zimbraMtaSmtpdDataRestrictions there); every other state is answered
// DUNNO.
func TestStageOf(t *testing.T) {
	for state, want := range map[string]engine.Stage{policy.StateRcpt: engine.StageRcpt, policy.StateData: engine.StageEOM, policy.StateEndOfMessage: engine.StageEOM} {
		if got, ok := StageOf(state); !ok || got != want {
			t.Errorf("StageOf(%s) = %s %v, want %s", state, got, ok, want)
		}
	}
	for _, state := range []string{policy.StateConnect, policy.StateEHLO, policy.StateMail, policy.StateVRFY, "", "rcpt", "BDAT"} {
		if _, ok := StageOf(state); ok {
			t.Errorf("StageOf(%q) decides", state)
		}
	}
	if StateLabel("END-OF-MESSAGE") != "END-OF-MESSAGE" || StateLabel("x\ny") != "other" {
		t.Error("StateLabel lets an unknown state through or bounds a known one")
	}
}

// TestPolicySubmission: a SASL login decides the account; trusted mail
// without SASL is left undecided on this path (relayed_on_policy: milter);
// client_port "unknown" is 0; the listener a re-injection arrives on marks
// it; END-OF-MESSAGE with one recipient names it.
func TestPolicySubmission(t *testing.T) {
	id, err := engine.NewIdentity([]string{"10.0.0.0/8"}, "X-Authenticated-User")
	if err != nil {
		t.Fatal(err)
	}
	tr := &Translator{Identity: id, Reinjection: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:10025")}}
	sub, ok := tr.PolicySubmission(&policy.Request{ProtocolState: "END-OF-MESSAGE", SASLUsername: "Alice@Example.edu", Sender: "a@example.edu",
		ClientAddress: "192.0.2.1", ClientPort: "40123", Recipient: "r@example.net", RecipientCount: 1, QueueID: "4ABC", Instance: "i1"})
	if !ok || sub.Account != "alice@example.edu" || sub.AccountSource != engine.SourceSASL || sub.ClientPort != 40123 ||
		sub.Stage != engine.StageEOM || len(sub.Recipients) != 1 || sub.Reinjected || sub.Client.Family != fingerprint.FamilyUnknown {
		t.Fatalf("SASL: %+v %v", sub, ok)
	}
	sub, _ = tr.PolicySubmission(&policy.Request{ProtocolState: "RCPT", Sender: "bob@example.edu", ClientAddress: "10.1.2.3", ClientPort: "unknown",
		ServerAddress: "127.0.0.1", ServerPort: "10025"})
	if !sub.TrustedClient || sub.ClientPort != 0 || !sub.Reinjected {
		t.Fatalf("trusted relay on the re-injection listener: %+v", sub)
	}
	if _, ok := tr.PolicySubmission(&policy.Request{ProtocolState: "MAIL"}); ok {
		t.Fatal("MAIL decided")
	}
}

// TestMilterSubmission: the relay's copy of the account header (the last)
// names the account, earlier disagreeing copies are reported as forged;
// the relay's X-Mailer names the client.
func TestMilterSubmission(t *testing.T) {
	id, err := engine.NewIdentity([]string{"10.0.0.0/8"}, "X-Authenticated-User")
	if err != nil {
		t.Fatal(err)
	}
	tr := &Translator{Identity: id}
	zclient := "Zimbra 8.8.15_GA_4545 (zclient/8.8.15_GA_4545)"
	msg := &milter.Message{ClientAddr: "10.0.0.5", Sender: "victim@example.edu", Recipients: []string{"r@example.net"}, RecipientCount: 60, QueueID: "4QID",
		Headers: []milter.Header{{Name: "X-Authenticated-User", Value: "victim@example.edu"}, {Name: "Subject", Value: "=?utf-8?q?Caf=C3=A9?="},
			{Name: "X-Authenticated-User", Value: "mallory@example.edu"}, {Name: "X-Mailer", Value: zclient}, {Name: "X-Originating-IP", Value: "[192.0.2.9]"}}}
	sub := tr.MilterSubmission(msg)
	if sub.Account != "mallory@example.edu" || sub.AccountSource != engine.SourceHeader || !slices.Equal(sub.ForgedAccounts, []string{"victim@example.edu"}) ||
		sub.Client.Family != fingerprint.FamilyZimbraHTML || sub.Subject != "Café" || sub.RecipientCount != 60 || sub.Stage != engine.StageEOM {
		t.Fatalf("submission: %+v", sub)
	}
}

// TestVerdictAnswers: a hold is HOLD at the end of the message and DUNNO
// at RCPT on the policy path, a quarantine with the mark on the milter.
func TestVerdictAnswers(t *testing.T) {
	v := engine.Verdict{Action: engine.ActionHold, Reasons: []engine.Reason{"bulk-from-scripted-client"}}
	eom := &engine.Submission{Stage: engine.StageEOM, QueueID: "A097B988149", Account: "a@example.edu"}
	if r := PolicyResponse(eom, v); r.Action != "HOLD mailbrake: held for review (bulk-from-scripted-client)" {
		t.Errorf("policy EOM hold: %q", r.Action)
	}
	if r := PolicyResponse(&engine.Submission{Stage: engine.StageRcpt}, v); r.Action != "DUNNO" {
		t.Errorf("policy RCPT hold: %q", r.Action)
	}
	d := MilterDecision(eom, v)
	if d.Kind != milter.Quarantine || len(d.AddHeaders) != 1 || d.AddHeaders[0].Name != quarantine.MarkHeader {
		t.Fatalf("milter hold: %+v", d)
	}
	if q, a, rs, ok := quarantine.ParseMark(d.AddHeaders[0].Value); !ok || q != "A097B988149" || a != "a@example.edu" || !slices.Equal(rs, []string{"bulk-from-scripted-client"}) {
		t.Errorf("mark %q", d.AddHeaders[0].Value)
	}
	if d := MilterDecision(eom, engine.Verdict{Action: engine.ActionDefer, Text: "4.7.1 slow down"}); d.Kind != milter.TempFail || d.Code != 451 {
		t.Errorf("milter defer: %+v", d)
	}
	if ActionKeyword("HOLD mailbrake: x") != "HOLD" || ActionKeyword("451 4.7.1 x") != "4xx" || ActionKeyword("FILTER x") != "other" {
		t.Error("ActionKeyword")
	}
}

func TestOrigin(t *testing.T) {
	client := netip.MustParseAddr("::ffff:10.0.0.5")
	for _, tc := range []struct {
		source engine.AccountSource
		xoip   string
		want   string
	}{
		{engine.SourceSASL, "[203.0.113.9]", "10.0.0.5"}, // the SMTP client, unmapped; the header is not the origin
		{engine.SourceHeader, "[203.0.113.9]", "203.0.113.9"},
		{engine.SourceHeader, " [2001:db8::7] ", "2001:db8::7"},
		{engine.SourceHeader, "203.0.113.9", "203.0.113.9"},
		{engine.SourceHeader, "[not an address]", "invalid IP"},
		{engine.SourceHeader, "", "invalid IP"},
		{engine.SourceUnauthenticated, "[203.0.113.9]", "invalid IP"},
	} {
		if got := Origin(tc.source, client, tc.xoip).String(); got != tc.want {
			t.Errorf("Origin(%s, %q) = %s, want %s", tc.source, tc.xoip, got, tc.want)
		}
	}
}
