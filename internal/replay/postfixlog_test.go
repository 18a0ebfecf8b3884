package replay

import (
	"bytes"
	"compress/gzip"
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
	recs, st, err := ParsePostfixLog(strings.NewReader(sampleLog), 2026)
	if err != nil || st.Bad != 0 || st.Unknown != 1 { // the inbound message has no account
		t.Fatalf("%v, %+v", err, st)
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

// zimbraLog: Zimbra's MTA with header_checks INFO on the identity, client
// and origin headers (the relay's copy comes last), an outbound syslog
// tag of another name, a message with no account, and one held and
// deleted with postsuper.
const zimbraLog = `Dec  3 10:00:00 mta postfix/smtpd[1]: AAAAAA1: client=mbox.campus.example[10.0.0.5]
Dec  3 10:00:00 mta postfix/cleanup[2]: AAAAAA1: info: header X-Authenticated-User: victim@campus.example from mbox.campus.example[10.0.0.5]; from=<alias@campus.example> to=<x@dest.example> proto=ESMTP helo=<mbox>
Dec  3 10:00:00 mta postfix/cleanup[2]: AAAAAA1: info: header X-Mailer: Zimbra 8.8.15_GA_3901 (ZimbraWebClient - FF110 (Linux)/8.8.15_GA_3901) from mbox.campus.example[10.0.0.5]; from=<alias@campus.example> to=<x@dest.example> proto=ESMTP helo=<mbox>
Dec  3 10:00:00 mta postfix/cleanup[2]: AAAAAA1: info: header X-Authenticated-User: bob@campus.example from mbox.campus.example[10.0.0.5]; from=<alias@campus.example> to=<x@dest.example> proto=ESMTP helo=<mbox>
Dec  3 10:00:00 mta postfix/cleanup[2]: AAAAAA1: info: header X-Originating-IP: [203.0.113.66] from mbox.campus.example[10.0.0.5]; from=<alias@campus.example> to=<x@dest.example> proto=ESMTP helo=<mbox>
Dec  3 10:00:00 mta postfix/qmgr[3]: AAAAAA1: from=<alias@campus.example>, size=1234, nrcpt=1 (queue active)
Dec  3 10:00:01 mta postfix-out/smtp[4]: AAAAAA1: to=<x@dest.example>, relay=mx.dest.example[192.0.2.1]:25, status=sent (250 ok)
Dec  3 10:00:01 mta postfix/qmgr[3]: AAAAAA1: removed
Dec  3 10:00:02 mta postfix/smtpd[1]: BBBBBB2: client=mbox.campus.example[10.0.0.5]
Dec  3 10:00:02 mta postfix/qmgr[3]: BBBBBB2: from=<someone@campus.example>, size=10, nrcpt=1 (queue active)
Dec  3 10:00:03 mta postfix/smtp[4]: BBBBBB2: to=<y@dest.example>, status=sent (250 ok)
Dec  3 10:00:03 mta postfix/qmgr[3]: BBBBBB2: removed
Dec  3 10:00:04 mta postfix/submission/smtpd[5]: CCCCCC3: client=h[198.51.100.4], sasl_method=PLAIN, sasl_username=carol@campus.example
Dec  3 10:00:04 mta postfix/qmgr[3]: CCCCCC3: from=<carol@campus.example>, size=10, nrcpt=2 (queue active)
Dec  3 10:00:05 mta postfix/smtp[4]: CCCCCC3: to=<z1@dest.example>, status=deferred (timeout)
Dec  3 10:00:05 mta postfix/smtp[4]: CCCCCC3: to=<z2@dest.example>, status=sent (250 ok)
Dec  3 10:09:00 mta postfix/postsuper[6]: CCCCCC3: removed
`

func TestZimbraLogRelayedAndStreaming(t *testing.T) {
	var got []Record
	st, err := ScanPostfixLog(strings.NewReader(zimbraLog), 2026, func(r Record) error { got = append(got, r); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 2 || st.Unknown != 1 || st.Bad != 0 || len(got) != 2 {
		t.Fatalf("stats %+v, records %+v", st, got)
	}
	r := got[0]
	if r.Account != "bob@campus.example" || r.Client == "" || !strings.Contains(r.Client, "ZimbraWebClient") || r.Headers["X-Originating-IP"] != "[203.0.113.66]" ||
		r.Sender != "alias@campus.example" || r.Recipients[0] != "x@dest.example" {
		t.Errorf("relayed record (the last X-Authenticated-User decides): %+v", r)
	}
	if got[1].Account != "carol@campus.example" || len(got[1].Recipients) != 2 {
		t.Errorf("SASL record: %+v", got[1])
	}
	// Compressed, the same.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(zimbraLog))
	zw.Close()
	recs, st2, err := ParsePostfixLog(&gz, 2026)
	if err != nil || len(recs) != 2 || st2.Unknown != 1 {
		t.Fatalf("gzip: %v %+v %d", err, st2, len(recs))
	}
}
