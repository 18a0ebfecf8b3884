package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-smtp"
)

func TestMailAudiences(t *testing.T) {
	s := startSink(t, nil)
	n, _, _, _ := newNotifier(t, mailConfig(s.Addr))
	ev := testEvent()

	rs := n.Send(context.Background(), ev)
	if len(rs) != 3 {
		t.Fatalf("want 3 results, got %+v", rs)
	}
	for _, r := range rs {
		if !r.Sent || r.Err != nil || r.Skipped != "" {
			t.Errorf("%s: %+v", r.Channel, r)
		}
	}
	if got := resultOf(t, rs, ChannelAdmin).Recipients; !slices.Equal(got, []string{"admin1@example.edu", "admin2@example.edu"}) {
		t.Errorf("admin recipients %v", got)
	}

	msgs := byRecipient(s.messages())
	if len(s.messages()) != 3 {
		t.Fatalf("want 3 transactions, got %d", len(s.messages()))
	}
	thread := fmt.Sprintf("<mailbrake-incident-42-%d@mailbrake.test>", ev.Incident.Opened.Unix())
	ids := map[string]bool{}
	for rcpt, m := range msgs {
		p := parseMessage(t, m.Data)
		if m.From != "mailbrake@example.edu" || m.Hello != "mailbrake.test" {
			t.Errorf("%s: envelope from %q, EHLO %q", rcpt, m.From, m.Hello)
		}
		for h, want := range map[string]string{
			"In-Reply-To":          thread,
			"References":           thread,
			"Auto-Submitted":       "auto-generated",
			"X-Mailbrake-Incident": "42",
			"X-Mailbrake-Event":    "playbook-finished",
			"Content-Type":         "text/plain; charset=utf-8",
			"From":                 `"Mailbrake" <mailbrake@example.edu>`,
			"Date":                 "Fri, 02 Jan 2026 03:04:05 +0000",
		} {
			if got := p.Header.Get(h); got != want {
				t.Errorf("%s: %s = %q, want %q", rcpt, h, got, want)
			}
		}
		id := p.Header.Get("Message-ID")
		if !strings.HasPrefix(id, "<mailbrake-42-") || !strings.HasSuffix(id, "@mailbrake.test>") || ids[id] {
			t.Errorf("%s: Message-ID %q", rcpt, id)
		}
		ids[id] = true
	}

	hd := parseMessage(t, msgs["helpdesk@example.edu"].Data)
	if want := "[mailbrake] incident 42 on alice@example.edu: password-leak — contained"; hd.Subject != want {
		t.Errorf("subject %q, want %q", hd.Subject, want)
	}
	if got := hd.Header.Get("To"); got != "<helpdesk@example.edu>" {
		t.Errorf("help desk To %q", got)
	}
	mustContain(t, "help desk body", hd.Body, "alice@example.edu", "password-leak",
		"1. lock-login: done", "2. end-sessions: failed", "212 recipients", ev.NextSteps,
		"https://mailbrake.example.edu/incidents/42")
	mustNotContain(t, "help desk body", hd.Body, "zimbra: timeout") // technical detail is for admins

	adm := parseMessage(t, msgs["admin1@example.edu"].Data)
	if got := msgs["admin1@example.edu"].To; !slices.Equal(got, []string{"admin1@example.edu", "admin2@example.edu"}) {
		t.Errorf("admin envelope %v", got)
	}
	mustContain(t, "admin To", adm.Header.Get("To"), "admin1@example.edu", "admin2@example.edu")
	mustContain(t, "admin body", adm.Body, "alice@example.edu", "password-leak", "lock-login: done",
		"end-sessions: failed", "zimbra: timeout after 10s", "Severity:  high", "Event:     playbook-finished",
		"masked: p******1", ev.NextSteps)

	usr := parseMessage(t, msgs["alice.private@example.org"].Data)
	if want := "Your mail account alice@example.edu was locked for your protection"; usr.Subject != want {
		t.Errorf("user subject %q", usr.Subject)
	}
	mustContain(t, "user body", usr.Body, "alice@example.edu", "locked it", "helpdesk@example.edu")
	mustNotContain(t, "user body", usr.Body, "password-leak", "212 recipients", "p******1", "lock-login")

	// A later event of the same incident threads with the first.
	ev.Kind = KindIncidentResolved
	ev.Incident.State = "resolved"
	if err := n.Notify(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	all := s.messages()
	if len(all) != 5 { // help desk and admins; users hear only of playbook-finished
		t.Fatalf("want 5 messages, got %d", len(all))
	}
	last := parseMessage(t, all[4].Data)
	if last.Header.Get("References") != thread {
		t.Errorf("second mail References %q, want %q", last.Header.Get("References"), thread)
	}
}

func TestMailHeaderInjection(t *testing.T) {
	s := startSink(t, nil)
	cfg := mailConfig(s.Addr)
	cfg.UserAddress = func(context.Context, string) (string, error) { return "user@example.org", nil }
	n, _, _, _ := newNotifier(t, cfg)
	ev := testEvent()
	ev.Incident.Account = "alice@example.edu\r\nBcc: evil@example.com"
	ev.Incident.Reasons = []string{"password-leak\r\nX-Injected: 1", "x\n\nbody"}
	ev.Incident.State = "contained\rSubject: spoofed"
	ev.Incident.Severity = "high\r\nTo: evil@example.com"
	ev.Incident.Steps[0].Name = "lock-login\r\n\r\nX-Injected-Body: 1"

	if err := n.Notify(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	want := []string{"Auto-Submitted", "Content-Transfer-Encoding", "Content-Type", "Date", "From", "In-Reply-To",
		"Message-Id", "Mime-Version", "References", "Subject", "To", "X-Auto-Response-Suppress", "X-Mailbrake-Event",
		"X-Mailbrake-Incident"}
	for _, m := range s.messages() {
		for _, rc := range m.To {
			if strings.Contains(rc, "evil") {
				t.Errorf("envelope recipient %q", rc)
			}
		}
		p := parseMessage(t, m.Data)
		var keys []string
		for k := range p.Header {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, want) {
			t.Errorf("headers %v, want %v", keys, want)
		}
		if strings.ContainsAny(p.Subject, "\r\n") || strings.Contains(p.Header.Get("To"), "evil") {
			t.Errorf("subject %q, To %q", p.Subject, p.Header.Get("To"))
		}
		head, _, _ := strings.Cut(p.Raw, "\r\n\r\n")
		for _, line := range strings.Split(head, "\r\n") {
			if strings.HasPrefix(line, "Bcc:") || strings.HasPrefix(line, "X-Injected") || len(line) > 998 {
				t.Errorf("header line %q", line)
			}
		}
		mustNotContain(t, "body", p.Body, "\r\nX-Injected", "\nBcc:")
	}
	hd := parseMessage(t, byRecipient(s.messages())["helpdesk@example.edu"].Data)
	if want := "[mailbrake] incident 42 on alice@example.edu Bcc: evil@example.com: password-leak X-Injected: 1, x body — contained Subject: spoofed"; hd.Subject != want {
		t.Errorf("subject %q\nwant    %q", hd.Subject, want)
	}
}

func TestMailFailingServer(t *testing.T) {
	var posts atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		posts.Add(1)
	}))
	defer hook.Close()
	secret := writeFile(t, "secret", "0123456789abcdef0123")

	t.Run("connection refused", func(t *testing.T) {
		posts.Store(0)
		cfg := mailConfig(refusedAddr(t))
		cfg.NotifyUser, cfg.UserAddress, cfg.Admins = false, nil, nil
		cfg.Webhook = WebhookConfig{URL: hook.URL, SecretFile: secret}
		n, _, _, _ := newNotifier(t, cfg)
		rs := n.Send(context.Background(), testEvent())
		hd := resultOf(t, rs, ChannelHelpDesk)
		if hd.Sent || hd.Err == nil || !strings.Contains(hd.Err.Error(), "connection refused") {
			t.Errorf("help desk result %+v", hd)
		}
		if wh := resultOf(t, rs, ChannelWebhook); !wh.Sent || wh.Err != nil {
			t.Errorf("webhook result %+v", wh)
		}
		if posts.Load() != 1 {
			t.Errorf("webhook got %d POSTs", posts.Load())
		}
		err := n.Notify(context.Background(), testEvent())
		if err == nil || !strings.Contains(err.Error(), "email-helpdesk: ") || strings.Contains(err.Error(), "webhook") {
			t.Errorf("Notify error %v", err)
		}
	})

	t.Run("451 on RCPT", func(t *testing.T) {
		posts.Store(0)
		s := startSink(t, nil)
		s.refuseN = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
		cfg := mailConfig(s.Addr)
		cfg.NotifyUser, cfg.UserAddress = false, nil
		cfg.Webhook = WebhookConfig{URL: hook.URL, SecretFile: secret}
		n, _, _, _ := newNotifier(t, cfg)
		rs := n.Send(context.Background(), testEvent())
		for _, ch := range []string{ChannelHelpDesk, ChannelAdmin} {
			r := resultOf(t, rs, ch)
			var se *smtp.SMTPError
			if r.Sent || !errors.As(r.Err, &se) || se.Code != 451 {
				t.Errorf("%s result %+v", ch, r)
			}
		}
		if wh := resultOf(t, rs, ChannelWebhook); !wh.Sent || posts.Load() != 1 {
			t.Errorf("webhook result %+v, %d POSTs", wh, posts.Load())
		}
		if len(s.messages()) != 0 {
			t.Errorf("sink got %d messages", len(s.messages()))
		}
	})

	t.Run("one recipient refused", func(t *testing.T) {
		s := startSink(t, nil)
		s.refuse["admin2@example.edu"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		cfg := mailConfig(s.Addr)
		cfg.NotifyUser, cfg.UserAddress, cfg.HelpDesk = false, nil, nil
		n, _, _, _ := newNotifier(t, cfg)
		r := resultOf(t, n.Send(context.Background(), testEvent()), ChannelAdmin)
		if !r.Sent || r.Err == nil || !strings.Contains(r.Err.Error(), "admin2@example.edu") {
			t.Errorf("admin result %+v", r)
		}
		if m := s.messages(); len(m) != 1 || !slices.Equal(m[0].To, []string{"admin1@example.edu"}) {
			t.Errorf("sink messages %+v", m)
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		s := startSink(t, nil)
		cfg := mailConfig(s.Addr)
		n, _, _, _ := newNotifier(t, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for _, r := range n.Send(ctx, testEvent()) {
			if r.Sent || r.Err == nil {
				t.Errorf("%s: %+v", r.Channel, r)
			}
		}
	})
}

func TestMailStartTLS(t *testing.T) {
	tlsConfig, caFile := selfSigned(t)
	tlsSink := startSink(t, tlsConfig)
	plainSink := startSink(t, nil)

	for _, tc := range []struct {
		name      string
		sink      *sink
		mode, ca  string
		wantTLS   bool
		wantError string
	}{
		{name: "required, verified", sink: tlsSink, mode: "required", ca: caFile, wantTLS: true},
		{name: "required, unknown CA", sink: tlsSink, mode: "required", wantError: "certificate"},
		{name: "required, not offered", sink: plainSink, mode: "required", ca: caFile, wantError: "STARTTLS"},
		{name: "opportunistic, offered", sink: tlsSink, mode: "opportunistic", wantTLS: true},
		{name: "opportunistic, verified", sink: tlsSink, mode: "opportunistic", ca: caFile, wantTLS: true},
		{name: "opportunistic, not offered", sink: plainSink, mode: "opportunistic"},
		{name: "none", sink: tlsSink, mode: "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(tc.sink.messages())
			cfg := mailConfig(tc.sink.Addr)
			cfg.Admins, cfg.NotifyUser, cfg.UserAddress = nil, false, nil
			cfg.SMTP.StartTLS, cfg.SMTP.CAFile = tc.mode, tc.ca
			n, _, _, _ := newNotifier(t, cfg)
			r := resultOf(t, n.Send(context.Background(), testEvent()), ChannelHelpDesk)
			if tc.wantError != "" {
				if r.Err == nil || !strings.Contains(r.Err.Error(), tc.wantError) {
					t.Fatalf("want error with %q, got %+v", tc.wantError, r)
				}
				return
			}
			if !r.Sent || r.Err != nil {
				t.Fatalf("result %+v", r)
			}
			msgs := tc.sink.messages()
			if len(msgs) != before+1 {
				t.Fatalf("sink has %d messages, want %d", len(msgs), before+1)
			}
			if m := msgs[len(msgs)-1]; m.TLS != tc.wantTLS || m.Hello != "mailbrake.test" {
				t.Errorf("TLS %v (want %v), EHLO %q", m.TLS, tc.wantTLS, m.Hello)
			}
		})
	}
}

func TestMailAuth(t *testing.T) {
	a := &plainAuth{user: "mailbrake", pass: "s3cret"}
	mech, ir, err := a.Start()
	if mech != "PLAIN" || string(ir) != "\x00mailbrake\x00s3cret" || err != nil {
		t.Errorf("Start() = %q, %q, %v", mech, ir, err)
	}

	// Loopback without TLS may authenticate; the sink offers no AUTH, so
	// the attempt itself fails, proving it was made.
	s := startSink(t, nil)
	cfg := mailConfig(s.Addr)
	cfg.SMTP.Username, cfg.SMTP.PasswordFile = "mailbrake", writeFile(t, "pw", "s3cret\n")
	cfg.Admins, cfg.NotifyUser, cfg.UserAddress = nil, false, nil
	n, _, _, logs := newNotifier(t, cfg)
	if n.s.smtp.password != "s3cret" {
		t.Errorf("password %q", n.s.smtp.password)
	}
	r := resultOf(t, n.Send(context.Background(), testEvent()), ChannelHelpDesk)
	if r.Err == nil || !strings.Contains(r.Err.Error(), "AUTH PLAIN") {
		t.Errorf("result %+v", r)
	}
	mustNotContain(t, "log", logs.String(), "s3cret")
}
