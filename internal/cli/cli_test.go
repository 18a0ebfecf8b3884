package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"github.com/mailbrake/mailbrake/internal/store/sqlite"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// TestPostfixConfig checks the script's shape; internal/e2e
// (TestPostfixConfigOnRealPostfix) runs it against a real Postfix.
func TestPostfixConfig(t *testing.T) {
	code, out, _ := run(t, "postfix-config")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"#!/bin/sh",
		// appended, with its own default action (no spaces around = inside the braces)
		`smtpd_milters = ${cur:+$cur, }{ inet:127.0.0.1:10042, default_action=tempfail }`,
		// a value with spaces in its own braces
		"check_policy_service { inet:127.0.0.1:10041, timeout=10s, { default_action = 451 4.3.5 Policy service unavailable, try again later } }",
		"smtpd_end_of_data_restrictions = check_policy_service",
		"'127.0.0.1:10025/inet/smtpd_milters=inet:127.0.0.1:10042'",
		"INBOUND MAIL FROM THE INTERNET INCLUDED",
		"postfix check",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "milter_mail_macros") {
		t.Error("the script overrides milter_mail_macros (mailbrake requests its macros itself)")
	}
	code, out, _ = run(t, "postfix-config", "--on-failure", "accept", "--postfix-dir", "/etc/postfix-out")
	if code != 0 || !strings.Contains(out, "default_action=accept }") || !strings.Contains(out, "default_action=DUNNO") ||
		!strings.Contains(out, "postconf -c '/etc/postfix-out' -h smtpd_milters") || !strings.Contains(out, "postfix -c '/etc/postfix-out' reload") {
		t.Errorf("fail-open config for another instance: %d\n%s", code, out)
	}
	if code, _, _ := run(t, "postfix-config", "--on-failure", "maybe"); code != 2 {
		t.Errorf("bad --on-failure exit %d, want 2", code)
	}
}

// TestZimbraConfig checks the script's shape; internal/e2e
// (TestZimbraConfigAgainstTemplates) renders it the way zmconfigd does from
// Zimbra's templates and loads the result into a real Postfix.
func TestZimbraConfig(t *testing.T) {
	code, out, _ := run(t, "zimbra-config")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"zmprov mcf zimbraSmtpSendAddAuthenticatedUser TRUE", "zmprov fc -a config",
		"zimbraMilterServerEnabled TRUE", "{ inet:127.0.0.1:10042, default_action=tempfail }", "smtpd_milters=inet:127.0.0.1:10042"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	// zmconfigd drops a policy service in zimbraMtaRestriction: never print one.
	if strings.Contains(out, "zmprov mcf +zimbraMtaRestriction") || strings.Contains(out, "check_policy_service inet:") {
		t.Errorf("prints a policy service zmconfigd would drop:\n%s", out)
	}
}

func TestClientWithoutDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	code, _, errOut := run(t, "--socket", sock, "quarantine", "list")
	if code != 1 || !strings.Contains(errOut, "cannot reach the mailbrake daemon") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if code, _, errOut := run(t, "--socket", sock, "quarantine", "release", "abc"); code != 2 || !strings.Contains(errOut, "positive number") {
		t.Fatalf("bad id: exit %d: %s", code, errOut)
	}
}

// TestConfigCheckAgreesWithServe: `config check` refuses exactly what
// serve refuses, with the YAML's key paths and exit 2, because both build
// the daemon the same way (daemon.Check, daemon.Build).
func TestConfigCheckAgreesWithServe(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, yaml string
		want       []string
	}{
		{"notify", `
notify:
  smtp: {addr: "127.0.0.1:25", from: "mailbrake@example.edu"}
  helpdesk: ["x@"]
  syslog: {network: udp, addr: "127.0.0.1:514", facility: nonsense}
  per_hour: -1
`, []string{"notify.helpdesk[0]:", "notify.syslog.facility:", "notify.per_hour: must not be negative"}},
		// notify.smtp.starttls and notify.syslog.network are decoded by
		// Load like the others: a wrong one is refused before notify's own
		// checks run.
		{"enumerations", `
log: {format: xml}
milter: {on_error: explode}
password_leak: {sources: [ldap, nis]}
notify:
  smtp: {addr: "127.0.0.1:25", from: "mailbrake@example.edu", starttls: bogus}
  helpdesk: [help@example.edu]
  syslog: {network: udp6, addr: "127.0.0.1:514"}
rules:
  - {name: a, stage: connect, when: [{fact: size, gt: 1}], verdict: defer}
  - {name: b, direction: outward, when: [{fact: size, gt: 1}], verdict: hold}
`, []string{`log.format: must be one of text, json, got "xml"`, `milter.on_error: must be one of tempfail, accept, got "explode"`,
			`password_leak.sources[1]: must be one of ldap, passwd_file, got "nis"`,
			`notify.smtp.starttls: must be one of none, opportunistic, required, got "bogus"`,
			`notify.syslog.network: must be one of udp, tcp, unix, got "udp6"`,
			`rules[0].stage: must be one of rcpt, eom, got "connect"`,
			`rules[1].direction: must be one of outbound, inbound, any, got "outward"`}},
		{"misspelled trigger", `
playbooks:
  - name: phish
    triggers: [reply-to-phiser]
    severity: high
    steps: [notify]
`, []string{`playbooks[0].triggers[0]: no rule or detector reports "reply-to-phiser" (did you mean "reply-to-phisher"?)`}},
		{"missing secret", `
response:
  zimbra: {url: "https://127.0.0.1:7071/service/admin/soap", admin_user: admin@example.edu, admin_password_file: ` + dir + `/missing}
`, []string{"response.zimbra:"}},
		{"cluster", `
cluster:
  redis: {address: "127.0.0.1", password_file: ` + dir + `/no-redis-password, timeout: 0s}
`, []string{"cluster.redis.address: must be host:port", "cluster.redis.timeout: must be positive"}},
		{"cluster secret", `
cluster:
  redis: {address: "127.0.0.1:6379", password_file: ` + dir + `/no-redis-password, tls: true, ca_file: ` + dir + `/no-ca.pem}
`, []string{"cluster.redis.password_file:", "cluster.redis.ca_file:"}},
		{"cluster redis cluster", `
cluster:
  redis: {address: "127.0.0.1:6379", cluster: true, db: 2, seeds: ["bogus"]}
`, []string{"cluster.redis.db: must be 0 with cluster: true", `cluster.redis.seeds[0]: must be host:port, got "bogus"`}},
		{"cluster key", `
cluster:
  key_file: ` + dir + `/no-cluster-key
  redis: {address: "127.0.0.1:6379"}
`, []string{"cluster.key_file: " + dir + "/no-cluster-key does not exist"}},
		{"cluster key without redis", `
cluster:
  key_file: ` + dir + `/no-cluster-key
`, []string{"cluster.key_file: needs cluster.redis.address"}},
		{"cluster postgres", `
cluster:
  postgres: {url: "postgres://mailbrake:hunter2@127.0.0.1/mailbrake", password_file: ` + dir + `/no-pg-password, max_conns: -1}
`, []string{"cluster.postgres.max_conns: must not be negative", "cluster.postgres.url: needs cluster.redis.address"}},
		{"cluster postgres secret", `
cluster:
  redis: {address: "127.0.0.1:6379"}
  postgres: {url: "postgres://mailbrake:hunter2@127.0.0.1/mailbrake", password_file: ` + dir + `/no-pg-password}
`, []string{"cluster.postgres.url: holds a password: put it in cluster.postgres.password_file", "cluster.postgres.password_file:"}},
		{"cluster postgres url", `
cluster:
  redis: {address: "127.0.0.1:6379"}
  postgres: {url: "postgres://%zz"}
`, []string{"cluster.postgres.url: not a PostgreSQL connection URL"}},
		{"cluster postgres pool", `
cluster:
  redis: {address: "127.0.0.1:6379"}
  postgres: {url: "postgres://mailbrake@127.0.0.1/mailbrake?pool_max_conns=0"}
`, []string{"cluster.postgres.url: not a PostgreSQL connection URL or key=value string (a pool_* setting is invalid)"}},
		{"tls", `
http: {tls_cert: ` + dir + `/nope.pem, tls_key: ` + dir + `/nope.key}
`, []string{"http.tls_cert:"}},
		// The socket in data_dir (mode 0700) is out of a group's reach.
		{"admin group", `
admin: {group: root}
`, []string{"admin.socket: with admin.group the socket must be outside data_dir"}},
		{"listeners on one address", `
policy: {listen: "127.0.0.1:10041"}
milter: {listen: "unix:/` + strings.Repeat("long-", 22) + `/milter.sock"}
http: {listen: "0.0.0.0:10041"}
`, []string{"http.listen: same address as policy.listen (127.0.0.1:10041)", "milter.listen: unix socket path is 123 bytes long; the most Linux takes is 107"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".yaml")
			// Each listener on a free port unless the case says where.
			yaml, rest := "data_dir: "+filepath.Join(dir, "data-"+strings.ReplaceAll(c.name, " ", "-"))+"\n", c.yaml
			for _, l := range []string{"policy", "milter", "http"} {
				switch {
				case !strings.Contains(rest, "\n"+l+": {"):
					yaml += l + ": {listen: 127.0.0.1:0}\n"
				case !strings.Contains(rest, "\n"+l+": {listen:"):
					rest = strings.Replace(rest, "\n"+l+": {", "\n"+l+": {listen: 127.0.0.1:0, ", 1)
				}
			}
			yaml += rest
			if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, checkErr := run(t, "config", "check", path)
			scode, _, serveErr := run(t, "--config", path, "serve")
			if code != 2 || scode != 2 {
				t.Fatalf("config check exit %d, serve exit %d, want 2 and 2\ncheck: %s\nserve: %s", code, scode, checkErr, serveErr)
			}
			for _, want := range c.want {
				if !strings.Contains(checkErr, want) {
					t.Errorf("config check lacks %q:\n%s", want, checkErr)
				}
			}
			if strings.Contains(checkErr+serveErr, "hunter2") {
				t.Errorf("a password from the configuration was printed:\n%s\n%s", checkErr, serveErr)
			}
			if errorLines(checkErr) != errorLines(serveErr) {
				t.Errorf("config check and serve disagree:\ncheck: %s\nserve: %s", checkErr, serveErr)
			}
			if _, err := os.Stat(filepath.Join(dir, "data-"+strings.ReplaceAll(c.name, " ", "-"), "mailbrake.db")); err == nil {
				t.Error("a refused configuration created a database")
			}
		})
	}
}

// errorLines returns the indented error lines of a config error message.
func errorLines(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "  ") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return strings.Join(out, "\n")
}

// TestLearnFromPostfixLog: learn reads a Postfix log (compressed too) into
// the data directory, and a file that yields no message fails clearly.
func TestLearnFromPostfixLog(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "mail.log")
	var b strings.Builder
	for i := range 20 {
		fmt.Fprintf(&b, "Nov %2d 09:00:00 mx postfix/submission/smtpd[1]: Q%05dAA: client=h[198.51.100.4], sasl_method=PLAIN, sasl_username=carol@campus.example\n", 1+i/2, i)
		fmt.Fprintf(&b, "Nov %2d 09:00:01 mx postfix/qmgr[2]: Q%05dAA: from=<carol@campus.example>, size=900, nrcpt=1 (queue active)\n", 1+i/2, i)
		fmt.Fprintf(&b, "Nov %2d 09:00:02 mx postfix-out/smtp[3]: Q%05dAA: to=<friend%d@dest.example>, status=sent (250 ok)\n", 1+i/2, i, i%4)
		fmt.Fprintf(&b, "Nov %2d 09:00:02 mx postfix/qmgr[2]: Q%05dAA: removed\n", 1+i/2, i)
	}
	if err := os.WriteFile(log, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(b.String()))
	zw.Close()
	if err := os.WriteFile(log+".1.gz", gz.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, "--data-dir", filepath.Join(dir, "data"), "learn", "--postfix-log", "--year", "2026", log, log+".1.gz")
	if code != 0 || !strings.Contains(out, "learned from 40 messages") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	empty := filepath.Join(dir, "not-a-log")
	os.WriteFile(empty, []byte("hello\n"), 0o600)
	code, _, errs = run(t, "--data-dir", filepath.Join(dir, "data"), "learn", "--postfix-log", empty)
	if code == 0 || !strings.Contains(errs, "no outbound message with an account") {
		t.Fatalf("a file without messages: exit %d\n%s", code, errs)
	}
}

// TestReplayPostfixLogStreams: replay --postfix-log reads the log as it
// goes and fails clearly on a file that gives no message.
func TestReplayPostfixLogStreams(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "mail.log")
	os.WriteFile(log, []byte(`Nov  1 09:00:00 mx postfix/submission/smtpd[1]: Q00001AA: client=h[198.51.100.4], sasl_method=PLAIN, sasl_username=carol@campus.example
Nov  1 09:00:01 mx postfix/qmgr[2]: Q00001AA: from=<carol@campus.example>, size=900, nrcpt=1 (queue active)
Nov  1 09:00:02 mx postfix-out/smtp[3]: Q00001AA: to=<friend@dest.example>, status=sent (250 ok)
Nov  1 09:00:02 mx postfix/qmgr[2]: Q00001AA: removed
`), 0o600)
	code, out, errs := run(t, "--data-dir", filepath.Join(dir, "data"), "replay", "--postfix-log", "--year", "2026", "--input", log)
	if code != 0 || !strings.Contains(out, `"account":"carol@campus.example"`) || !strings.Contains(errs, "1 outbound messages") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	empty := filepath.Join(dir, "empty.log")
	os.WriteFile(empty, []byte("nothing here\n"), 0o600)
	code, _, errs = run(t, "--data-dir", filepath.Join(dir, "data"), "replay", "--postfix-log", "--input", empty)
	if code == 0 || !strings.Contains(errs, "no outbound message with an account") {
		t.Fatalf("empty log: exit %d\n%s", code, errs)
	}
}

// TestTerminalEscapes: what senders wrote cannot act on the admin's
// terminal: control characters are shown escaped, line breaks in a
// subject do not make lines of their own, newlines and tabs of the CLI's
// own output stay.
func TestTerminalEscapes(t *testing.T) {
	var b bytes.Buffer
	w := &safeWriter{w: &b}
	h := &store.Hold{ID: 7, Subject: "hi\x1b]0;pwned\x07\r\nState: released", Sender: "a@b\x1b[2J", Recipients: []string{"x@y\u009b31m"},
		Headers: "Subject: x\r\nX-Evil: \x1b[1A\r\n", Preview: "line 1\nline\x08 2\u0085"}
	writeHold(w, h)
	// A C1 control split across two writes.
	w.Write([]byte("tail \xc2"))
	w.Write([]byte("\x9b end\n"))
	out := b.String()
	for _, bad := range []string{"\x1b", "\x07", "\r", "\x08", "\u009b", "\u0085"} {
		if strings.Contains(out, bad) {
			t.Errorf("output contains %q:\n%s", bad, out)
		}
	}
	for _, want := range []string{`hi\x1b]0;pwned\x07\r\nState: released`, `a@b\x1b[2J`, `\u009b31m`, `X-Evil: \x1b[1A`, "line 1\nline", `tail \u009b end`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\nState: released") {
		t.Errorf("a subject's line break made a line of its own:\n%s", out)
	}
}

// TestConfigCheckNotesPlaybookChanges (issue 14): listed playbooks merge
// with the defaults; config check says what changed about the defaults (a
// trigger taken over, a default left without triggers, one turned off).
func TestConfigCheckNotesPlaybookChanges(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "mb.yaml")
	os.WriteFile(f, []byte("data_dir: "+filepath.Join(dir, "data")+"\nplaybooks:\n  - name: mine\n    triggers: [password-leak]\n    severity: critical\n    steps: [notify]\n  - {name: review-volume, disabled: true}\n"), 0o600)
	code, out, errs := run(t, "config", "check", f)
	for _, want := range []string{`note: playbooks: "mine" now handles password-leak instead of the default "contain-password-leak"`,
		"no trigger left and do not run: contain-password-leak", "default playbooks turned off: review-volume"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("exit %d, lacks %q\n%s\n%s", code, want, out, errs)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "contain-mass-sending") && !strings.Contains(l, "no configured system carries out") {
			t.Fatalf("a default that still runs is noted:\n%s", out)
		}
	}
	// The embedded defaults configure no directory, Zimbra or help desk:
	// the steps only those carry out are skipped, and config check says so
	// (an incident contained without its password changed).
	code, out, _ = run(t, "--data-dir", filepath.Join(dir, "data"), "config", "check")
	notes := regexp.MustCompile(`(?m)^note: .*$`).FindAllString(out, -1)
	if code != 0 || len(notes) != 1 || !strings.Contains(notes[0], "no configured system carries out scramble-password, end-sessions, force-password-change, check-persistence, notify (steps of contain-password-leak,") {
		t.Fatalf("defaults: exit %d\n%s", code, out)
	}
	// A system that carries them out: no note.
	f2 := filepath.Join(dir, "exec.yaml")
	os.WriteFile(f2, []byte("data_dir: "+filepath.Join(dir, "data")+"\nresponse:\n  exec:\n    command: [/bin/true]\n    steps: [scramble-password, end-sessions, force-password-change, check-persistence, notify]\n"), 0o600)
	if code, out, errs := run(t, "config", "check", f2); code != 0 || strings.Contains(out, "note:") {
		t.Fatalf("every step carried out: exit %d\n%s\n%s", code, out, errs)
	}
}

// TestSystemConfigFound: without --config or MAILBRAKE_CONFIG, the
// package's /etc/mailbrake/mailbrake.yaml is used when it exists (issue
// 14), the embedded defaults otherwise, and --config still wins.
func TestSystemConfigFound(t *testing.T) {
	dir := t.TempDir()
	sys := filepath.Join(dir, "mailbrake.yaml")
	saved := SystemConfig
	t.Cleanup(func() { SystemConfig = saved })
	t.Setenv("MAILBRAKE_CONFIG", "")

	SystemConfig = filepath.Join(dir, "absent.yaml")
	if code, out, errs := run(t, "--data-dir", filepath.Join(dir, "d"), "config", "check"); code != 0 || !strings.Contains(out, "embedded defaults") {
		t.Fatalf("without a system config: exit %d\n%s%s", code, out, errs)
	}

	os.WriteFile(sys, []byte("data_dir: "+filepath.Join(dir, "sysdata")+"\nlog: {level: bogus}\n"), 0o600)
	SystemConfig = sys
	code, out, errs := run(t, "config", "check")
	if code != 2 || !strings.Contains(errs, sys) || !strings.Contains(errs, "log.level") {
		t.Fatalf("with the system config: exit %d\n%s%s", code, out, errs)
	}
	other := filepath.Join(dir, "other.yaml")
	os.WriteFile(other, []byte("data_dir: "+filepath.Join(dir, "o")+"\n"), 0o600)
	if code, out, errs := run(t, "--config", other, "config", "check"); code != 0 || !strings.Contains(out, other) {
		t.Fatalf("--config over the system config: exit %d\n%s%s", code, out, errs)
	}
}

// TestBackup (issue 14): `mailbrake backup FILE` copies the database
// consistently while it is being written and the novelty key into a 0600
// tar, refuses to overwrite, and the copy opens as a store with the rows
// written before the backup.
func TestBackup(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	st, err := sqlite.Open(t.Context(), filepath.Join(data, "mailbrake.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key := []byte("0123456789abcdef0123456789abcdef")
	if err := os.WriteFile(filepath.Join(data, "novelty.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	snaps := map[string][]byte{}
	for i := range 500 {
		snaps[fmt.Sprintf("u%d@example.org", i)] = []byte("state")
	}
	if err := st.SaveSnapshots(t.Context(), snaps); err != nil {
		t.Fatal(err)
	}
	// Writes go on while the backup runs, as in a running daemon.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			st.AppendAudits(context.Background(), []store.AuditEntry{{Time: time.Now(), Actor: "test", Action: "tick", Target: fmt.Sprint(i)}})
		}
	}()
	out := filepath.Join(dir, "backup.tar.gz")
	code, stdout, stderr := run(t, "--data-dir", data, "backup", out)
	close(stop)
	<-done
	if code != 0 || !strings.Contains(stdout, "integrity ok") || !strings.Contains(stdout, "novelty.key") {
		t.Fatalf("backup: exit %d\n%s%s", code, stdout, stderr)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	if code, _, stderr := run(t, "--data-dir", data, "backup", out); code == 0 || !strings.Contains(stderr, "exists") {
		t.Fatalf("a second backup over the first: exit %d %s", code, stderr)
	}

	// Restore into an empty data directory, as docs/deploy.md says.
	restored := filepath.Join(dir, "restored")
	os.Mkdir(restored, 0o700)
	if out, err := exec.Command("tar", "-xzf", out, "-C", restored).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	if got, err := os.ReadFile(filepath.Join(restored, "novelty.key")); err != nil || string(got) != string(key) {
		t.Fatalf("novelty.key: %q %v", got, err)
	}
	st2, err := sqlite.Open(t.Context(), filepath.Join(restored, "mailbrake.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	got, err := st2.LoadSnapshots(t.Context())
	if err != nil || len(got) != 500 {
		t.Fatalf("restored snapshots: %d %v", len(got), err)
	}
}

// TestUnknownSubcommand: a word that is no subcommand of a group fails
// with exit 1 and says so, as at the root — "user delete" (the command is
// "remove") must not print help and exit 0 as if done.
func TestUnknownSubcommand(t *testing.T) {
	for _, args := range [][]string{{"user", "delete", "admin"}, {"quarantine", "purge"}, {"account", "unlock-all"}, {"frobnicate"}} {
		code, stdout, stderr := run(t, append([]string{"--socket", "/nonexistent"}, args...)...)
		if code != 1 || !strings.Contains(stderr, "unknown command") || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	// The group alone still shows its help.
	if code, stdout, _ := run(t, "user"); code != 0 || !strings.Contains(stdout, "remove") {
		t.Errorf("mailbrake user: exit %d, %q", code, stdout)
	}
}
