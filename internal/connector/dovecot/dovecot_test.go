package dovecot

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/dovecottest"
)

// Tests against a private Dovecot 2.3 (internal/dovecottest); they skip
// without root or in -short mode.

func startDovecot(t testing.TB) (*dovecottest.Instance, *Client) {
	t.Helper()
	in := dovecottest.Start(t, dovecottest.Options{Users: []dovecottest.User{
		{Name: "alice@example.com", Password: "alice-pw"},
		{Name: "bob@example.com", Password: "bob-pw"},
	}})
	c, err := New(Config{URL: in.DoveadmURL, APIKeyFile: in.APIKeyFile})
	if err != nil {
		t.Fatal(err)
	}
	return in, c
}

func TestKickDovecot(t *testing.T) {
	t.Parallel()
	in, c := startDovecot(t)
	ctx := context.Background()

	alice1, err := in.Login("alice@example.com", "alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	defer alice1.Close()
	alice2, err := in.Login("alice@example.com", "alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	defer alice2.Close()
	bob, err := in.Login("bob@example.com", "bob-pw")
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()

	sessions, err := c.Who(ctx, "alice@example.com")
	if err != nil || len(sessions) != 1 || sessions[0].Connections != 2 || sessions[0].Service != "imap" || len(sessions[0].PIDs) != 2 {
		t.Fatalf("Who(alice) = %+v, %v; want one imap line with 2 connections", sessions, err)
	}

	begin := time.Now()
	n, err := c.Kick(ctx, "alice@example.com")
	t.Logf("kick round trip: %v", time.Since(begin))
	if err != nil || n != 1 {
		t.Fatalf("Kick(alice) = %d, %v; want 1, nil", n, err)
	}
	for i, conn := range []*dovecottest.IMAPConn{alice1, alice2} {
		if err := conn.WaitDisconnected(10 * time.Second); !errors.Is(err, dovecottest.ErrDisconnected) {
			t.Errorf("alice session %d after the kick: %v, want ErrDisconnected", i+1, err)
		} else {
			t.Logf("alice session %d: %v, %v after the kick began", i+1, err, time.Since(begin))
		}
	}
	if err := bob.Noop(); err != nil {
		t.Errorf("bob's session suffered from alice's kick: %v", err)
	}

	if n, err := c.Kick(ctx, "alice@example.com"); err != nil || n != 0 {
		t.Errorf("second Kick(alice) = %d, %v; want 0, nil", n, err)
	}
	if n, err := c.Kick(ctx, "nobody@example.com"); err != nil || n != 0 {
		t.Errorf("Kick(unknown account) = %d, %v; want 0, nil", n, err)
	}
	if sessions, err := c.Who(ctx, "alice@example.com"); err != nil || len(sessions) != 0 {
		t.Errorf("Who(alice) after the kick = %+v, %v; want none", sessions, err)
	}
}

func TestAuthCacheFlushDovecot(t *testing.T) {
	t.Parallel()
	_, c := startDovecot(t)
	ctx := context.Background()
	begin := time.Now()
	if err := c.AuthCacheFlush(ctx, "alice@example.com"); err != nil {
		t.Fatalf("AuthCacheFlush: %v", err)
	}
	t.Logf("authCacheFlush round trip: %v", time.Since(begin))
	// An account Dovecot never saw is no error either.
	if err := c.AuthCacheFlush(ctx, "nobody@example.com"); err != nil {
		t.Fatalf("AuthCacheFlush(unknown account): %v", err)
	}
}

func TestWrongKeyDovecot(t *testing.T) {
	t.Parallel()
	in, _ := startDovecot(t)
	wrong := newClient(t, in.DoveadmURL, "not-the-key")
	_, err := wrong.Kick(context.Background(), "alice@example.com")
	var de *Error
	if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &de) || de.Status != 401 {
		t.Fatalf("wrong key: got %v, want a 401 wrapping ErrUnauthorized", err)
	}
	if strings.Contains(err.Error(), "not-the-key") {
		t.Errorf("the key is in the error: %v", err)
	}
	t.Logf("wrong key: %v", err)

	badPath := newClient(t, strings.TrimSuffix(in.DoveadmURL, "/v1")+"/v2", in.APIKey)
	if _, err := badPath.Kick(context.Background(), "alice@example.com"); !errors.As(err, &de) || de.Status != 404 {
		t.Errorf("wrong path: got %v, want HTTP 404", err)
	}
}

// BenchmarkKickDovecot measures a kick round trip against a real Dovecot,
// for an account without sessions (doveadm still looks the account up in
// anvil and answers exit code 68).
func BenchmarkKickDovecot(b *testing.B) {
	_, c := startDovecot(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.Kick(ctx, "alice@example.com"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKickSessionDovecot measures a kick that ends one IMAP session;
// the login is outside the timer.
func BenchmarkKickSessionDovecot(b *testing.B) {
	in, c := startDovecot(b)
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		conn, err := in.Login("alice@example.com", "alice-pw")
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if n, err := c.Kick(ctx, "alice@example.com"); err != nil || n != 1 {
			b.Fatal(n, err)
		}
		b.StopTimer()
		conn.Close()
		b.StartTimer()
	}
}

func BenchmarkAuthCacheFlushDovecot(b *testing.B) {
	_, c := startDovecot(b)
	ctx := context.Background()
	for b.Loop() {
		if err := c.AuthCacheFlush(ctx, "alice@example.com"); err != nil {
			b.Fatal(err)
		}
	}
}
