package translate

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/milter"
	"github.com/mailbrake/mailbrake/internal/policy"
)

// FuzzMilterSubmission: any header block becomes a submission without a
// panic; the subject is valid UTF-8 of at most 512 bytes; the account is
// one the relay's copy or the envelope named.
func FuzzMilterSubmission(f *testing.F) {
	f.Add("X-Authenticated-User: a@example.edu\nX-Authenticated-User: b@example.edu\nSubject: =?utf-8?b?w6k=?=\nX-Mailer: Zimbra 8.8.15_GA_4545 (zclient/8.8.15_GA_4545)", "10.0.0.1", "s@example.edu", "MAIL")
	f.Add("Subject: =?iso-8859-1?q?=E9t=E9?=\nReferences: <a@b> <c@d>\nReceived: from x by mx (Postfix) with ESMTP id 4ABC123 for <r@example.net>", "192.0.2.1", "", "RCPT")
	f.Add("X-Mailer:\nX-Mailer: \x00\xff\nSubject: "+strings.Repeat("é", 400), "not-an-ip", "<>", "END-OF-MESSAGE")
	id, err := engine.NewIdentity([]string{"10.0.0.0/8"}, "X-Authenticated-User")
	if err != nil {
		f.Fatal(err)
	}
	tr := &Translator{Identity: id}
	f.Fuzz(func(t *testing.T, headers, client, sender, state string) {
		msg := &milter.Message{ClientAddr: client, Sender: sender}
		for _, line := range strings.Split(headers, "\n") {
			name, value, _ := strings.Cut(line, ":")
			msg.Headers = append(msg.Headers, milter.Header{Name: name, Value: strings.TrimSpace(value)})
		}
		sub := tr.MilterSubmission(msg)
		if len(sub.Subject) > 512 || !utf8.ValidString(sub.Subject) {
			t.Fatalf("subject %q", sub.Subject)
		}
		if sub.AccountSource == engine.SourceHeader && sub.Account == "" {
			t.Fatal("header account empty")
		}
		_ = HeaderBlock(msg)
		_ = TextPreview(msg, 100)
		if sub, ok := tr.PolicySubmission(&policy.Request{ProtocolState: state, ClientAddress: client, Sender: sender, ClientPort: headers}); ok && sub.Stage == "" {
			t.Fatal("decided without a stage")
		}
	})
}
