package pwleak

import (
	"context"
	"crypto/sha512"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/engine"
)

// ssha512 builds a {SSHA512} value as Zimbra stores it (8-byte salt).
func ssha512(pw string) string {
	salt := []byte("8bytesal")
	h := sha512.Sum512(append([]byte(pw), salt...))
	return "{SSHA512}" + base64.StdEncoding.EncodeToString(append(h[:], salt...))
}

// shaCrypt is `openssl passwd -6 -salt saltsalt 'Tr0ub4dor&3x'`.
const shaCrypt = "{CRYPT}$6$saltsalt$HLKn1GMPph2DkPVDaALTgK/hvl.ivQs1Ht8fmR2/qPnPSdWS8ggtFOXOIkNWD6gLwsNW0QJ/2RpMx8CpGkNmi1"

type source struct {
	mu     sync.Mutex
	hashes map[string]string
	calls  int
}

func (s *source) Name() string { return "test" }
func (s *source) PasswordHash(_ context.Context, a string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	h, ok := s.hashes[a]
	if !ok {
		return "", ErrNoSuchAccount
	}
	return h, nil
}

func msg(body string) []byte {
	return []byte("From: u@example.edu\r\nSubject: Re: verify\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body)
}

func sub(account string, body []byte) *engine.Submission {
	return &engine.Submission{Time: time.Now(), Stage: engine.StageEOM, Account: account, Body: body, QueueID: "Q1"}
}

func TestFastScheme(t *testing.T) {
	src := &source{hashes: map[string]string{"u@example.edu": ssha512("S3cret!pw"), "other@example.edu": ssha512("Another#1")}}
	d := New(Options{Sources: []HashSource{src}, Action: engine.ActionHold, Score: 10})
	defer d.Close()
	ctx := context.Background()
	for _, c := range []struct {
		name, account, body string
		want                bool
	}{
		{"plain", "u@example.edu", "Hello, my password is S3cret!pw. Thanks", true},
		{"label", "u@example.edu", "username: u\npassword:S3cret!pw\n", true},
		{"quoted reply", "u@example.edu", "see below\n> pw= S3cret!pw\n", true},
		{"one character changed", "u@example.edu", "my password is S3cret!pX", false},
		{"another user's password", "u@example.edu", "the password is Another#1", false},
		{"own password of the other user", "other@example.edu", "the password is Another#1", true},
		{"no text", "u@example.edu", "", false},
		{"unknown account", "nobody@example.edu", "S3cret!pw", false},
	} {
		s := sub(c.account, msg(c.body))
		fs := d.Outbound(ctx, s)
		if got := len(fs) == 1; got != c.want {
			t.Errorf("%s: findings %+v", c.name, fs)
			continue
		}
		if c.want {
			f := fs[0]
			if f.Reason != ReasonPasswordLeak || f.Action != engine.ActionHold || f.Score != 10 || strings.Contains(f.Evidence, "S3cret") || strings.Contains(f.Evidence, "Another") {
				t.Errorf("%s: finding %+v", c.name, f)
			}
			if len(s.Secrets) != 1 || (string(s.Secrets[0]) != "S3cret!pw" && string(s.Secrets[0]) != "Another#1") {
				t.Errorf("%s: secrets for masking: %d", c.name, len(s.Secrets))
			}
		}
	}
	// Policy path: no body, nothing to check, no directory call.
	before := src.calls
	if fs := d.Outbound(ctx, &engine.Submission{Account: "u@example.edu"}); fs != nil || src.calls != before {
		t.Fatal("checked a message without content")
	}
}

func TestCacheAndPasswordChange(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	src := &source{hashes: map[string]string{"u@example.edu": ssha512("OldPass#1")}}
	d := New(Options{Sources: []HashSource{src}, CacheTTL: time.Minute, Action: engine.ActionHold, Now: clock})
	defer d.Close()
	ctx := context.Background()
	if len(d.Outbound(ctx, sub("u@example.edu", msg("OldPass#1")))) != 1 {
		t.Fatal("old password not found")
	}
	src.mu.Lock()
	src.hashes["u@example.edu"] = ssha512("NewPass#2")
	src.mu.Unlock()
	// Within the TTL the cached hash is used: one directory call so far.
	d.Outbound(ctx, sub("u@example.edu", msg("NewPass#2")))
	if src.calls != 1 {
		t.Fatalf("directory calls within the TTL: %d", src.calls)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if len(d.Outbound(ctx, sub("u@example.edu", msg("NewPass#2")))) != 1 {
		t.Fatal("changed password not picked up after the TTL")
	}
	if len(d.Outbound(ctx, sub("u@example.edu", msg("OldPass#1")))) != 0 {
		t.Fatal("old password still matches after the change")
	}
}

func TestSlowSchemeBackground(t *testing.T) {
	src := &source{hashes: map[string]string{"u@example.edu": shaCrypt}}
	late := make(chan engine.Finding, 1)
	d := New(Options{Sources: []HashSource{src}, InlineBudget: time.Nanosecond, Action: engine.ActionHold,
		OnLateMatch: func(account, queueID string, f engine.Finding) {
			if account == "u@example.edu" && queueID == "Q1" {
				late <- f
			}
		}})
	defer d.Close()
	body := "Here are the words you wanted: alpha bravo charlie delta echo foxtrot golf hotel\nTr0ub4dor&3x\n"
	if fs := d.Outbound(context.Background(), sub("u@example.edu", msg(body))); len(fs) != 0 {
		t.Fatalf("inline finding with a zero budget: %+v", fs)
	}
	select {
	case f := <-late:
		if f.Reason != ReasonPasswordLeak || strings.Contains(f.Evidence, "Tr0ub4dor") {
			t.Fatalf("late finding %+v", f)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("background check did not find the password")
	}
	// With a budget, the same message is caught inline.
	d2 := New(Options{Sources: []HashSource{src}, InlineBudget: 10 * time.Second, Action: engine.ActionHold})
	defer d2.Close()
	if fs := d2.Outbound(context.Background(), sub("u@example.edu", msg(body))); len(fs) != 1 {
		t.Fatalf("inline slow check: %+v", fs)
	}
}

func TestUnusableHash(t *testing.T) {
	src := &source{hashes: map[string]string{"u@example.edu": "{NTLM}0123456789abcdef", "v@example.edu": "{SSHA512}!!!"}}
	d := New(Options{Sources: []HashSource{src}, Action: engine.ActionHold})
	defer d.Close()
	for _, a := range []string{"u@example.edu", "v@example.edu"} {
		if fs := d.Outbound(context.Background(), sub(a, msg("anything Secret#1"))); fs != nil {
			t.Fatalf("%s: %+v", a, fs)
		}
	}
}

// gatedSource answers only when released, counting the calls.
type gatedSource struct {
	source
	entered chan struct{}
	release chan struct{}
}

func (g *gatedSource) PasswordHash(ctx context.Context, a string) (string, error) {
	g.entered <- struct{}{}
	<-g.release
	return g.source.PasswordHash(ctx, a)
}

// TestConcurrentLookupsShareOne: a burst of one account's messages while
// its hash is not cached makes one directory lookup, whose answer all of
// them use.
func TestConcurrentLookupsShareOne(t *testing.T) {
	src := &gatedSource{source: source{hashes: map[string]string{"u@example.edu": ssha512("OldPass#1")}},
		entered: make(chan struct{}, 20), release: make(chan struct{})}
	d := New(Options{Sources: []HashSource{src}, CacheTTL: time.Minute, Action: engine.ActionHold})
	defer d.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	found := make(chan int, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			found <- len(d.Outbound(ctx, sub("u@example.edu", msg("OldPass#1"))))
		}()
	}
	<-src.entered // the first lookup is in the directory; the rest wait for it or find its answer cached
	close(src.release)
	wg.Wait()
	close(found)
	for n := range found {
		if n != 1 {
			t.Fatalf("a message missed the password: %d findings", n)
		}
	}
	if src.calls != 1 {
		t.Fatalf("%d directory lookups for one account, want 1", src.calls)
	}
}
