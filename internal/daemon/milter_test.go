package daemon

import (
	"slices"
	"strings"
	"testing"

	"github.com/mailbrake/mailbrake/internal/fingerprint"
	"github.com/mailbrake/mailbrake/internal/milter"
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
		got, others := classifyClient(&milter.Message{Headers: c.hs})
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
	got := textPreview(msg, 1000)
	for _, want := range []string{"Café click", "Hello there"} {
		if !strings.Contains(got, want) {
			t.Errorf("preview %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "x()") || strings.Contains(got, "<b>") {
		t.Errorf("preview keeps markup or script: %q", got)
	}
	if p := textPreview(msg, 5); len(p) > 5 {
		t.Errorf("preview longer than its limit: %q", p)
	}
}
