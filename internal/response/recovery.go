package response

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/mailbrake/mailbrake/internal/connector/zimbra"
	"github.com/mailbrake/mailbrake/internal/directory/ldapdir"
)

// Recovery finds where the user of a compromised account is told about it:
// never the compromised mailbox itself. With an LDAP attribute configured
// (directory.ldap.recovery_address_attribute) it is that attribute; on
// Zimbra it is zimbraPrefPasswordRecoveryAddress, which the user sets with
// ModifyPrefs — and so can an attacker in the user's session (zm-mailbox
// zimbra-attrs.xml, commit 2b7f9787c69e) — so it is used only when its
// status is verified and it is what it was when the incident opened.
type Recovery struct {
	// LDAP returns the directory client (made on first use); nil: none.
	LDAP          func() (*ldapdir.Client, error)
	LDAPAttribute string
	Zimbra        *zimbra.Client // nil: not a Zimbra site
	Log           *slog.Logger

	snap sync.Map // account → its Zimbra recovery address when the incident opened
}

// Address returns the account's recovery address, "" when there is none
// that can be trusted.
func (r *Recovery) Address(ctx context.Context, account string) (string, error) {
	if r.LDAPAttribute != "" && r.LDAP != nil {
		c, err := r.LDAP()
		if err != nil {
			return "", err
		}
		vs, err := c.Attribute(ctx, account, r.LDAPAttribute)
		if err != nil {
			return "", err
		}
		for _, v := range vs {
			if v = strings.TrimSpace(v); v != "" && !strings.EqualFold(v, account) {
				return v, nil
			}
		}
		return "", nil
	}
	if r.Zimbra == nil {
		return "", nil
	}
	addr, status, known, err := r.Zimbra.RecoveryAddress(ctx, account)
	if err != nil {
		return "", err
	}
	addr = strings.TrimSpace(addr)
	if !known || addr == "" || strings.EqualFold(addr, account) {
		return "", nil
	}
	if !strings.EqualFold(status, "verified") {
		r.Log.Warn("user notification not sent: the recovery address is not verified", "account", account, "status", status)
		return "", nil
	}
	if before, ok := r.snap.Load(strings.ToLower(account)); ok && !strings.EqualFold(before.(string), addr) {
		r.Log.Warn("user notification not sent: the recovery address changed during the incident (an attacker may have set it)", "account", account)
		return "", nil
	}
	return addr, nil
}

// IncidentOpened remembers the account's Zimbra recovery address as its
// incident opens (ops.Service.IncidentOpened), before any step runs.
func (r *Recovery) IncidentOpened(ctx context.Context, account string) {
	if r.Zimbra == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addr, _, known, err := r.Zimbra.RecoveryAddress(ctx, account)
	if err != nil {
		r.Log.Warn("reading the recovery address at the incident's start failed", "account", account, "err", err)
		return
	}
	if known {
		r.snap.Store(strings.ToLower(account), strings.TrimSpace(addr))
	}
}
