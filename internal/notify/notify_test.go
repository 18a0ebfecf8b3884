package notify

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRateLimitPerIncident(t *testing.T) {
	s := startSink(t, nil)
	cfg := mailConfig(s.Addr)
	cfg.Admins, cfg.NotifyUser, cfg.UserAddress = nil, false, nil
	n, clock, _, logs := newNotifier(t, cfg)

	ev := testEvent()
	var sent, skipped int
	for range 10 {
		r := n.Send(context.Background(), ev)[0]
		switch {
		case r.Sent:
			sent++
		case r.Skipped == SkipRateLimited && r.Err == nil:
			skipped++
		default:
			t.Fatalf("result %+v", r)
		}
		clock.advance(time.Minute)
	}
	if sent != defaultPerIncident || skipped != 10-defaultPerIncident || len(s.messages()) != defaultPerIncident {
		t.Errorf("sent %d, skipped %d, sink has %d", sent, skipped, len(s.messages()))
	}
	if c := strings.Count(logs.String(), "rate-limited"); c != 1 {
		t.Errorf("rate limit logged %d times:\n%s", c, logs)
	}
	if err := n.Notify(context.Background(), ev); err != nil {
		t.Errorf("a skipped send is not an error: %v", err)
	}

	// Another incident is not limited by the first.
	other := testEvent()
	other.Incident.ID = 43
	if r := n.Send(context.Background(), other)[0]; !r.Sent {
		t.Errorf("other incident: %+v", r)
	}

	// The window slides: an hour after the first sends there is room.
	clock.advance(time.Hour - 10*time.Minute)
	if r := n.Send(context.Background(), ev)[0]; !r.Sent {
		t.Errorf("after the window: %+v", r)
	}
}

func TestRateLimitPerHour(t *testing.T) {
	l := newLimiter(2, 3, time.Hour)
	at := t0
	var got []string
	for id := range int64(5) {
		ok, scope, first := l.allow("email-helpdesk", id, at)
		got = append(got, map[bool]string{true: "ok", false: scope}[ok]+map[bool]string{true: "!", false: ""}[first])
		at = at.Add(10 * time.Minute)
	}
	want := []string{"ok", "ok", "ok", "per-hour!", "per-hour"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %v, want %v", got, want)
	}
	// Other channels have their own budget.
	if ok, _, _ := l.allow("webhook", 9, at); !ok {
		t.Error("webhook limited by email")
	}
	// 60 minutes after the first send, one slot is free again.
	if ok, _, _ := l.allow("email-helpdesk", 9, t0.Add(time.Hour)); !ok {
		t.Error("window did not slide")
	}
	if len(l.incident) > 4 {
		t.Errorf("limiter keeps %d incident windows", len(l.incident))
	}
}

func TestNewErrors(t *testing.T) {
	short := writeFile(t, "short", "tooshort")
	good := writeFile(t, "good", testSecret)
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"nothing", Config{}, []string{"notify: no channel configured"}},
		{"smtp addr without port", Config{SMTP: SMTPConfig{Addr: "localhost", From: "a@b.c", HelloName: "h.test"}, HelpDesk: []string{"x@y.z"}},
			[]string{"notify.smtp.addr: missing port in address"}},
		{"recipients without smtp", Config{HelpDesk: []string{"x@y.z"}}, []string{"notify.smtp.addr: required"}},
		{"everything wrong", Config{
			SMTP:      SMTPConfig{Addr: "mail.example.edu:99999", HelloName: "bad name", From: "not an address", StartTLS: "sometimes", Username: "u"},
			HelpDesk:  []string{"ok@example.edu", "broken"},
			Admins:    []string{"a\r\nBcc: x@y.z"},
			Webhook:   WebhookConfig{URL: "ftp://example.edu/", SecretFile: short, Retries: 99},
			Syslog:    SyslogConfig{Network: "udp", Addr: "127.0.0.1", Facility: "local9", Tag: "has space"},
			RateLimit: RateLimitConfig{PerIncident: -1},
		}, []string{
			`notify.smtp.addr: bad port "99999"`,
			`notify.smtp.hello_name: not a domain name: "bad name"`,
			`notify.smtp.from: bad address "not an address"`,
			`notify.smtp.starttls: must be one of none, opportunistic, required, got "sometimes"`,
			"notify.smtp.password_file: required when username is set",
			`notify.helpdesk[1]: bad address "broken"`,
			"notify.admins[0]: address contains CR, LF or NUL",
			`notify.webhook.url: scheme must be http or https, got "ftp"`,
			"notify.webhook.secret_file: secret shorter than 16 bytes",
			"notify.webhook.retries: at most 10",
			"notify.syslog.addr: missing port in address",
			`notify.syslog.facility: unknown facility "local9"`,
			"notify.syslog.tag: must be 1 to 48 printable ASCII",
			"notify.per_incident: must not be negative",
		}},
		{"auth in clear text to a remote host", Config{
			SMTP:     SMTPConfig{Addr: "mail.example.edu:25", HelloName: "h.test", From: "a@b.c", StartTLS: "opportunistic", Username: "u", PasswordFile: good},
			HelpDesk: []string{"x@y.z"},
		}, []string{"notify.smtp.username: AUTH needs starttls: required"}},
		{"missing files", Config{
			SMTP:     SMTPConfig{Addr: "127.0.0.1:25", HelloName: "h.test", From: "a@b.c", CAFile: "/nonexistent/ca.pem", Username: "u", PasswordFile: "/nonexistent/pw"},
			HelpDesk: []string{"x@y.z"},
			Webhook:  WebhookConfig{URL: "https://hooks.example.edu/x"},
		}, []string{"notify.smtp.ca_file: open /nonexistent/ca.pem", "notify.smtp.password_file: open /nonexistent/pw",
			"notify.webhook.secret_file: required"}},
		{"templates dir missing", Config{Syslog: SyslogConfig{Network: "unix"}, TemplatesDir: "/nonexistent/templates"},
			[]string{"notify.templates_dir: stat /nonexistent/templates"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, nil)
			if err == nil {
				t.Fatal("no error")
			}
			mustContain(t, "error", err.Error(), tc.want...)
			mustNotContain(t, "error", err.Error(), "tooshort", testSecret)
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Errorf("%v is not a ConfigError", err)
			}
		})
	}

	// Defaults.
	n, err := New(Config{Syslog: SyslogConfig{Network: "unix"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n.s.syslog.addr != "/dev/log" || n.s.syslog.tag != "mailbrake" || n.s.syslog.facility != 3 ||
		n.s.perIncident != 5 || n.s.perHour != 100 {
		t.Errorf("defaults %+v", n.s.syslog)
	}
}

func TestUnknownKind(t *testing.T) {
	s := startSink(t, nil)
	n, _, _, _ := newNotifier(t, mailConfig(s.Addr))
	ev := testEvent()
	ev.Kind = "incident-exploded"
	err := n.Notify(context.Background(), ev)
	if err == nil || !strings.Contains(err.Error(), `email-helpdesk: unknown event kind "incident-exploded"`) {
		t.Errorf("error %v", err)
	}
	if len(s.messages()) != 0 {
		t.Errorf("sent %d messages", len(s.messages()))
	}
}

func TestUserMail(t *testing.T) {
	s := startSink(t, nil)
	cfg := mailConfig(s.Addr)
	cfg.HelpDesk, cfg.Admins = nil, nil
	cfg.HelpDeskContact = "phone +1 555 0100 or https://help.example.edu"
	n, _, _, _ := newNotifier(t, cfg)

	ev := testEvent()
	ev.Incident.Account = "bob@example.edu" // no recovery address
	if r := n.Send(context.Background(), ev); len(r) != 1 || r[0].Skipped != SkipNoAddress || r[0].Err != nil {
		t.Errorf("no address: %+v", r)
	}
	ev.Kind = KindIncidentOpened
	if r := n.Send(context.Background(), ev); len(r) != 0 {
		t.Errorf("user mail for %s: %+v", ev.Kind, r)
	}

	n.userAddress = func(context.Context, string) (string, error) { return "", errors.New("ldap down") }
	ev.Kind = KindPlaybookFinished
	if r := n.Send(context.Background(), ev); len(r) != 1 || r[0].Err == nil || !strings.Contains(r[0].Err.Error(), "ldap down") {
		t.Errorf("lookup failure: %+v", r)
	}

	n.userAddress = nil // the account itself
	if r := n.Send(context.Background(), ev); len(r) != 1 || !r[0].Sent || r[0].Recipients[0] != "bob@example.edu" {
		t.Errorf("to the account: %+v", r)
	}
	p := parseMessage(t, s.messages()[0].Data)
	mustContain(t, "user body", p.Body, "phone +1 555 0100 or https://help.example.edu", "bob@example.edu")
}

func TestTemplatesOverride(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "helpdesk.txt"),
		[]byte("CUSTOM {{.Incident.Account}} {{join .Incident.Reasons \"+\"}} {{datetime .Incident.Opened}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startSink(t, nil)
	cfg := mailConfig(s.Addr)
	cfg.NotifyUser, cfg.UserAddress = false, nil
	cfg.TemplatesDir = dir
	n, _, _, _ := newNotifier(t, cfg)
	if err := n.Notify(context.Background(), testEvent()); err != nil {
		t.Fatal(err)
	}
	msgs := byRecipient(s.messages())
	hd := parseMessage(t, msgs["helpdesk@example.edu"].Data)
	if want := "CUSTOM alice@example.edu password-leak 2026-01-02 02:54:05 UTC\r\n"; hd.Body != want {
		t.Errorf("help desk body %q, want %q", hd.Body, want)
	}
	adm := parseMessage(t, msgs["admin1@example.edu"].Data)
	mustContain(t, "admin body (default)", adm.Body, "STEPS")
}

func TestTemplatesBroken(t *testing.T) {
	for _, tc := range []struct {
		name, file, text, want string
	}{
		{"parse error", "admin.txt", "{{.Incident.Account", `notify.templates_dir: template: admin.txt:1: unclosed action`},
		{"unknown field", "helpdesk.txt", "{{.Incident.Acount}}", `notify.templates_dir: helpdesk.txt: template: helpdesk.txt:1:11: executing "helpdesk.txt" at <.Incident.Acount>: can't evaluate field Acount`},
		{"unknown function", "user.txt", "{{shout .Kind}}", `notify.templates_dir: template: user.txt:1: function "shout" not defined`},
		{"runaway", "user.txt", `{{range 100000000}}{{$.Headline}}{{end}}`, "rendered text longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, tc.file), []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := New(Config{Syslog: SyslogConfig{Network: "unix"}, TemplatesDir: dir}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestBound(t *testing.T) {
	ev := testEvent()
	for range 70 {
		ev.Incident.Evidence = append(ev.Incident.Evidence, strings.Repeat("é", 600))
	}
	ev.NextSteps = "one\r\ntwo\x00\x1b[31m\nthree"
	b := bound(ev)
	if len(b.Incident.Evidence) != maxEvidenceLines || b.evidenceOmitted != 72-maxEvidenceLines {
		t.Errorf("%d evidence lines, %d omitted", len(b.Incident.Evidence), b.evidenceOmitted)
	}
	if got := b.Incident.Evidence[10]; got != strings.Repeat("é", maxLine)+"…" {
		t.Errorf("evidence line of %d characters", len([]rune(got)))
	}
	if b.NextSteps != "one\ntwo [31m\nthree" {
		t.Errorf("next steps %q", b.NextSteps)
	}
	if len(ev.Incident.Evidence) != 72 {
		t.Error("bound changed its argument")
	}
	for in, want := range map[string]string{
		"":                "",
		"  a \r\n b\t":    "a b",
		"a\u2028b\u0085c": "a b c",
		"\xffx":           "\uFFFDx",
		"abcdef":          "abcde…",
		"abcd ef":         "abcd…",
		"abc de":          "abc d…",
	} {
		if got := oneLine(in, 5); got != want {
			t.Errorf("oneLine(%q, 5) = %q, want %q", in, got, want)
		}
	}
}

func TestHelpDeskChecklist(t *testing.T) {
	n, _, _, _ := newNotifier(t, mailConfig("127.0.0.1:25"))
	rcpts := n.s.smtp.helpDesk
	for kind, want := range map[string]string{
		KindIncidentOpened:    "Call the user on the phone number from the directory",
		KindStepFailed:        "forwarding rules",
		KindIncidentDismissed: "Nothing. This mail closes the case.",
	} {
		ev := testEvent()
		ev.Kind, ev.NextSteps = kind, ""
		msg, err := n.compose(audienceHelpDesk, bound(ev), rcpts)
		if err != nil {
			t.Fatal(err)
		}
		mustContain(t, kind+" body", parseMessage(t, msg).Body, want)
	}
}
