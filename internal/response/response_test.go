package response

import (
	"strings"
	"testing"

	"github.com/mailbrake/mailbrake/internal/connector/zimbra"
	"github.com/mailbrake/mailbrake/internal/pwhash"
)

// TestDescribePersistence: what check-persistence records for each kind
// of persistence, with an attribute the admin may not read reported as
// unknown, never as absent, and no false alarm for identities sending as
// the account's own addresses.
func TestDescribePersistence(t *testing.T) {
	base := func() *zimbra.Persistence {
		return &zimbra.Persistence{Account: "u@example.edu", Aliases: []string{"alias@example.edu"},
			Identities: []zimbra.Identity{{Name: "DEFAULT", FromAddress: "u@example.edu"}}}
	}
	for _, tc := range []struct {
		name      string
		edit      func(*zimbra.Persistence)
		want, not []string
	}{
		{"nothing", func(*zimbra.Persistence) {}, []string{"no forwarding"}, []string{"sends as", "unknown"}},
		{"forwarding denied is unknown, not absent", func(p *zimbra.Persistence) { p.DeniedAttrs = []string{zimbra.AttrPrefMailForwardingAddress} },
			[]string{"user forwarding unknown (no right)"}, []string{"no forwarding"}},
		{"admin forwarding readable, user forwarding denied", func(p *zimbra.Persistence) {
			p.AdminForwardingAddresses = []string{"archive@example.edu"}
			p.DeniedAttrs = []string{zimbra.AttrPrefMailForwardingAddress}
		}, []string{"FORWARDING to archive@example.edu", "user forwarding unknown (no right)"}, []string{"no forwarding"}},
		{"DEFAULT sends as an alias: no alarm", func(p *zimbra.Persistence) { p.Identities[0].FromAddress = "Alias@Example.edu" }, nil, []string{"sends as"}},
		{"an identity sends as a stranger", func(p *zimbra.Persistence) {
			p.Identities = append(p.Identities, zimbra.Identity{Name: "Pay", FromAddress: "ceo@example.edu", ReplyToEnabled: true, ReplyToAddress: "x@attacker.example"})
		}, []string{`identity "Pay" sends as ceo@example.edu`, `identity "Pay" replies to x@attacker.example`}, nil},
		{"filters denied", func(p *zimbra.Persistence) { p.DeniedAttrs = []string{zimbra.AttrMailSieveScript} }, []string{"incoming filters unknown (no right)"}, nil},
		{"recovery address", func(p *zimbra.Persistence) {
			p.RecoveryAddress, p.RecoveryAddressStatus = "r@attacker.example", "verified"
		},
			[]string{"RECOVERY ADDRESS r@attacker.example (verified)"}, nil},
		{"recovery address denied", func(p *zimbra.Persistence) { p.DeniedAttrs = []string{zimbra.AttrPrefPasswordRecoveryAddress} },
			[]string{"password recovery address unknown (no right)"}, nil},
		{"two-factor", func(p *zimbra.Persistence) {
			p.TwoFactor = zimbra.TwoFactor{Enabled: "TRUE", AppSpecificPasswords: 1}
		}, []string{"two-factor authentication on", "app-specific passwords: at least one (Zimbra does not say how many)"}, nil},
		{"grants, shares, data sources", func(p *zimbra.Persistence) {
			p.Grants = []zimbra.Grant{{GranteeType: "usr", GranteeName: "m@example.edu", Right: "sendAs"}}
			p.Shares = []zimbra.Share{{FolderPath: "/Inbox", Rights: "r", GranteeType: "pub"}}
			p.DataSources = []zimbra.DataSource{{Name: "Ex", Type: "imap", Host: "imap.attacker.example"}}
		}, []string{"GRANTS on the account: sendAs to usr m@example.edu", "SHARES: /Inbox (r) to pub ", `DATA SOURCES: imap "Ex" from imap.attacker.example`}, nil},
		{"sub-checks that failed", func(p *zimbra.Persistence) {
			p.SharesError, p.DataSourcesError, p.GrantsError = "PERM_DENIED a", "PERM_DENIED b", "PERM_DENIED c"
		}, []string{"shares not read: PERM_DENIED a", "data sources not read: PERM_DENIED b", "grants not read: PERM_DENIED c"}, nil},
	} {
		p := base()
		tc.edit(p)
		got := describePersistence(p)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", tc.name, got, w)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(got, n) {
				t.Errorf("%s: %q has %q", tc.name, got, n)
			}
		}
	}
}

func TestHashPassword(t *testing.T) {
	for _, scheme := range []string{"SHA512-CRYPT", "BLF-CRYPT"} {
		stored, err := hashPassword(scheme, []byte("N3w-Passw0rd"))
		if err != nil {
			t.Fatal(err)
		}
		h, err := pwhash.Parse(stored)
		if err != nil {
			t.Fatalf("%s: %v", scheme, err)
		}
		if !strings.HasPrefix(stored, "{"+scheme+"}") || !h.Verify([]byte("N3w-Passw0rd")) || h.Verify([]byte("N3w-Passw0rX")) {
			t.Fatalf("%s: %s does not verify", scheme, h)
		}
	}
}
