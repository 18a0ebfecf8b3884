package notify

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParseSignature: the signature header parser never panics, and what
// it accepts formats back to a header it parses identically.
func FuzzParseSignature(f *testing.F) {
	f.Add("sha256=" + strings.Repeat("ab", 32))
	f.Add("sha256=" + strings.Repeat("00", 32) + ", sha256=" + strings.Repeat("ff", 32))
	f.Add("v2=xyz,sha256=" + strings.Repeat("0A", 32))
	f.Add("sha256=")
	f.Add(",,=")
	f.Fuzz(func(t *testing.T, h string) {
		macs, err := parseSignature(h)
		if err != nil {
			if !errors.Is(err, ErrBadSignature) {
				t.Fatalf("error %v is not ErrBadSignature", err)
			}
			return
		}
		if len(macs) == 0 || len(macs) > maxSignatures {
			t.Fatalf("%d values accepted", len(macs))
		}
		for _, m := range macs {
			if len(m) != 32 {
				t.Fatalf("MAC of %d bytes", len(m))
			}
		}
		again, err := parseSignature(formatSignature(macs))
		if err != nil || !slices.EqualFunc(macs, again, bytes.Equal) {
			t.Fatalf("round trip: %v, %x != %x", err, again, macs)
		}
	})
}

// FuzzVerifySignature: a timestamp is accepted only in its one canonical
// form; what is signed verifies, and a changed body or a late arrival
// does not.
func FuzzVerifySignature(f *testing.F) {
	f.Add([]byte(testSecret), "1767323045", []byte(`{"kind":"incident-opened"}`), "sha256=00")
	f.Add([]byte("k"), "0", []byte{}, "")
	f.Add([]byte("k"), "-1", []byte("x"), "sha256="+strings.Repeat("11", 32))
	f.Add([]byte("k"), "99999999999999999999", []byte("x"), "x=y")
	f.Fuzz(func(t *testing.T, secret []byte, ts string, body []byte, sig string) {
		now := time.Unix(1767323045, 0)
		// Arbitrary input never panics and fails with a known error.
		if err := VerifySignature(secret, ts, sig, body, time.Minute, now); err != nil && len(secret) > 0 &&
			!errors.Is(err, ErrBadTimestamp) && !errors.Is(err, ErrBadSignature) &&
			!errors.Is(err, ErrSignatureMismatch) && !errors.Is(err, ErrStaleTimestamp) {
			t.Fatalf("unexpected error %v", err)
		}
		if len(secret) == 0 {
			return
		}
		v, err := parseTimestamp(ts)
		if err != nil {
			return
		}
		if strconv.FormatInt(v, 10) != ts {
			t.Fatalf("timestamp %q accepted as %d", ts, v)
		}
		good := "sha256=" + hex.EncodeToString(sign(secret, ts, body))
		at := time.Unix(v, 0)
		if err := VerifySignature(secret, ts, good, body, time.Minute, at); err != nil {
			t.Fatalf("own signature rejected: %v", err)
		}
		if err := VerifySignature(secret, ts, good, append(slices.Clone(body), '!'), time.Minute, at); !errors.Is(err, ErrSignatureMismatch) {
			t.Fatalf("changed body: %v", err)
		}
		if err := VerifySignature(secret, ts, good, body, time.Minute, at.Add(time.Minute+time.Second)); !errors.Is(err, ErrStaleTimestamp) {
			t.Fatalf("late arrival: %v", err)
		}
	})
}

// FuzzParseTemplate: the template loader never panics; a template
// without actions renders to itself; what loads renders the same twice.
func FuzzParseTemplate(f *testing.F) {
	for _, a := range audiences {
		b, err := defaultTemplates.ReadFile("templates/" + a + ".txt")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("plain text, no actions\n")
	f.Add("{{.Incident.Account}} {{join .Incident.Reasons \",\"}} {{datetime .Incident.Opened}}")
	f.Add("{{.Nope}}")
	f.Add("{{define \"x\"}}{{template \"x\"}}{{end}}{{template \"x\"}}")
	f.Fuzz(func(t *testing.T, text string) {
		// A range over a large number with an empty body renders nothing
		// for a long time: an admin's mistake, not a parser bug, and too
		// slow for fuzzing. Such templates are only parsed.
		if strings.Contains(text, "range") {
			_, _ = newTemplate("fuzz.txt", text)
			return
		}
		tmpl, err := parseTemplate("fuzz.txt", text)
		if err != nil {
			return
		}
		out1, err1 := render(tmpl, sampleData())
		out2, err2 := render(tmpl, sampleData())
		if err1 != nil || err2 != nil || out1 != out2 {
			t.Fatalf("render not repeatable: %v %v", err1, err2)
		}
		if !strings.Contains(text, "{{") && out1 != text {
			t.Fatalf("plain template rendered %q", out1)
		}
	})
}

// FuzzComposeHeaders: whatever an incident's fields contain, the mail has
// exactly the expected headers, its Subject decodes to the subject meant,
// and the body decodes.
func FuzzComposeHeaders(f *testing.F) {
	f.Add("alice@example.edu", "password-leak", "contained", "lock-login", "done")
	f.Add("alice@example.edu\r\nBcc: evil@example.com", "x\r\n\r\nbody", "a\rb", "\n.\n", "\x00")
	f.Add("=?utf-8?q?=0D=0ABcc:_x?=", "ü", strings.Repeat("long ", 100), "", "")
	f.Add("jürgen@例え.jp", "\u2028X-Evil: 1", "\xff\xfe", "-- ", "=")
	n, err := New(mailConfig("127.0.0.1:25"), nil)
	if err != nil {
		f.Fatal(err)
	}
	n.now = func() time.Time { return t0 }
	rcpts := []*mail.Address{{Name: "Help Desk", Address: "helpdesk@example.edu"}}
	want := []string{"Auto-Submitted", "Content-Transfer-Encoding", "Content-Type", "Date", "From", "In-Reply-To",
		"Message-Id", "Mime-Version", "References", "Subject", "To", "X-Auto-Response-Suppress", "X-Mailbrake-Event",
		"X-Mailbrake-Incident"}
	f.Fuzz(func(t *testing.T, account, reason, state, stepName, stepStatus string) {
		ev := testEvent()
		ev.Incident.Account, ev.Incident.State = account, state
		ev.Incident.Reasons = []string{reason, reason}
		ev.Incident.Steps = append(ev.Incident.Steps, Step{Name: stepName, Status: stepStatus, Detail: reason})
		ev.Incident.Evidence = append(ev.Incident.Evidence, account, reason)
		ev.NextSteps = reason
		b := bound(ev)
		for _, audience := range audiences {
			msg, err := n.compose(audience, b, rcpts)
			if err != nil {
				t.Fatalf("%s: %v", audience, err)
			}
			p := parseMessage(t, msg)
			var keys []string
			for k := range p.Header {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if !slices.Equal(keys, want) {
				t.Fatalf("%s: headers %v", audience, keys)
			}
			if s := subject(audience, b); p.Subject != s {
				t.Fatalf("%s: subject decodes to %q, want %q", audience, p.Subject, s)
			}
			head, _, _ := strings.Cut(string(msg), "\r\n\r\n")
			for _, line := range strings.Split(head, "\r\n") {
				if len(line) > 998 {
					t.Fatalf("header line of %d octets", len(line))
				}
			}
			if p.Header.Get("X-Mailbrake-Incident") != "42" {
				t.Fatalf("X-Mailbrake-Incident %q", p.Header.Get("X-Mailbrake-Incident"))
			}
		}
	})
}

// FuzzSyslogFormat: whatever an incident's fields contain, the syslog
// message is one line within the size limit that parses back as RFC 5424
// with the fields it was given.
func FuzzSyslogFormat(f *testing.F) {
	f.Add("alice@example.edu", "password-leak", "contained", "high")
	f.Add("a\"b]c\\d", "x\ny", "]\"", "critical")
	f.Add(strings.Repeat("ä]", 300), strings.Repeat("\"", 500), "\uFEFF", "")
	f.Fuzz(func(t *testing.T, account, reason, state, severity string) {
		ev := testEvent()
		ev.Incident.Account, ev.Incident.State, ev.Incident.Severity = account, state, severity
		ev.Incident.Reasons = []string{reason, reason, reason}
		b := bound(ev)
		h := syslogHeader{facility: 16, time: t0, hostname: strings.Repeat("h", 255), app: "mailbrake", pid: 1 << 22}
		line := string(formatSyslog(h, b, maxSyslogUDP))
		if len(line) > maxSyslogUDP || strings.ContainsAny(line, "\r\n\x00") {
			t.Fatalf("line of %d bytes: %q", len(line), line)
		}
		m, err := parseSyslog(line)
		if err != nil {
			t.Fatalf("%v: %q", err, line)
		}
		sdValue := func(s string, max int) string { return truncBytes(oneLine(s, max), max) }
		if m.params["account"] != sdValue(b.Incident.Account, 200) || m.params["state"] != sdValue(b.Incident.State, 64) ||
			m.params["reasons"] != sdValue(strings.Join(b.Incident.Reasons, ","), 300) || m.params["incident"] != "42" {
			t.Fatalf("params %q", m.params)
		}
		if m.pri != 16*8+syslogSeverity(b) || m.sdID != sdID {
			t.Fatalf("PRI %d, SD-ID %q", m.pri, m.sdID)
		}
	})
}
