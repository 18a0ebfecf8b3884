package ldapdir

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/mailbrake/mailbrake/internal/ldaptest"
)

// cryptHash is `openssl passwd -6 -salt ldapdirsalt crypt-secret`
// (sha512-crypt, 5000 rounds); slapd verifies it with the system crypt(3).
const cryptHash = "{CRYPT}$6$ldapdirsalt$F7Hb2kOgGg6PJiQaDBcLaL1oNHtjXuZa2J.K6HcgEdK/aNb.Y0mupnsttO8LC/SnCT3Os3VTZ9xJCPqOB0dAC/"

// start starts a private slapd and returns it with a Client bound as its
// root DN; edit, when not nil, changes the Config first.
func start(t *testing.T, edit func(*Config)) (*ldaptest.Instance, *Client) {
	t.Helper()
	in := ldaptest.Start(t)
	cfg := Config{
		URL:              in.URL,
		BindDN:           in.AdminDN,
		BindPasswordFile: writeFile(t, "bindpw", in.AdminPassword+"\n"),
		BaseDN:           in.BaseDN,
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return in, c
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPasswordHash(t *testing.T) {
	in, c := start(t, nil)
	ctx := t.Context()

	type user struct{ uid, password, stored string }
	users := []user{
		{"ssha", "ssha-secret", ldaptest.SSHA("ssha-secret")},
		{"crypt", "crypt-secret", cryptHash},
	}
	if in.SHA2 {
		users = append(users, user{"ssha512", "ssha512-secret", ldaptest.SSHA512("ssha512-secret")})
	} else {
		t.Log("pw-sha2 module not installed: {SSHA512} not tested")
	}
	for _, u := range users {
		t.Run(u.uid, func(t *testing.T) {
			mail := u.uid + "@example.test"
			dn := in.AddUser(t, u.uid, mail, u.stored)
			for _, account := range []string{mail, u.uid} {
				got, err := c.PasswordHash(ctx, account)
				if err != nil {
					t.Fatalf("PasswordHash(%s): %v", account, err)
				}
				if got != u.stored {
					t.Errorf("PasswordHash(%s) = %q, want %q", account, got, u.stored)
				}
			}
			if err := in.Bind(dn, u.password); err != nil {
				t.Errorf("bind with the right password: %v", err)
			}
		})
	}

	in.AddUser(t, "nopw", "nopw@example.test", "")
	if _, err := c.PasswordHash(ctx, "nopw"); !errors.Is(err, ErrNoPassword) {
		t.Errorf("PasswordHash of an entry without password: %v, want ErrNoPassword", err)
	}
}

func TestAccountLookup(t *testing.T) {
	in, c := start(t, nil)
	ctx := t.Context()
	in.AddUser(t, "alice", "alice@example.test", ldaptest.SSHA("a"))
	in.AddUser(t, "bob", "bob@example.test", ldaptest.SSHA("b"))
	in.AddUser(t, "bob2", "bob@example.test", ldaptest.SSHA("b2"))

	for _, tc := range []struct {
		account string
		want    error
	}{
		{"alice", nil},
		{"alice@example.test", nil},
		{"ALICE@example.test", nil}, // mail and uid match case-insensitively
		{"carol@example.test", ErrNoSuchAccount},
		{"", ErrNoSuchAccount},
		// Filter injection: escaped, these are literal values.
		{"*", ErrNoSuchAccount},
		{"*)(uid=*", ErrNoSuchAccount},
		{"alice)(|(uid=*", ErrNoSuchAccount},
		{"alice\x00", ErrNoSuchAccount},
		{"bob@example.test", ErrAmbiguousAccount},
	} {
		_, err := c.PasswordHash(ctx, tc.account)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("PasswordHash(%q): %v, want %v", tc.account, err, tc.want)
		}
	}
}

func TestSetPassword(t *testing.T) {
	in, c := start(t, nil)
	ctx := t.Context()
	dn := in.AddUser(t, "alice", "alice@example.test", ldaptest.SSHA("old-secret"))

	// Without pwdMaxAge or pwdMinAge, ppolicy writes no pwdChangedTime on
	// add.
	if at, err := c.PasswordChangedAt(ctx, "alice"); err != nil || !at.IsZero() {
		t.Fatalf("PasswordChangedAt of a new entry = %v, %v; want zero time", at, err)
	}
	in.SetAttr(t, dn, "pwdChangedTime", "20200101000000Z")
	before, err := c.PasswordChangedAt(ctx, "alice")
	if want := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC); err != nil || !before.Equal(want) {
		t.Fatalf("PasswordChangedAt = %v, %v; want %v", before, err, want)
	}
	oldHash, err := c.PasswordHash(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}

	setAt := time.Now().Truncate(time.Second)
	if err := c.SetPassword(ctx, "alice@example.test", []byte("new-secret")); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	if err := in.Bind(dn, "old-secret"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Errorf("bind with the old password: %v, want invalidCredentials", err)
	}
	if err := in.Bind(dn, "new-secret"); err != nil {
		t.Errorf("bind with the new password: %v", err)
	}
	after, err := c.PasswordChangedAt(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !after.After(before) || after.Before(setAt) {
		t.Errorf("pwdChangedTime after SetPassword = %v, want at or after %v", after, setAt)
	}
	newHash, err := c.PasswordHash(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if newHash == oldHash || !strings.HasPrefix(newHash, "{SSHA}") {
		t.Errorf("stored password after SetPassword = %q, want a new {SSHA} value", newHash)
	}

	if err := c.SetPassword(ctx, "alice", nil); err == nil {
		t.Error("SetPassword with an empty password succeeded")
	}
	if err := c.SetPassword(ctx, "carol", []byte("x")); !errors.Is(err, ErrNoSuchAccount) {
		t.Errorf("SetPassword of an unknown account: %v, want ErrNoSuchAccount", err)
	}
}

// Without Password Modify, SetPassword fails unless the fallback is on;
// the fallback's cleartext write is hashed by ppolicy_hash_cleartext.
func TestSetPasswordFallback(t *testing.T) {
	in, c := start(t, nil)
	ctx := t.Context()
	dn := in.AddUser(t, "alice", "alice@example.test", ldaptest.SSHA("old-secret"))
	c.noPasswordModify = true

	err := c.SetPassword(ctx, "alice", []byte("new-secret"))
	if !errors.Is(err, ErrPasswordModifyUnsupported) {
		t.Fatalf("SetPassword without fallback: %v, want ErrPasswordModifyUnsupported", err)
	}
	if strings.Contains(err.Error(), "new-secret") {
		t.Errorf("error shows the password: %v", err)
	}

	c.cfg.PasswordModifyFallback = true
	if err := c.SetPassword(ctx, "alice", []byte("new-secret")); err != nil {
		t.Fatalf("SetPassword with fallback: %v", err)
	}
	if err := in.Bind(dn, "new-secret"); err != nil {
		t.Errorf("bind with the new password: %v", err)
	}
	if got, err := c.PasswordHash(ctx, "alice"); err != nil || !strings.HasPrefix(got, "{SSHA}") {
		t.Errorf("stored password = %q, %v; want an {SSHA} value", got, err)
	}
}

func TestLock(t *testing.T) {
	in, c := start(t, nil)
	ctx := t.Context()
	dn := in.AddUser(t, "alice", "alice@example.test", cryptHash)

	locked := func(want bool) {
		t.Helper()
		got, err := c.Locked(ctx, "alice")
		if err != nil || got != want {
			t.Fatalf("Locked = %v, %v; want %v", got, err, want)
		}
	}
	locked(false)
	if err := c.Unlock(ctx, "alice"); err != nil {
		t.Errorf("Unlock of an unlocked account: %v", err)
	}

	for range 2 { // the second Lock finds the account locked
		if err := c.Lock(ctx, "alice@example.test"); err != nil {
			t.Fatalf("Lock: %v", err)
		}
	}
	locked(true)
	if got := in.Entry(t, dn)["pwdAccountLockedTime"]; len(got) != 1 || got[0] != DefaultLockValue {
		t.Errorf("pwdAccountLockedTime = %q, want %s", got, DefaultLockValue)
	}
	if err := in.Bind(dn, "crypt-secret"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Errorf("bind while locked: %v, want invalidCredentials", err)
	}

	for range 2 {
		if err := c.Unlock(ctx, "alice"); err != nil {
			t.Fatalf("Unlock: %v", err)
		}
	}
	locked(false)
	if err := in.Bind(dn, "crypt-secret"); err != nil {
		t.Errorf("bind after Unlock: %v", err)
	}

	if err := c.Lock(ctx, "carol"); !errors.Is(err, ErrNoSuchAccount) {
		t.Errorf("Lock of an unknown account: %v, want ErrNoSuchAccount", err)
	}
}

// A site that locks with an attribute and values of its own.
func TestLockSiteAttr(t *testing.T) {
	in, c := start(t, func(cfg *Config) {
		cfg.Filter = "(&(objectClass=inetOrgPerson)(mail={account}))"
		cfg.LockAttr = "employeeType"
		cfg.LockValue = "mail-locked"
		cfg.UnlockValue = "active"
	})
	ctx := t.Context()
	dn := in.AddUser(t, "alice", "alice@example.test", ldaptest.SSHA("x"))

	steps := []struct {
		do     func(context.Context, string) error
		stored string
		locked bool
	}{
		{c.Lock, "mail-locked", true},
		{c.Unlock, "active", false},
	}
	for _, s := range steps {
		if err := s.do(ctx, "alice@example.test"); err != nil {
			t.Fatal(err)
		}
		if got := in.Entry(t, dn)["employeeType"]; len(got) != 1 || got[0] != s.stored {
			t.Errorf("employeeType = %q, want %q", got, s.stored)
		}
		if got, err := c.Locked(ctx, "alice@example.test"); err != nil || got != s.locked {
			t.Errorf("Locked = %v, %v; want %v", got, err, s.locked)
		}
	}
}

// A connection that went away is replaced without the caller noticing.
func TestReconnect(t *testing.T) {
	in, c := start(t, nil)
	ctx := t.Context()
	in.AddUser(t, "alice", "alice@example.test", ldaptest.SSHA("x"))
	if _, err := c.PasswordHash(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	if len(c.idle) != 1 {
		t.Fatalf("%d idle connections after one request", len(c.idle))
	}
	first := c.idle[0]
	first.Close()
	c.mu.Unlock()
	if _, err := c.PasswordHash(ctx, "alice"); err != nil {
		t.Fatalf("after the connection closed: %v", err)
	}
	c.mu.Lock()
	if len(c.idle) != 1 || c.idle[0] == first {
		t.Error("closed connection still in use")
	}
	c.mu.Unlock()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PasswordHash(ctx, "alice"); err != nil {
		t.Fatalf("after Close: %v", err)
	}
}

// TestSlowRequestHoldsUpOnlyItself: a request that hangs (a dial or a
// search the server never answers) holds up its own caller, not the
// others: they run on connections of their own.
func TestSlowRequestHoldsUpOnlyItself(t *testing.T) {
	in, c := start(t, nil)
	in.AddUser(t, "alice", "alice@example.test", ldaptest.SSHA("x"))
	// A request holding a connection for a second.
	started, release := make(chan struct{}), make(chan struct{})
	go c.do(t.Context(), func(*ldap.Conn) error {
		close(started)
		<-release
		return nil
	})
	<-started
	defer close(release)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := c.PasswordHash(ctx, "alice"); err != nil {
		t.Fatalf("a lookup while another request hangs: %v", err)
	}
}

// A server that accepts and never answers cannot hold a request past its
// context, whether it hangs the bind or a search.
func TestContextDeadline(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()

	for _, bindDN := range []string{"cn=admin,dc=example,dc=test", ""} {
		cfg := Config{URL: "ldap://" + l.Addr().String(), BaseDN: "dc=example,dc=test", BindDN: bindDN}
		if bindDN != "" {
			cfg.BindPasswordFile = writeFile(t, "bindpw", "secret")
		}
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		_, err = c.PasswordHash(ctx, "alice")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("bind DN %q: PasswordHash against a silent server: %v, want DeadlineExceeded", bindDN, err)
		}
		c.Close()
	}

	c, err := New(Config{URL: "ldap://" + l.Addr().String(), BaseDN: "dc=example,dc=test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Locked(ctx, "alice"); !errors.Is(err, context.Canceled) {
		t.Errorf("Locked with a cancelled context: %v, want Canceled", err)
	}
}

// A wrong bind password fails every request, and the password is in no
// error.
func TestBindFailure(t *testing.T) {
	in, c := start(t, func(cfg *Config) {
		cfg.BindPasswordFile = writeFile(t, "bindpw", "wrong-bind-secret\n")
	})
	in.AddUser(t, "alice", "alice@example.test", ldaptest.SSHA("x"))
	_, err := c.PasswordHash(t.Context(), "alice")
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Fatalf("PasswordHash with a wrong bind password: %v, want invalidCredentials", err)
	}
	if strings.Contains(err.Error(), "wrong-bind-secret") {
		t.Errorf("error shows the bind password: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	valid := Config{URL: "ldap://127.0.0.1", BaseDN: "dc=example,dc=test"}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no url", func(c *Config) { c.URL = "" }, "url: missing"},
		{"bad scheme", func(c *Config) { c.URL = "http://x" }, "url: scheme"},
		{"no host", func(c *Config) { c.URL = "ldap://" }, "url: missing host"},
		{"starttls on ldaps", func(c *Config) { c.URL = "ldaps://x"; c.StartTLS = true }, "start_tls:"},
		{"no base", func(c *Config) { c.BaseDN = "" }, "base_dn: missing"},
		{"bad base", func(c *Config) { c.BaseDN = "not a dn" }, "base_dn:"},
		{"bind without password", func(c *Config) { c.BindDN = "cn=x" }, "bind_password_file:"},
		{"no placeholder", func(c *Config) { c.Filter = "(uid=alice)" }, "placeholder"},
		{"bad filter", func(c *Config) { c.Filter = "(uid=%s" }, "filter:"},
		{"site lock without value", func(c *Config) { c.LockAttr = "employeeType" }, "lock_value: missing"},
		{"lock equals unlock", func(c *Config) { c.UnlockValue = DefaultLockValue }, "unlock_value:"},
		{"missing ca file", func(c *Config) { c.URL = "ldaps://x"; c.CAFile = "/nonexistent" }, "ca_file:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := valid
			tc.edit(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error with %q", err, tc.want)
			}
		})
	}

	for _, u := range []string{"ldap://127.0.0.1", "ldap://[::1]:1389/dc=x", "ldaps://ldap.example.com", "ldapi://%2Frun%2Fslapd%2Fldapi"} {
		cfg := valid
		cfg.URL = u
		if _, err := New(cfg); err != nil {
			t.Errorf("New with url %s: %v", u, err)
		}
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct{ raw, scheme, addr, host string }{
		{"ldap://127.0.0.1", "ldap", "127.0.0.1:389", "127.0.0.1"},
		{"LDAP://ldap.example.com:1389/", "ldap", "ldap.example.com:1389", "ldap.example.com"},
		{"ldaps://ldap.example.com", "ldaps", "ldap.example.com:636", "ldap.example.com"},
		{"ldap://[::1]:1389/dc=x??sub", "ldap", "[::1]:1389", "::1"},
		{"ldapi://%2Frun%2Fslapd%2Fldapi", "ldapi", "/run/slapd/ldapi", ""},
	} {
		scheme, addr, host, err := parseURL(tc.raw)
		if err != nil || scheme != tc.scheme || addr != tc.addr || host != tc.host {
			t.Errorf("parseURL(%q) = %q, %q, %q, %v; want %q, %q, %q", tc.raw, scheme, addr, host, err, tc.scheme, tc.addr, tc.host)
		}
	}
}

func TestExpandFilter(t *testing.T) {
	for _, tc := range []struct{ filter, account, want string }{
		{DefaultFilter, "alice@example.com", "(|(mail=alice@example.com)(uid=alice@example.com))"},
		{"(mail={account})", "*)(uid=*", `(mail=\2a\29\28uid=\2a)`},
		{"(mail=%s)", `a\b`, `(mail=a\5cb)`},
		// An account that looks like a placeholder stays literal.
		{"(|(mail=%s)(cn={account}))", "{account}", "(|(mail={account})(cn={account}))"},
	} {
		if got := expandFilter(tc.filter, tc.account); got != tc.want {
			t.Errorf("expandFilter(%q, %q) = %q, want %q", tc.filter, tc.account, got, tc.want)
		}
	}
}

func TestParseGeneralizedTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"20240229123456Z", time.Date(2024, 2, 29, 12, 34, 56, 0, time.UTC)},
		{"20240229123456.25Z", time.Date(2024, 2, 29, 12, 34, 56, 250e6, time.UTC)},
		{"20240229143456+0200", time.Date(2024, 2, 29, 12, 34, 56, 0, time.UTC)},
	} {
		got, err := parseGeneralizedTime(tc.in)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseGeneralizedTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "2024", "not a time", "20241301000000Z"} {
		if _, err := parseGeneralizedTime(bad); err == nil {
			t.Errorf("parseGeneralizedTime(%q) succeeded", bad)
		}
	}
}

func TestMustChangePassword(t *testing.T) {
	in, c := start(t, nil)
	ctx := t.Context()
	dn := in.AddUser(t, "alice", "alice@example.test", cryptHash)
	if err := c.MustChangePassword(ctx, "alice@example.test"); err != nil {
		t.Fatal(err)
	}
	if got := in.Entry(t, dn)["pwdReset"]; len(got) != 1 || got[0] != "TRUE" {
		t.Fatalf("pwdReset = %q", got)
	}
	if err := c.MustChangePassword(ctx, "carol"); !errors.Is(err, ErrNoSuchAccount) {
		t.Fatalf("unknown account: %v", err)
	}
}
