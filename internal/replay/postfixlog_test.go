package replay

import (
	"strings"
	"testing"
)

// Lines as Postfix 3.7 writes them (captured from the test instance of
// internal/postfixtest, addresses changed).
const sampleLog = `Nov 28 17:44:55 mx postfix/smtpd[12408]: connect from unknown[127.0.0.1]
Nov 28 17:44:55 mx postfix/smtpd[12408]: 8FBCF984F41: client=unknown[192.0.2.7], sasl_method=PLAIN, sasl_username=dave@campus.example
Nov 28 17:44:55 mx postfix/cleanup[12410]: 8FBCF984F41: message-id=<1795887899000828710.x@client.example>
Nov 28 17:44:55 mx postfix/qmgr[12396]: 8FBCF984F41: from=<dave@campus.example>, size=2190, nrcpt=2 (queue active)
Nov 28 17:44:56 mx postfix/smtp[12429]: 8FBCF984F41: to=<rcpt00@dest.example>, relay=127.0.0.1[127.0.0.1]:44217, delay=0.39, delays=0.37/0.01/0/0, dsn=2.0.0, status=sent (250 2.0.0 OK: queued)
Nov 28 17:44:56 mx postfix/smtp[12429]: 8FBCF984F41: to=<rcpt01@dest.example>, relay=127.0.0.1[127.0.0.1]:44217, delay=0.39, delays=0.37/0.01/0/0, dsn=2.0.0, status=sent (250 2.0.0 OK: queued)
Nov 28 17:44:56 mx postfix/qmgr[12396]: 8FBCF984F41: removed
Nov 28 17:45:01 mx postfix/smtpd[12408]: 101A9984EF5: client=unknown[127.0.0.1]
Nov 28 17:45:01 mx postfix/qmgr[12396]: 101A9984EF5: from=<x@outside.example>, size=900, nrcpt=1 (queue active)
Nov 28 17:45:01 mx postfix/local[12430]: 101A9984EF5: to=<dave@campus.example>, relay=local, status=sent
2026-11-28T17:46:00.123456+00:00 mx postfix/submission/smtpd[1]: 2AB3C4D5E6: client=h[198.51.100.4], sasl_method=LOGIN, sasl_username=erin
2026-11-28T17:46:00.2+00:00 mx postfix/qmgr[2]: 2AB3C4D5E6: from=<erin@campus.example>, size=10, nrcpt=1 (queue active)
2026-11-28T17:46:01Z mx postfix/smtp[3]: 2AB3C4D5E6: to=<a@b.example>, status=deferred (connect timeout)
garbage line
`

func TestParsePostfixLog(t *testing.T) {
	recs, bad, err := ParsePostfixLog(strings.NewReader(sampleLog), 2026)
	if err != nil || bad != 0 {
		t.Fatalf("%v, %d bad", err, bad)
	}
	if len(recs) != 2 {
		t.Fatalf("%d records: %+v", len(recs), recs)
	}
	r := recs[0]
	if r.Account != "dave@campus.example" || r.Sender != "dave@campus.example" || len(r.Recipients) != 2 || r.ClientIP != "192.0.2.7" ||
		r.Size != 2190 || r.MessageID != "<1795887899000828710.x@client.example>" || r.Time.Format("2006-01-02 15:04:05") != "2026-11-28 17:44:55" {
		t.Fatalf("record: %+v", r)
	}
	if recs[1].Account != "erin" || recs[1].Recipients[0] != "a@b.example" {
		t.Fatalf("record 2: %+v", recs[1])
	}
}

func FuzzParsePostfixLog(f *testing.F) {
	f.Add(sampleLog)
	f.Add("Nov  1 00:00:00 h postfix/smtpd[1]: ABCDEF: sasl_username=a to=<b>")
	f.Fuzz(func(t *testing.T, s string) {
		recs, _, err := ParsePostfixLog(strings.NewReader(s), 2026)
		if err != nil {
			return
		}
		for _, r := range recs {
			if r.Account == "" || len(r.Recipients) == 0 || r.Time.IsZero() {
				t.Fatalf("incomplete record %+v", r)
			}
		}
	})
}
