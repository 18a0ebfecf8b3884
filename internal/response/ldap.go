package response

import (
	"context"
	"fmt"
	"time"

	"github.com/mailbrake/mailbrake/internal/directory/ldapdir"
	"github.com/mailbrake/mailbrake/internal/playbook"
	"github.com/mailbrake/mailbrake/internal/store"
)

// LDAP carries out steps on an LDAP directory.
type LDAP struct{ c *ldapdir.Client }

// NewLDAP returns the LDAP connector.
func NewLDAP(c *ldapdir.Client) LDAP { return LDAP{c} }

func (LDAP) Name() string { return "ldap" }

func (LDAP) Supports(s playbook.Step) bool {
	return s == playbook.StepLockLogin || s == playbook.StepScramblePassword || s == playbook.StepForcePasswordChange
}

func (l LDAP) Do(ctx context.Context, s playbook.Step, inc *store.Incident, pw []byte) (string, error) {
	perm := func(err error) error {
		return permanent(err, ldapdir.ErrNoSuchAccount, ldapdir.ErrAmbiguousAccount, ldapdir.ErrPasswordModifyUnsupported)
	}
	switch s {
	case playbook.StepLockLogin:
		return "lock attribute set", perm(l.c.Lock(ctx, inc.Account))
	case playbook.StepScramblePassword:
		if err := l.c.SetPassword(ctx, inc.Account, pw); err != nil {
			return "", perm(err)
		}
		// ppolicy lifts pwdAccountLockedTime when an administrator sets a
		// password: lock again if this incident locked the login.
		if st := inc.Step(string(playbook.StepLockLogin)); st != nil && st.Status == store.StepDone {
			if err := l.c.Lock(ctx, inc.Account); err != nil {
				return "", fmt.Errorf("password set, but locking again failed: %w", err)
			}
			return "password set (Password Modify), lock kept", nil
		}
		return "password set (Password Modify)", nil
	case playbook.StepForcePasswordChange:
		return "pwdReset=TRUE", perm(l.c.MustChangePassword(ctx, inc.Account))
	}
	return "", fmt.Errorf("%w: ldap does not carry out %s", playbook.ErrPermanent, s)
}

func (l LDAP) PasswordChangedAt(ctx context.Context, account string) (time.Time, error) {
	return l.c.PasswordChangedAt(ctx, account)
}

func (l LDAP) Unlock(ctx context.Context, account string) error {
	return l.c.Unlock(ctx, account)
}

// Probe implements playbook.Prober.
func (l LDAP) Probe(ctx context.Context) error { return l.c.Ping(ctx) }
