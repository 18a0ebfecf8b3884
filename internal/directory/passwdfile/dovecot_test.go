package passwdfile_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/connector/dovecot"
	"github.com/mailbrake/mailbrake/internal/directory/passwdfile"
	"github.com/mailbrake/mailbrake/internal/dovecottest"
)

// Tests against a private Dovecot 2.3 (internal/dovecottest); they skip
// without root or in -short mode.

// oldHash is `doveadm pw -s SHA512-CRYPT -p old-secret`.
const oldHash = "{SHA512-CRYPT}$6$7VEfplK5I/D6.oxp$Wau6JlPJtxCJicst7ts4y6aMnljTjR5.e..HM72YxbrImCbwXlX07PrvX7oQKpeOoyOusVuIfVv6lrHeKHYpm."

const alice = "alice@example.com"

func start(t *testing.T, opts dovecottest.Options) (*dovecottest.Instance, *dovecot.Client) {
	t.Helper()
	in := dovecottest.Start(t, opts)
	c, err := dovecot.New(dovecot.Config{URL: in.DoveadmURL, APIKeyFile: in.APIKeyFile})
	if err != nil {
		t.Fatal(err)
	}
	return in, c
}

// canLogin logs in over IMAP and reports whether Dovecot accepted; a
// refusal's text is returned.
func canLogin(t *testing.T, in *dovecottest.Instance, user, password string) (bool, string) {
	t.Helper()
	c, err := in.Login(user, password)
	if err == nil {
		c.Logout()
		return true, ""
	}
	var ie *dovecottest.IMAPError
	if !errors.As(err, &ie) || ie.Status != "NO" {
		t.Fatalf("login %s: %v", user, err)
	}
	return false, ie.Text
}

func TestSetPasswordDovecot(t *testing.T) {
	t.Parallel()
	in, c := start(t, dovecottest.Options{Users: []dovecottest.User{
		{Name: alice, Password: oldHash},
		{Name: "bob@example.com", Password: "bob-pw"},
	}})
	ctx := context.Background()
	if ok, text := canLogin(t, in, alice, "old-secret"); !ok {
		t.Fatalf("old password refused before the change: %s", text)
	}
	if got, err := passwdfile.Lookup(in.PasswdFile, alice); err != nil || got != oldHash {
		t.Fatalf("Lookup = %q, %v", got, err)
	}

	// Same scheme, same length: only the mtime bump makes Dovecot see it.
	newHash := in.HashPassword(t, "SHA512-CRYPT", "new-secret")
	if err := passwdfile.SetPassword(in.PasswdFile, alice, newHash); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(in.PasswdFile)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o640 || st.Uid != 0 || st.Gid == 0 {
		t.Errorf("passwd-file is now %v %d:%d; want 0640 root:dovecot as before", fi.Mode().Perm(), st.Uid, st.Gid)
	}
	if err := c.AuthCacheFlush(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if ok, _ := canLogin(t, in, alice, "old-secret"); ok {
		t.Error("the old password still logs in after SetPassword and AuthCacheFlush")
	}
	if ok, text := canLogin(t, in, alice, "new-secret"); !ok {
		t.Errorf("the new password is refused: %s", text)
	}
	if ok, text := canLogin(t, in, "bob@example.com", "bob-pw"); !ok {
		t.Errorf("bob was caught up in alice's change: %s", text)
	}
	if got, err := passwdfile.Lookup(in.PasswdFile, alice); err != nil || got != newHash {
		t.Errorf("Lookup after the change = %q, %v", got, err)
	}
}

// TestSameSizeRewriteDovecot checks that Dovecot picks up a password
// change of the same size made in the second it last read the file, which
// it would not without the mtime bump (it compares whole-second mtimes and
// sizes).
func TestSameSizeRewriteDovecot(t *testing.T) {
	t.Parallel()
	in, _ := start(t, dovecottest.Options{
		DisableAuthCache: true,
		Users:            []dovecottest.User{{Name: alice, Password: "{PLAIN}pass-0"}},
	})
	previous := "pass-0"
	for _, pw := range []string{"pass-1", "pass-2", "pass-3"} {
		// Make Dovecot read the file now, with an mtime in this second.
		now := time.Now()
		if err := os.Chtimes(in.PasswdFile, now, now); err != nil {
			t.Fatal(err)
		}
		if ok, out, err := in.AuthTest(alice, previous); err != nil || !ok {
			t.Fatalf("%s refused (%v):\n%s", previous, err, out)
		}
		if err := passwdfile.SetPassword(in.PasswdFile, alice, "{PLAIN}"+pw); err != nil {
			t.Fatal(err)
		}
		if ok, out, err := in.AuthTest(alice, pw); err != nil || !ok {
			t.Fatalf("%s refused after SetPassword (%v):\n%s", pw, err, out)
		}
		previous = pw
	}
}

func TestLockDovecot(t *testing.T) {
	t.Parallel()
	in, c := start(t, dovecottest.Options{Users: []dovecottest.User{{Name: alice, Password: "alice-pw"}}})
	ctx := context.Background()
	if ok, text := canLogin(t, in, alice, "alice-pw"); !ok {
		t.Fatalf("refused before Lock: %s", text)
	}
	session, err := in.Login(alice, "alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()

	// The playbook's order: lock, flush the cache, end the sessions.
	if err := passwdfile.Lock(in.PasswdFile, alice); err != nil {
		t.Fatal(err)
	}
	if err := c.AuthCacheFlush(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Kick(ctx, alice); err != nil || n != 1 {
		t.Fatalf("Kick = %d, %v", n, err)
	}
	if err := session.WaitDisconnected(10 * time.Second); !errors.Is(err, dovecottest.ErrDisconnected) {
		t.Errorf("session after Lock and Kick: %v, want ErrDisconnected", err)
	}
	ok, text := canLogin(t, in, alice, "alice-pw")
	if ok {
		t.Fatal("IMAP login works on a locked account")
	}
	t.Logf("locked IMAP login: NO %s", text)
	if ok, out, err := in.AuthTest(alice, "alice-pw"); err != nil || ok {
		t.Errorf("auth-client (SASL) login works on a locked account (%v):\n%s", err, out)
	}

	if err := passwdfile.Unlock(in.PasswdFile, alice); err != nil {
		t.Fatal(err)
	}
	if err := c.AuthCacheFlush(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if ok, text := canLogin(t, in, alice, "alice-pw"); !ok {
		t.Errorf("refused after Unlock: %s", text)
	}
	if ok, out, err := in.AuthTest(alice, "alice-pw"); err != nil || !ok {
		t.Errorf("auth-client login refused after Unlock (%v):\n%s", err, out)
	}
}

// TestLockFieldChoiceDovecot pins down why Lock writes fail=y: nologin only
// stops Dovecot's own login processes, and an auth-only client (Postfix's
// smtpd with Dovecot SASL; doveadm auth test speaks the same protocol)
// still gets OK; deny=yes is no extra field at all.
func TestLockFieldChoiceDovecot(t *testing.T) {
	t.Parallel()
	in, _ := start(t, dovecottest.Options{
		DisableAuthCache: true,
		Users: []dovecottest.User{
			{Name: "nologin@example.com", Password: "pw", Extra: "nologin=y"},
			{Name: "deny@example.com", Password: "pw", Extra: "deny=yes"},
			{Name: "fail@example.com", Password: "pw", Extra: "fail=y"},
		},
	})
	ok, text := canLogin(t, in, "nologin@example.com", "pw")
	if ok || !strings.Contains(text, "Login disabled") {
		t.Errorf("nologin: IMAP login = %v %q; want refused, Login disabled", ok, text)
	}
	if ok, out, err := in.AuthTest("nologin@example.com", "pw"); err != nil || !ok {
		t.Errorf("nologin: auth test = %v, %v; Dovecot 2.3.19 answers OK (with nologin) to auth-only clients:\n%s", ok, err, out)
	}
	if ok, _ := canLogin(t, in, "deny@example.com", "pw"); !ok {
		t.Error("deny=yes as an extra field refused the login; Dovecot 2.3.19 ignores it")
	}
	if ok, _ := canLogin(t, in, "fail@example.com", "pw"); ok {
		t.Error("fail=y: IMAP login accepted")
	}
	if ok, _, err := in.AuthTest("fail@example.com", "pw"); err != nil || ok {
		t.Errorf("fail=y: auth test = %v, %v; want refused", ok, err)
	}
}
