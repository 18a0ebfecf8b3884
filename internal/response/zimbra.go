package response

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mailbrake/mailbrake/internal/connector/zimbra"
	"github.com/mailbrake/mailbrake/internal/playbook"
	"github.com/mailbrake/mailbrake/internal/store"
)

// Zimbra carries out steps through the Zimbra SOAP admin API.
type Zimbra struct{ c *zimbra.Client }

// NewZimbra returns the Zimbra connector.
func NewZimbra(c *zimbra.Client) Zimbra { return Zimbra{c} }

func (Zimbra) Name() string { return "zimbra" }

func (Zimbra) Supports(s playbook.Step) bool {
	switch s {
	case playbook.StepLockLogin, playbook.StepScramblePassword, playbook.StepEndSessions, playbook.StepForcePasswordChange, playbook.StepCheckPersistence:
		return true
	}
	return false
}

func (z Zimbra) Do(ctx context.Context, s playbook.Step, inc *store.Incident, pw []byte) (string, error) {
	perm := func(err error) error {
		// ErrPasswordRejected: the policy refused this password; the
		// same password would be refused again. ErrLoginSuspended:
		// Zimbra refuses this IP for up to 20 minutes, longer than the
		// runner's retries.
		return permanent(err, zimbra.ErrNoSuchAccount, zimbra.ErrAuthFailed, zimbra.ErrPermDenied, zimbra.ErrPasswordRejected,
			zimbra.ErrLoginSuspended)
	}
	switch s {
	case playbook.StepLockLogin:
		return "zimbraAccountStatus=locked", perm(z.c.Lock(ctx, inc.Account))
	case playbook.StepScramblePassword:
		warn, err := z.c.SetPassword(ctx, inc.Account, pw)
		if err != nil {
			return "", perm(err)
		}
		detail := "password set"
		if warn != "" {
			detail += " (policy warning: " + warn + ")"
		}
		// SetPassword clears zimbraPasswordMustChange (zm-mailbox
		// LdapProvisioning.setPassword, commit 2b7f9787c69e): when this
		// incident already demanded a new password (a retried scramble),
		// demand it again.
		if st := inc.Step(string(playbook.StepForcePasswordChange)); st != nil && st.Status == store.StepDone {
			if err := z.c.SetMustChangePassword(ctx, inc.Account, true); err != nil {
				return "", fmt.Errorf("password set, but setting zimbraPasswordMustChange again failed: %w", err)
			}
			detail += ", zimbraPasswordMustChange=TRUE again"
		}
		return detail, nil
	case playbook.StepEndSessions:
		r, err := z.c.EndSessions(ctx, inc.Account)
		if err != nil {
			return "", perm(err)
		}
		return r.String(), nil
	case playbook.StepForcePasswordChange:
		return "zimbraPasswordMustChange=TRUE", perm(z.c.SetMustChangePassword(ctx, inc.Account, true))
	case playbook.StepCheckPersistence:
		p, err := z.c.Persistence(ctx, inc.Account)
		if err != nil {
			return "", perm(err)
		}
		return describePersistence(p), nil
	}
	return "", fmt.Errorf("%w: zimbra does not carry out %s", playbook.ErrPermanent, s)
}

func (z Zimbra) PasswordChangedAt(ctx context.Context, account string) (time.Time, error) {
	a, err := z.c.GetAccount(ctx, account, zimbra.AttrPasswordModifiedTime)
	if err != nil {
		return time.Time{}, err
	}
	return a.PasswordModifiedTime()
}

func (z Zimbra) Unlock(ctx context.Context, account string) error {
	return z.c.Unlock(ctx, account)
}

// PasswordPolicy returns the account's password policy on this system, for the runner to generate one password that satisfies every system.
func (z Zimbra) PasswordPolicy(ctx context.Context, account string) (zimbra.PasswordPolicy, error) {
	return z.c.PasswordPolicy(ctx, account)
}

// CheckPassword implements playbook.PasswordChecker: the scrambled password
// must satisfy the account's effective policy, which Zimbra enforces for a
// delegated admin and does not let the same password be retried. When the
// policy cannot be read, the password is left to SetPassword to judge.
func (z Zimbra) CheckPassword(ctx context.Context, account string, pw []byte) error {
	p, err := z.c.PasswordPolicy(ctx, account)
	if err != nil {
		return nil
	}
	return p.Check(pw)
}

// describePersistence summarises what an attacker may have left behind. An
// attribute the admin may not read is "unknown (no right)", never absent:
// Zimbra lists such an attribute, without its value, only when it is set.
func describePersistence(p *zimbra.Persistence) string {
	var parts []string
	noRight := func(what string) string { return what + " unknown (no right)" }

	// Forwarding, by the user and by admins.
	fw := append(append([]string(nil), p.ForwardingAddresses...), p.AdminForwardingAddresses...)
	if len(fw) > 0 {
		s := "FORWARDING to " + strings.Join(fw, ", ")
		switch {
		case p.LocalDeliveryDisabled:
			s += " (no local copy kept)"
		case p.Denied(zimbra.AttrPrefMailLocalDeliveryDisabled):
			s += " (local copy unknown: no right)"
		}
		parts = append(parts, s)
	}
	switch {
	case p.Denied(zimbra.AttrPrefMailForwardingAddress) && p.Denied(zimbra.AttrMailForwardingAddress):
		parts = append(parts, noRight("forwarding"))
	case p.Denied(zimbra.AttrPrefMailForwardingAddress):
		parts = append(parts, noRight("user forwarding"))
	case p.Denied(zimbra.AttrMailForwardingAddress):
		parts = append(parts, noRight("admin forwarding"))
	case len(fw) == 0:
		parts = append(parts, "no forwarding")
	}
	if p.ForwardingUnderVerification != "" {
		parts = append(parts, "FORWARDING pending verification to "+p.ForwardingUnderVerification)
	} else if p.Denied(zimbra.AttrFeatureAddressUnderVerification) {
		parts = append(parts, noRight("forwarding pending verification"))
	}

	// Filters, described by size and hash, never by content.
	for _, sc := range []struct {
		name, attr string
		s          zimbra.Script
	}{{"incoming filters", zimbra.AttrMailSieveScript, p.SieveScript}, {"outgoing filters", zimbra.AttrMailOutgoingSieveScript, p.OutgoingSieveScript}} {
		switch {
		case p.Denied(sc.attr):
			parts = append(parts, noRight(sc.name))
		case sc.s.Present:
			parts = append(parts, fmt.Sprintf("%s: %d bytes (sha256 %.12s)", sc.name, sc.s.Size, sc.s.SHA256))
		}
	}

	// Identities: a From of the account's own (its name, an alias, its
	// canonical address) is no finding, as the DEFAULT identity's is.
	for _, id := range p.Identities {
		if id.ReplyToEnabled && id.ReplyToAddress != "" {
			parts = append(parts, fmt.Sprintf("identity %q replies to %s", id.Name, id.ReplyToAddress))
		}
		if id.FromAddress != "" && !p.OwnAddress(id.FromAddress) {
			parts = append(parts, fmt.Sprintf("identity %q sends as %s", id.Name, id.FromAddress))
		}
	}
	for _, attr := range []string{zimbra.AttrPrefFromAddress, zimbra.AttrPrefReplyToAddress, zimbra.AttrPrefReplyToEnabled} {
		if p.Denied(attr) {
			parts = append(parts, noRight("DEFAULT identity's "+attr))
		}
	}
	if p.IdentitiesError != "" {
		parts = append(parts, "identities not read: "+p.IdentitiesError)
	}

	// The password recovery address, which an attacker can set and mark
	// verified to reset the password later.
	switch {
	case p.Denied(zimbra.AttrPrefPasswordRecoveryAddress):
		parts = append(parts, noRight("password recovery address"))
	case p.RecoveryAddress != "":
		s := "RECOVERY ADDRESS " + p.RecoveryAddress
		if p.RecoveryAddressStatus != "" {
			s += " (" + p.RecoveryAddressStatus + ")"
		}
		parts = append(parts, s)
	}

	// Two-factor authentication and what bypasses it.
	tf := p.TwoFactor
	if tf.Enabled == "TRUE" {
		parts = append(parts, "two-factor authentication on")
	}
	for _, c := range []struct {
		n          int
		attr, what string
	}{{tf.AppSpecificPasswords, zimbra.AttrAppSpecificPassword, "app-specific passwords"}, {tf.TrustedDevices, zimbra.AttrTwoFactorAuthTrustedDevices, "trusted devices"}} {
		switch {
		case p.Denied(c.attr):
			parts = append(parts, noRight(c.what))
		case c.n == 1: // Zimbra sends one VALUE-BLOCKED for any number
			parts = append(parts, c.what+": at least one (Zimbra does not say how many)")
		case c.n > 1:
			parts = append(parts, fmt.Sprintf("%s: %d", c.what, c.n))
		}
	}
	for _, attr := range []string{zimbra.AttrTwoFactorAuthEnabled, zimbra.AttrFeatureTwoFactorAuthRequired, zimbra.AttrFeatureAppSpecificPasswordsEnabled} {
		if p.Denied(attr) {
			parts = append(parts, noRight(attr))
		}
	}

	// Rights granted on the account, shared folders, external sources.
	if len(p.Grants) > 0 {
		g := make([]string, len(p.Grants))
		for i, gr := range p.Grants {
			g[i] = gr.Right + " to " + gr.GranteeType + " " + gr.GranteeName
			if gr.Deny {
				g[i] = "denied " + g[i]
			}
		}
		parts = append(parts, "GRANTS on the account: "+strings.Join(g, ", "))
	}
	if p.GrantsError != "" {
		parts = append(parts, "grants not read: "+p.GrantsError)
	}
	if len(p.Shares) > 0 {
		sh := make([]string, len(p.Shares))
		for i, s := range p.Shares {
			sh[i] = fmt.Sprintf("%s (%s) to %s %s", s.FolderPath, s.Rights, s.GranteeType, s.GranteeName)
		}
		parts = append(parts, "SHARES: "+strings.Join(sh, ", "))
	}
	if p.SharesError != "" {
		parts = append(parts, "shares not read: "+p.SharesError)
	}
	if len(p.DataSources) > 0 {
		ds := make([]string, len(p.DataSources))
		for i, d := range p.DataSources {
			ds[i] = fmt.Sprintf("%s %q", d.Type, d.Name)
			if d.Host != "" {
				ds[i] += " from " + d.Host
			}
		}
		parts = append(parts, "DATA SOURCES: "+strings.Join(ds, ", "))
	}
	if p.DataSourcesError != "" {
		parts = append(parts, "data sources not read: "+p.DataSourcesError)
	}
	return strings.Join(parts, "; ")
}

// Probe implements playbook.Prober.
func (z Zimbra) Probe(ctx context.Context) error { return z.c.Ping(ctx) }
