package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-crypt/crypt/algorithm"
	"github.com/go-crypt/crypt/algorithm/bcrypt"
	"github.com/go-crypt/crypt/algorithm/shacrypt"

	"github.com/mailbrake/mailbrake/internal/connector/dovecot"
	"github.com/mailbrake/mailbrake/internal/connector/exec"
	"github.com/mailbrake/mailbrake/internal/connector/zimbra"
	"github.com/mailbrake/mailbrake/internal/directory/ldapdir"
	"github.com/mailbrake/mailbrake/internal/directory/passwdfile"
	"github.com/mailbrake/mailbrake/internal/ops"
	"github.com/mailbrake/mailbrake/internal/playbook"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/store/sqlite"
)

// buildResponse builds account response from the configuration: the
// playbooks, mailbrake's own connector and every configured system's.
func (d *Daemon) buildResponse(ctx context.Context, st *sqlite.Store) (*ops.Response, error) {
	cfg := d.cfg
	r := &ops.Response{Incidents: st, MinLock: cfg.Response.MinLock.D()}
	for _, pc := range cfg.Playbooks {
		pb := &playbook.Playbook{Name: pc.Name, Triggers: pc.Triggers, Severity: store.Severity(pc.Severity)}
		pb.ConfirmFrom = len(pc.Steps)
		for i, s := range pc.Steps {
			pb.Steps = append(pb.Steps, playbook.Step(s))
			if s == pc.ConfirmFrom {
				pb.ConfirmFrom = i
			}
		}
		r.Playbooks = append(r.Playbooks, pb)
	}
	conns := []playbook.Connector{d.ops.Connector()}
	if z := cfg.Response.Zimbra; z.URL != "" {
		c, err := zimbra.New(zimbra.Config{URL: z.URL, AdminUser: z.AdminUser, AdminPasswordFile: z.AdminPasswordFile, CAFile: z.CAFile,
			InsecureSkipVerify: z.InsecureSkipVerify, Timeout: z.Timeout.D(), Logger: d.log})
		if err != nil {
			return nil, fmt.Errorf("response.zimbra: %w", err)
		}
		d.zimbra = c
		zc := zimbraConnector{c}
		conns = append(conns, zc)
		r.Checkers = append(r.Checkers, zc)
		r.Unlockers = append(r.Unlockers, zc)
	}
	if l := cfg.Directory.LDAP; l.URL != "" && cfg.Response.UseLDAP {
		c, err := d.ldapClient()
		if err != nil {
			return nil, err
		}
		lc := ldapConnector{c}
		conns = append(conns, lc)
		r.Checkers = append(r.Checkers, lc)
		r.Unlockers = append(r.Unlockers, lc)
	}
	var pfw *passwdfile.Writer
	if pf := cfg.Directory.PasswdFile; pf.Path != "" && cfg.Response.UsePasswdFile {
		pfw = &passwdfile.Writer{Path: pf.Path}
		pc := passwdFileConnector{w: pfw, scheme: pf.Scheme}
		conns = append(conns, pc)
		r.Unlockers = append(r.Unlockers, pc)
	}
	if dv := cfg.Response.Dovecot; dv.URL != "" {
		c, err := dovecot.New(dovecot.Config{URL: dv.URL, APIKeyFile: dv.APIKeyFile, Timeout: dv.Timeout.D()})
		if err != nil {
			return nil, fmt.Errorf("response.dovecot: %w", err)
		}
		conns = append(conns, dovecotConnector{c: c, pf: pfw})
	}
	if e := cfg.Response.Exec; len(e.Command) > 0 {
		c := &exec.Connector{Command: e.Command, Timeout: e.Timeout.D()}
		for _, s := range e.Steps {
			c.Steps = append(c.Steps, playbook.Step(s))
		}
		conns = append(conns, c)
	}
	nt, err := d.buildNotifier()
	if err != nil {
		return nil, err
	}
	if nt != nil {
		conns = append(conns, notifyConnector{nt})
	}
	conns = append(conns, d.extraConnectors...)
	r.Runner = &playbook.Runner{Incidents: st, Connectors: conns, Attempts: cfg.Response.Attempts, Backoff: cfg.Response.Backoff.D(),
		DryRun: cfg.Response.DryRun, Log: d.log}
	names := make([]string, len(conns))
	for i, c := range conns {
		names[i] = c.Name()
	}
	d.log.Info("account response ready", "playbooks", len(r.Playbooks), "connectors", strings.Join(names, ","), "dry_run", cfg.Response.DryRun)
	return r, nil
}

// ldapClient returns the directory's LDAP client (one per daemon).
func (d *Daemon) ldapClient() (*ldapdir.Client, error) {
	if d.ldap != nil {
		return d.ldap, nil
	}
	l := d.cfg.Directory.LDAP
	c, err := ldapdir.New(ldapdir.Config{URL: l.URL, BindDN: l.BindDN, BindPasswordFile: l.BindPasswordFile, BaseDN: l.BaseDN, Filter: l.Filter,
		PasswordAttr: l.PasswordAttribute, StartTLS: l.StartTLS, CAFile: l.CAFile, InsecureSkipVerify: l.InsecureSkipVerify, Timeout: l.Timeout.D(),
		LockAttr: l.LockAttribute, LockValue: l.LockValue, UnlockValue: l.UnlockValue, PasswordChangedAttr: l.PasswordChangedAt})
	if err != nil {
		return nil, fmt.Errorf("directory.ldap: %w", err)
	}
	d.ldap = c
	return c, nil
}

// permanent marks errors that retrying cannot fix.
func permanent(err error, perm ...error) error {
	for _, p := range perm {
		if errors.Is(err, p) {
			return errors.Join(playbook.ErrPermanent, err)
		}
	}
	return err
}

// zimbraConnector carries out steps through the Zimbra SOAP admin API.
type zimbraConnector struct{ c *zimbra.Client }

func (zimbraConnector) Name() string { return "zimbra" }

func (zimbraConnector) Supports(s playbook.Step) bool {
	switch s {
	case playbook.StepLockLogin, playbook.StepScramblePassword, playbook.StepEndSessions, playbook.StepForcePasswordChange, playbook.StepCheckPersistence:
		return true
	}
	return false
}

func (z zimbraConnector) Do(ctx context.Context, s playbook.Step, inc *store.Incident, pw []byte) (string, error) {
	perm := func(err error) error {
		// ErrPasswordRejected: the policy refused this password; the
		// same password would be refused again.
		return permanent(err, zimbra.ErrNoSuchAccount, zimbra.ErrAuthFailed, zimbra.ErrPermDenied, zimbra.ErrPasswordRejected)
	}
	switch s {
	case playbook.StepLockLogin:
		return "zimbraAccountStatus=locked", perm(z.c.Lock(ctx, inc.Account))
	case playbook.StepScramblePassword:
		warn, err := z.c.SetPassword(ctx, inc.Account, pw)
		if err != nil {
			return "", perm(err)
		}
		if warn != "" {
			return "password set (policy warning: " + warn + ")", nil
		}
		return "password set", nil
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

func (z zimbraConnector) PasswordChangedAt(ctx context.Context, account string) (time.Time, error) {
	a, err := z.c.GetAccount(ctx, account, zimbra.AttrPasswordModifiedTime)
	if err != nil {
		return time.Time{}, err
	}
	return a.PasswordModifiedTime()
}

func (z zimbraConnector) Unlock(ctx context.Context, account string) error {
	return z.c.Unlock(ctx, account)
}

// PasswordPolicy returns the account's password policy on this system, for the runner to generate one password that satisfies every system.
func (z zimbraConnector) PasswordPolicy(ctx context.Context, account string) (zimbra.PasswordPolicy, error) {
	return z.c.PasswordPolicy(ctx, account)
}

// describePersistence summarises what an attacker may have left behind.
func describePersistence(p *zimbra.Persistence) string {
	var parts []string
	if fw := append(append([]string(nil), p.ForwardingAddresses...), p.AdminForwardingAddresses...); len(fw) > 0 {
		s := "FORWARDING to " + strings.Join(fw, ", ")
		if p.LocalDeliveryDisabled {
			s += " (no local copy kept)"
		}
		parts = append(parts, s)
	} else {
		parts = append(parts, "no forwarding")
	}
	for _, sc := range []struct {
		name string
		s    zimbra.Script
	}{{"incoming filters", p.SieveScript}, {"outgoing filters", p.OutgoingSieveScript}} {
		if sc.s.Present {
			parts = append(parts, fmt.Sprintf("%s: %d bytes (sha256 %.12s)", sc.name, sc.s.Size, sc.s.SHA256))
		}
	}
	for _, id := range p.Identities {
		if id.ReplyToEnabled && id.ReplyToAddress != "" {
			parts = append(parts, fmt.Sprintf("identity %q replies to %s", id.Name, id.ReplyToAddress))
		}
		if id.FromAddress != "" && !strings.EqualFold(id.FromAddress, p.Account) {
			parts = append(parts, fmt.Sprintf("identity %q sends as %s", id.Name, id.FromAddress))
		}
	}
	if p.IdentitiesError != "" {
		parts = append(parts, "identities not read: "+p.IdentitiesError)
	}
	return strings.Join(parts, "; ")
}

// ldapConnector carries out steps on an LDAP directory.
type ldapConnector struct{ c *ldapdir.Client }

func (ldapConnector) Name() string { return "ldap" }

func (ldapConnector) Supports(s playbook.Step) bool {
	return s == playbook.StepLockLogin || s == playbook.StepScramblePassword || s == playbook.StepForcePasswordChange
}

func (l ldapConnector) Do(ctx context.Context, s playbook.Step, inc *store.Incident, pw []byte) (string, error) {
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

func (l ldapConnector) PasswordChangedAt(ctx context.Context, account string) (time.Time, error) {
	return l.c.PasswordChangedAt(ctx, account)
}

func (l ldapConnector) Unlock(ctx context.Context, account string) error {
	return l.c.Unlock(ctx, account)
}

// passwdFileConnector locks and scrambles accounts in a Dovecot
// passwd-file (Dovecot re-reads it when it changes; end-sessions through
// the doveadm API flushes its auth cache).
type passwdFileConnector struct {
	w      *passwdfile.Writer
	scheme string // SHA512-CRYPT or BLF-CRYPT
}

func (passwdFileConnector) Name() string { return "passwd_file" }

func (passwdFileConnector) Supports(s playbook.Step) bool {
	return s == playbook.StepLockLogin || s == playbook.StepScramblePassword
}

func (p passwdFileConnector) Do(_ context.Context, s playbook.Step, inc *store.Incident, pw []byte) (string, error) {
	perm := func(err error) error { return permanent(err, passwdfile.ErrNoSuchAccount) }
	switch s {
	case playbook.StepLockLogin:
		return passwdfile.LockField + "=y set", perm(p.w.Lock(inc.Account))
	case playbook.StepScramblePassword:
		stored, err := hashPassword(p.scheme, pw)
		if err != nil {
			return "", errors.Join(playbook.ErrPermanent, err)
		}
		return "password set ({" + p.scheme + "})", perm(p.w.SetPassword(inc.Account, stored))
	}
	return "", fmt.Errorf("%w: passwd_file does not carry out %s", playbook.ErrPermanent, s)
}

func (p passwdFileConnector) Unlock(_ context.Context, account string) error {
	if err := p.w.Unlock(account); err != nil {
		return err
	}
	p.w.Wait()
	return nil
}

// hashPassword hashes a new password for a passwd-file, in the scheme
// Dovecot names it by.
func hashPassword(scheme string, pw []byte) (string, error) {
	var (
		d   algorithm.Digest
		err error
	)
	switch scheme {
	case "BLF-CRYPT":
		var h *bcrypt.Hasher
		if h, err = bcrypt.New(bcrypt.WithCost(10)); err == nil {
			d, err = h.Hash(string(pw))
		}
	default:
		var h *shacrypt.Hasher
		// 5,000 rounds: glibc's and Dovecot's default. The password is
		// random (192 bits), so more rounds add nothing but cost to every
		// login Dovecot checks against it.
		if h, err = shacrypt.New(shacrypt.WithSHA512(), shacrypt.WithRounds(5000)); err == nil {
			d, err = h.Hash(string(pw))
		}
		scheme = "SHA512-CRYPT"
	}
	if err != nil {
		return "", fmt.Errorf("hashing the new password: %w", err)
	}
	return "{" + scheme + "}" + d.Encode(), nil
}

// dovecotConnector ends IMAP and POP3 sessions through the doveadm HTTP
// API: the auth cache is flushed first, so a reconnect has to
// authenticate against the new password or the lock.
type dovecotConnector struct {
	c  *dovecot.Client
	pf *passwdfile.Writer // nil: no passwd-file written by playbooks
}

func (dovecotConnector) Name() string { return "dovecot" }

func (dovecotConnector) Supports(s playbook.Step) bool { return s == playbook.StepEndSessions }

func (d dovecotConnector) Do(ctx context.Context, s playbook.Step, inc *store.Incident, _ []byte) (string, error) {
	if s != playbook.StepEndSessions {
		return "", fmt.Errorf("%w: dovecot does not carry out %s", playbook.ErrPermanent, s)
	}
	if d.pf != nil {
		// Dovecot must see the lock and the new password in the
		// passwd-file before sessions end, or a reconnect could log in.
		d.pf.Wait()
	}
	if err := d.c.AuthCacheFlush(ctx, inc.Account); err != nil {
		return "", permanent(err, dovecot.ErrUnauthorized)
	}
	n, err := d.c.Kick(ctx, inc.Account)
	if err != nil {
		return "", permanent(err, dovecot.ErrUnauthorized)
	}
	return fmt.Sprintf("auth cache flushed, %d account(s) kicked", n), nil
}
