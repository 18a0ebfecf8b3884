package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailbrake/mailbrake/internal/config"
)

// TestNotifyEveryValue: every notify.smtp.starttls and notify.syslog.network
// value reaches package notify as a name it takes, and required as the
// one that verifies the server (AUTH to a remote host needs it).
func TestNotifyEveryValue(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "smtp-password")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"none", "opportunistic", "required"} {
		c := config.Default()
		if err := c.Notify.SMTP.StartTLS.UnmarshalText([]byte(name)); err != nil {
			t.Fatal(err)
		}
		c.Notify.SMTP.Addr, c.Notify.SMTP.From, c.Notify.Admins = "mail.example.edu:587", "mailbrake@example.edu", []string{"admin@example.edu"}
		c.Notify.SMTP.Username, c.Notify.SMTP.PasswordFile = "mailbrake", pw
		n, err := New(c, nil, "test").buildNotifier()
		switch {
		case name == "required" && (err != nil || n == nil):
			t.Errorf("starttls %s: %v", name, err)
		case name != "required" && (err == nil || !strings.Contains(err.Error(), "notify.smtp.username: AUTH needs starttls: required")):
			t.Errorf("starttls %s: AUTH to a remote host without a verified TLS connection: %v", name, err)
		}
	}
	for _, name := range []string{"udp", "tcp", "unix"} {
		c := config.Default()
		if err := c.Notify.Syslog.Network.UnmarshalText([]byte(name)); err != nil {
			t.Fatal(err)
		}
		if name != "unix" {
			c.Notify.Syslog.Addr = "127.0.0.1:514"
		}
		if n, err := New(c, nil, "test").buildNotifier(); err != nil || n == nil {
			t.Errorf("syslog network %s: %v, %v", name, n, err)
		}
	}
	// Empty: no syslog, and with no other channel no notifier.
	if n, err := New(config.Default(), nil, "test").buildNotifier(); err != nil || n != nil {
		t.Errorf("the defaults: %v, %v", n, err)
	}
}
