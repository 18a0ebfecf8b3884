package daemon

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/connector/zimbra"
	"github.com/mailbrake/mailbrake/internal/connector/zimbra/zimbratest"
	"github.com/mailbrake/mailbrake/internal/ops"
	"github.com/mailbrake/mailbrake/internal/response"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/store/sqlite"
)

// zimbraResponse builds account response against a fake Zimbra that
// answers as the documented SOAP admin API does.
func zimbraResponse(t *testing.T) (*ops.Service, *zimbratest.Server) {
	t.Helper()
	return zimbraResponseWith(t, zimbratest.Options{})
}

// zimbraResponseWith is zimbraResponse against a fake started with opts.
func zimbraResponseWith(t *testing.T, opts zimbratest.Options) (*ops.Service, *zimbratest.Server) {
	t.Helper()
	z := zimbratest.Start(t, opts)
	z.AddAccount("u@example.edu", map[string][]string{"zimbraAccountStatus": {"active"}, "zimbraAuthTokenValidityValue": {"4"},
		"zimbraPrefMailForwardingAddress": {"drop@attacker.example"}})
	cfg := config.Default()
	cfg.Response.Zimbra = config.ZimbraConfig{URL: z.URL(), AdminUser: z.AdminUser(), AdminPasswordFile: z.AdminPasswordFile(t), CAFile: z.CAFile(), Timeout: config.Duration(5 * time.Second)}
	cfg.Response.Backoff = config.Duration(time.Millisecond)
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	states, err := ops.NewStates(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	d.ops = &ops.Service{Store: st, Audit: st, Accounts: st, States: states, Log: d.log}
	if err := d.buildResponse(); err != nil {
		t.Fatal(err)
	}
	d.ops.Response = d.startResponse(st)
	z.ResetCalls()
	return d.ops, z
}

// calls returns the fake Zimbra's calls with the account's zimbraId
// written as ZID.
func calls(z *zimbratest.Server) []string {
	id := ""
	if a := z.Attr("u@example.edu", "zimbraId"); len(a) > 0 {
		id = a[0]
	}
	out := z.CallStrings()
	for i := range out {
		if id != "" {
			out[i] = strings.ReplaceAll(out[i], id, "ZID")
		}
	}
	return out
}

const persistenceAttrs = "zimbraId,zimbraAccountStatus,zimbraAuthTokenValidityValue,zimbraPasswordModifiedTime,zimbraPasswordMustChange,zimbraMailHost," +
	"zimbraLastLogonTimestamp,zimbraPrefMailForwardingAddress,zimbraMailForwardingAddress,zimbraPrefMailLocalDeliveryDisabled,zimbraMailSieveScript," +
	"zimbraMailOutgoingSieveScript,zimbraPrefIdentityName,zimbraPrefFromAddress,zimbraPrefFromDisplay,zimbraPrefReplyToEnabled,zimbraPrefReplyToAddress,zimbraPrefReplyToDisplay," +
	"zimbraMailAlias,zimbraMailCanonicalAddress,zimbraFeatureAddressUnderVerification,zimbraPrefPasswordRecoveryAddress,zimbraPrefPasswordRecoveryAddressStatus," +
	"zimbraTwoFactorAuthEnabled,zimbraFeatureTwoFactorAuthRequired,zimbraFeatureAppSpecificPasswordsEnabled,zimbraAppSpecificPassword,zimbraTwoFactorAuthTrustedDevices"

// afterConfirm are the calls of lock-login through check-persistence.
var afterConfirm = []string{
	"GetAccountRequest account=u@example.edu attrs=zimbraId",
	"ModifyAccountRequest account=ZID zimbraAccountStatus=locked",
	// the account's effective password policy, which the new password must meet
	"GetAccountRequest account=u@example.edu attrs=" + strings.Join(zimbra.PolicyAttrs, ","),
	"GetAccountRequest account=u@example.edu attrs=zimbraId",
	"SetPasswordRequest account=ZID password=(set)",
	"GetAccountRequest account=u@example.edu attrs=zimbraId,zimbraAuthTokenValidityValue,zimbraAccountStatus",
	"GetConfigRequest a=zimbraAuthTokenValidityValueEnabled",
	"ModifyAccountRequest account=ZID zimbraAuthTokenValidityValue=6", // 4, +1 by SetPassword, +1 to end sessions
	"GetAllServersRequest service=mailbox",
	"FlushCacheRequest account=ZID type=account allServers=0 entry=id:ZID",
	"GetAccountRequest account=u@example.edu attrs=zimbraId",
	"ModifyAccountRequest account=ZID zimbraPasswordMustChange=TRUE",
	"GetAccountRequest account=u@example.edu attrs=" + persistenceAttrs,
	"GetIdentitiesRequest target=ZID",
	"GetGrantsRequest account=ZID target=account:id",
	"GetShareInfoRequest account=ZID",
	"GetDataSourcesRequest account=ZID",
}

func same(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s:\n got:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestZimbraPlaybookCalls asserts the exact SOAP calls of each default
// playbook against a server that answers as the documented API does.
func TestZimbraPlaybookCalls(t *testing.T) {
	ctx := api.WithActor(context.Background(), api.Actor{Name: "cli:root(0)"})
	auth := "AuthRequest account=admin@example.test password=(set)"
	t.Run("password-leak runs at once", func(t *testing.T) {
		s, z := zimbraResponse(t)
		if err := s.ReportFindings(ctx, "u@example.edu", []ops.Finding{{Reason: "password-leak", Detail: "candidate 1"}}); err != nil {
			t.Fatal(err)
		}
		s.WaitPlaybooks(ctx)
		same(t, "calls", calls(z), append([]string{auth}, afterConfirm...))
		in, err := s.Response.Incidents.ActiveIncident(ctx, "u@example.edu")
		if err != nil || in.State != store.IncidentContained {
			t.Fatalf("incident: %v %+v", err, in)
		}
		if strings.Join(z.Attr("u@example.edu", "zimbraAccountStatus"), ",") != "locked" || strings.Join(z.Attr("u@example.edu", "zimbraPasswordMustChange"), ",") != "TRUE" {
			t.Fatal("account not locked or must-change not set")
		}
		if p := in.Step("check-persistence"); p == nil || !strings.Contains(p.Detail, "FORWARDING to drop@attacker.example") {
			t.Fatalf("persistence: %+v", p)
		}
		if es := in.Step("end-sessions"); es == nil || es.Detail != "zimbra: web and SOAP tokens revoked (validity 5→6); account locked: "+
			"IMAP/POP sessions end at their next command; caches flushed by id on mbox1.example.test (ok)" {
			t.Fatalf("end-sessions: %+v", es)
		}
		if z.CheckPassword("u@example.edu", "") {
			t.Fatal("password not scrambled")
		}
	})
	t.Run("mass sending restricts, the rest waits for confirmation", func(t *testing.T) {
		s, z := zimbraResponse(t)
		if err := s.ReportFindings(ctx, "u@example.edu", []ops.Finding{{Reason: "bulk-from-scripted-client"}}); err != nil {
			t.Fatal(err)
		}
		s.WaitPlaybooks(ctx)
		same(t, "calls before confirmation", calls(z), nil)
		in, _ := s.Response.Incidents.ActiveIncident(ctx, "u@example.edu")
		if in.State != store.IncidentOpen || s.States.AccountState("u@example.edu") != store.AccountRestricted {
			t.Fatalf("incident %s, account %s", in.State, s.States.AccountState("u@example.edu"))
		}
		if _, err := s.ChangeIncident(ctx, api.ChangeIncidentRequest{ID: in.ID, Change: api.IncidentConfirm, Note: "spam run"}); err != nil {
			t.Fatal(err)
		}
		s.WaitPlaybooks(ctx)
		same(t, "calls after confirmation", calls(z), append([]string{auth}, afterConfirm...))
	})
	t.Run("phish reply: nothing on Zimbra until confirmed; token expiry re-authenticates", func(t *testing.T) {
		s, z := zimbraResponse(t)
		if err := s.ReportFindings(ctx, "u@example.edu", []ops.Finding{{Reason: "reply-to-phisher"}}); err != nil {
			t.Fatal(err)
		}
		s.WaitPlaybooks(ctx)
		same(t, "calls before confirmation", calls(z), nil)
		in, _ := s.Response.Incidents.ActiveIncident(ctx, "u@example.edu")
		if in.Playbook != "phish-reply" || in.Step("lock-login").Status != store.StepPending {
			t.Fatalf("incident %+v", in)
		}
		// The client authenticated before; its token has expired since.
		s.Response.Runner.Connectors[1].Do(ctx, "check-persistence", in, nil)
		z.ResetCalls()
		z.ExpireTokens()
		if _, err := s.ChangeIncident(ctx, api.ChangeIncidentRequest{ID: in.ID, Change: api.IncidentConfirm, Note: "user confirmed replying"}); err != nil {
			t.Fatal(err)
		}
		s.WaitPlaybooks(ctx)
		got := calls(z)
		want := append([]string{"GetAccountRequest account=u@example.edu attrs=zimbraId fault=service.AUTH_EXPIRED", auth}, afterConfirm...)
		same(t, "calls after confirmation", got, want)
	})
	t.Run("a delegated admin's SetPassword: a password the policy accepts, or none", func(t *testing.T) {
		// Without setAccountPassword Zimbra enforces the policy
		// (SetPassword.checkAccountRights, SetPassword.java lines 120–141
		// at zm-mailbox 2b7f9787c69e); the same password would be refused
		// again. mailbrake generates one the account's policy accepts.
		s, z := zimbraResponseWith(t, zimbratest.Options{MissingRights: []string{zimbratest.RightSetAccountPassword}})
		z.SetCOS(map[string][]string{"zimbraPasswordMinLength": {"48"}, "zimbraPasswordMinPunctuationChars": {"4"}})
		if err := s.ReportFindings(ctx, "u@example.edu", []ops.Finding{{Reason: "password-leak"}}); err != nil {
			t.Fatal(err)
		}
		s.WaitPlaybooks(ctx)
		in, _ := s.Response.Incidents.ActiveIncident(ctx, "u@example.edu")
		if sc := in.Step("scramble-password"); sc.Status != store.StepDone || len(z.Attr("u@example.edu", "zimbraPasswordModifiedTime")) == 0 {
			t.Fatalf("scramble-password under a strict policy: %+v", sc)
		}
		// A policy no generated password can meet: the step fails without
		// a SetPassword, and is not retried with the same password.
		s, z = zimbraResponseWith(t, zimbratest.Options{MissingRights: []string{zimbratest.RightSetAccountPassword}})
		z.SetCOS(map[string][]string{"zimbraPasswordMinLength": {"100"}, "zimbraPasswordMaxLength": {"100"}})
		if err := s.ReportFindings(ctx, "u@example.edu", []ops.Finding{{Reason: "password-leak"}}); err != nil {
			t.Fatal(err)
		}
		s.WaitPlaybooks(ctx)
		in, _ = s.Response.Incidents.ActiveIncident(ctx, "u@example.edu")
		sc := in.Step("scramble-password")
		if sc.Status != store.StepFailed || !strings.Contains(sc.Detail, "no generated password satisfies") {
			t.Fatalf("scramble-password under an impossible policy: %+v", sc)
		}
		for _, c := range z.CallStrings() {
			if strings.HasPrefix(c, "SetPasswordRequest") {
				t.Fatalf("a password the policy refuses was sent: %v", z.CallStrings())
			}
		}
	})
	t.Run("a retried scramble demands a new password again", func(t *testing.T) {
		// SetPassword clears zimbraPasswordMustChange: after
		// force-password-change, a later scramble sets it again.
		s, z := zimbraResponse(t)
		in := &store.Incident{Account: "u@example.edu", Steps: []store.StepRecord{{Name: "force-password-change", Status: store.StepDone}}}
		zc := s.Response.Runner.Connectors[1].(response.Zimbra)
		if _, err := zc.Do(ctx, "force-password-change", in, nil); err != nil {
			t.Fatal(err)
		}
		detail, err := zc.Do(ctx, "scramble-password", in, []byte("Zz9-a-long-enough-password-for-any-policy"))
		if err != nil || !strings.Contains(detail, "zimbraPasswordMustChange=TRUE again") || strings.Join(z.Attr("u@example.edu", "zimbraPasswordMustChange"), "") != "TRUE" {
			t.Fatalf("%q %v; must change %v", detail, err, z.Attr("u@example.edu", "zimbraPasswordMustChange"))
		}
	})
	t.Run("end-sessions says which server's cache was not flushed", func(t *testing.T) {
		s, z := zimbraResponseWith(t, zimbratest.Options{Peers: []string{"mbox2.example.test"}})
		z.Peer("mbox2.example.test").Stop()
		if err := s.ReportFindings(ctx, "u@example.edu", []ops.Finding{{Reason: "password-leak"}}); err != nil {
			t.Fatal(err)
		}
		s.WaitPlaybooks(ctx)
		in, _ := s.Response.Incidents.ActiveIncident(ctx, "u@example.edu")
		es := in.Step("end-sessions")
		for _, want := range []string{"web and SOAP tokens revoked (validity 5→6); account locked: IMAP/POP sessions end at their next command; " +
			"caches flushed by id on mbox1.example.test (ok), mbox2.example.test (failed: ", "connection refused",
			"a server whose cache was not flushed acts on its copy of the account (old tokens, old status) for up to 15 minutes"} {
			if es.Status != store.StepDone || !strings.Contains(es.Detail, want) {
				t.Fatalf("end-sessions %+v lacks %q", es, want)
			}
		}
	})
	t.Run("ZimbraInvalidLoginFilter's 503 fails the steps at once", func(t *testing.T) {
		s, z := zimbraResponse(t)
		for range 11 { // more than zimbraInvalidLoginFilterMaxFailedLogin from this IP
			resp, err := z.Client().Post(z.URL(), "application/json",
				strings.NewReader(`{"Body":{"AuthRequest":{"_jsns":"urn:zimbraAdmin","name":"admin@example.test","password":"guess"}}}`))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		z.ResetCalls()
		if err := s.ReportFindings(ctx, "u@example.edu", []ops.Finding{{Reason: "password-leak"}}); err != nil {
			t.Fatal(err)
		}
		s.WaitPlaybooks(ctx)
		in, _ := s.Response.Incidents.ActiveIncident(ctx, "u@example.edu")
		lock := in.Step("lock-login")
		if lock.Status != store.StepFailed || lock.Attempts != 1 || !strings.Contains(lock.Detail, "ZimbraInvalidLoginFilter") {
			t.Fatalf("lock-login: %+v", lock)
		}
		// One request reached Zimbra; the later steps held back.
		same(t, "calls", calls(z), []string{"AuthRequest http=503"})
	})
	t.Run("no such account fails the steps at once", func(t *testing.T) {
		s, z := zimbraResponse(t)
		if err := s.ReportFindings(ctx, "ghost@example.edu", []ops.Finding{{Reason: "password-leak"}}); err != nil {
			t.Fatal(err)
		}
		s.WaitPlaybooks(ctx)
		in, _ := s.Response.Incidents.ActiveIncident(ctx, "ghost@example.edu")
		lock := in.Step("lock-login")
		if lock.Status != store.StepFailed || !strings.Contains(lock.Detail, "NO_SUCH_ACCOUNT") || lock.Attempts != 1 {
			t.Fatalf("lock-login on a missing account: %+v", lock)
		}
		if in.State != store.IncidentOpen {
			t.Fatalf("incident with failed steps is %s", in.State)
		}
		_ = z
	})
}

// TestZimbraPasswordPolicy: the Zimbra connector reports the account's
// effective policy, from which zimbra.GeneratePassword makes a password a
// delegated admin's SetPassword (policy enforced) accepts.
func TestZimbraPasswordPolicy(t *testing.T) {
	s, z := zimbraResponseWith(t, zimbratest.Options{MissingRights: []string{zimbratest.RightSetAccountPassword}})
	z.SetCOS(map[string][]string{"zimbraPasswordMinLength": {"40"}, "zimbraPasswordMinPunctuationChars": {"3"}})
	zc, ok := s.Response.Runner.Connectors[1].(response.Zimbra)
	if !ok {
		t.Fatalf("connector 1 is %T", s.Response.Runner.Connectors[1])
	}
	p, err := zc.PasswordPolicy(context.Background(), "u@example.edu")
	if err != nil || p.MinLength != 40 || p.MinPunctuation != 3 {
		t.Fatalf("%+v %v", p, err)
	}
	pw, err := zimbra.GeneratePassword([]zimbra.PasswordPolicy{p}, 128)
	if err != nil {
		t.Fatal(err)
	}
	if detail, err := zc.Do(context.Background(), "scramble-password", &store.Incident{Account: "u@example.edu"}, pw); err != nil || detail != "password set" {
		t.Fatalf("%q %v", detail, err)
	}
}
