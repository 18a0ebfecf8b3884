package dovecottest

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// Stored passwords made with `doveadm pw -s SCHEME -p PLAIN` (Dovecot
// 2.3.19).
const (
	cryptHash = "{SHA512-CRYPT}$6$9D72aK/Rx3o0oHBK$3X0E.QUWe1QLcsh2.rH3Bcpvw11mRGEWbYmZMnBUX2R.dsWsXQpP0UXgOwrPLUHCTWiEtyGvo6aFz49rIVpQb0" // crypt-pass
	sshaHash  = "{SSHA512}iHHKSegyd2pY1l99pxgjzkits1a3yjvTKDvoNN08EKQSE1nYUi5mbVz62xEd07RRP0IY5czjxE7OKZnuS0HAirMKQ1c="                    // ssha-pass
)

func TestLoginSchemes(t *testing.T) {
	t.Parallel()
	in := Start(t, Options{Users: []User{
		{Name: "crypt@example.com", Password: cryptHash},
		{Name: "ssha@example.com", Password: sshaHash},
		{Name: "plain@example.com", Password: "plain-pass"},
		{Name: "braced@example.com", Password: "{PLAIN}with \"quote\" and \\"},
	}})
	for _, tc := range []struct{ user, pass string }{
		{"crypt@example.com", "crypt-pass"},
		{"ssha@example.com", "ssha-pass"},
		{"plain@example.com", "plain-pass"},
		{"braced@example.com", `with "quote" and \`},
	} {
		c, err := in.Login(tc.user, tc.pass)
		if err != nil {
			t.Errorf("Login(%s): %v", tc.user, err)
			continue
		}
		if err := c.Noop(); err != nil {
			t.Errorf("%s: NOOP: %v", tc.user, err)
		}
		if err := c.Logout(); err != nil {
			t.Errorf("%s: LOGOUT: %v", tc.user, err)
		}
	}

	_, err := in.Login("crypt@example.com", "wrong")
	var ie *IMAPError
	if !errors.As(err, &ie) || ie.Status != "NO" || !strings.Contains(ie.Text, "[AUTHENTICATIONFAILED]") {
		t.Errorf("wrong password: got %v, want NO [AUTHENTICATIONFAILED]", err)
	}
	if ok, out, err := in.AuthTest("ssha@example.com", "ssha-pass"); err != nil || !ok {
		t.Errorf("AuthTest right password = %v, %v:\n%s", ok, err, out)
	}
	if ok, out, err := in.AuthTest("ssha@example.com", "wrong"); err != nil || ok {
		t.Errorf("AuthTest wrong password = %v, %v:\n%s", ok, err, out)
	}
	if got := in.HashPassword(t, "SHA512-CRYPT", "x"); !strings.HasPrefix(got, "{SHA512-CRYPT}$6$") {
		t.Errorf("HashPassword = %q", got)
	}
	if log := in.Log(); !strings.Contains(log, "starting up for imap") {
		t.Errorf("log has no start line:\n%s", log)
	}
}

func TestDoveadmAPIKey(t *testing.T) {
	t.Parallel()
	in := Start(t, Options{})
	hc := &http.Client{}
	if err := in.doveadmAnswers(hc); err != nil {
		t.Fatalf("with the key: %v", err)
	}
	in.APIKey = "wrong"
	if err := in.doveadmAnswers(hc); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("with a wrong key: got %v, want a 401", err)
	}
}

// TestStopLeavesNothing checks that the cleanup of a test stops every
// process of the instance.
func TestStopLeavesNothing(t *testing.T) {
	t.Parallel()
	var pgid int
	t.Run("instance", func(t *testing.T) {
		in := Start(t, Options{Users: []User{{Name: "a@example.com", Password: "pw"}}})
		c, err := in.Login("a@example.com", "pw") // an imap process too
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		pgid = in.cmd.Process.Pid
		if len(groupMembers(pgid)) < 3 {
			t.Fatalf("process group %d has only %v", pgid, groupMembers(pgid))
		}
	})
	if pgid == 0 {
		t.Skip("instance did not start")
	}
	if m := groupMembers(pgid); len(m) != 0 {
		t.Fatalf("processes %v of group %d survive the cleanup", m, pgid)
	}
}

// TestIMAPConnBye checks the client against a scripted server: a session
// the server ends with BYE and a close is reported as ErrDisconnected.
func TestIMAPConnBye(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		c.Write([]byte("* OK ready\r\n"))
		line, _ := r.ReadString('\n') // a1 LOGIN "u" "p\"q"
		if line != "a1 LOGIN \"u\" \"p\\\"q\"\r\n" {
			c.Write([]byte("a1 BAD unexpected " + strings.TrimSpace(line) + "\r\n"))
			return
		}
		c.Write([]byte("* CAPABILITY IMAP4rev1\r\n* 1 FETCH (BODY[] {5}\r\nab\r\n)\r\na1 OK Logged in\r\n"))
		r.ReadString('\n') // a2 NOOP
		c.Write([]byte("* BYE Server shutting down.\r\n"))
	}()

	c, err := DialIMAP(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("u", `p"q`); err != nil {
		t.Fatalf("Login: %v", err)
	}
	err = c.Noop()
	if !errors.Is(err, ErrDisconnected) || !strings.Contains(err.Error(), "Server shutting down") {
		t.Fatalf("NOOP after BYE: got %v, want ErrDisconnected with the BYE text", err)
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"":         `""`,
		"a@b":      `"a@b"`,
		`x"y\z`:    `"x\"y\\z"`,
		"ünïcødé ": `"ünïcødé "`,
	} {
		if got, err := quote(in); err != nil || got != want {
			t.Errorf("quote(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := quote("a\r\nb"); err == nil {
		t.Error("quote accepted CRLF")
	}
}

// BenchmarkStart measures a Dovecot start (until IMAP greets and the
// doveadm API answers) and, separately, its stop.
func BenchmarkStart(b *testing.B) {
	Start(b, Options{}) // the skips
	ids, err := lookupIDs()
	if err != nil {
		b.Fatal(err)
	}
	var stopping time.Duration
	for b.Loop() {
		in, err := launch(Options{Users: []User{{Name: "a@example.com", Password: "pw"}}}, ids)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		begin := time.Now()
		if err := in.stop(); err != nil {
			b.Fatal(err)
		}
		stopping += time.Since(begin)
		os.RemoveAll(in.Dir)
		b.StartTimer()
	}
	b.ReportMetric(float64(stopping.Milliseconds())/float64(b.N), "stop-ms/op")
}
