package response

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/connector/zimbra"
	"github.com/mailbrake/mailbrake/internal/connector/zimbra/zimbratest"
)

// TestRecoveryAddressTrusted: the user mail goes to the Zimbra recovery
// address only when it is verified and was not changed since the incident
// opened — an attacker in the user's session can set both the address and
// its status (ModifyPrefs; zm-mailbox zimbra-attrs.xml, commit
// 2b7f9787c69ed6b95ce37a415ba27c50f1091c72). The compromised mailbox itself
// is never used.
func TestRecoveryAddressTrusted(t *testing.T) {
	z := zimbratest.Start(t, zimbratest.Options{})
	const acct = "u@example.edu"
	z.AddAccount(acct, map[string][]string{"zimbraAccountStatus": {"active"}})
	c, err := zimbra.New(zimbra.Config{URL: z.URL(), AdminUser: z.AdminUser(), AdminPasswordFile: z.AdminPasswordFile(t), CAFile: z.CAFile(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := &Recovery{Zimbra: c, Log: slog.New(slog.DiscardHandler)}
	ctx := context.Background()
	z.SetPref(acct, "zimbraPrefPasswordRecoveryAddress", "owner@home.example")
	z.SetPref(acct, "zimbraPrefPasswordRecoveryAddressStatus", "pending")
	r.IncidentOpened(ctx, acct)
	if got, err := r.Address(ctx, acct); err != nil || got != "" {
		t.Fatalf("unverified address used: %q %v", got, err)
	}
	z.SetPref(acct, "zimbraPrefPasswordRecoveryAddressStatus", "verified")
	if got, err := r.Address(ctx, acct); err != nil || got != "owner@home.example" {
		t.Fatalf("verified, unchanged: %q %v", got, err)
	}
	// The attacker replaces it during the incident and marks it verified.
	z.SetPref(acct, "zimbraPrefPasswordRecoveryAddress", "drop@attacker.example")
	if got, err := r.Address(ctx, acct); err != nil || got != "" {
		t.Fatalf("address changed during the incident used: %q %v", got, err)
	}
	// The account's own mailbox is never its recovery address.
	z.SetPref(acct, "zimbraPrefPasswordRecoveryAddress", "U@example.edu")
	r2 := &Recovery{Zimbra: c, Log: slog.New(slog.DiscardHandler)}
	if got, err := r2.Address(ctx, acct); err != nil || got != "" {
		t.Fatalf("the compromised mailbox used: %q %v", got, err)
	}
	if got, err := (&Recovery{Log: slog.New(slog.DiscardHandler)}).Address(ctx, acct); err != nil || got != "" {
		t.Fatalf("no source: %q %v", got, err)
	}
}
