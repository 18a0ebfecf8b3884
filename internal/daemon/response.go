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

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/connector/dovecot"
	"github.com/mailbrake/mailbrake/internal/connector/exec"
	"github.com/mailbrake/mailbrake/internal/connector/zimbra"
	"github.com/mailbrake/mailbrake/internal/detect"
	"github.com/mailbrake/mailbrake/internal/directory/ldapdir"
	"github.com/mailbrake/mailbrake/internal/directory/passwdfile"
	"github.com/mailbrake/mailbrake/internal/ops"
	"github.com/mailbrake/mailbrake/internal/playbook"
	"github.com/mailbrake/mailbrake/internal/pwleak"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/store/sqlite"
)

// responseParts is what buildResponse provisions for account response:
// the playbooks and every configured system's connector.
type responseParts struct {
	playbooks []*playbook.Playbook
	conns     []playbook.Connector
	checkers  []ops.PasswordChangeChecker
	unlockers []ops.Unlocker
}

// buildResponse provisions account response from the configuration
// without connecting anywhere: the playbooks, whose triggers must be
// reasons something reports, and the connectors of the configured
// systems (secret and CA files are read here). The error is config.Errors.
func (d *Daemon) buildResponse() error {
	cfg := d.cfg
	var errs config.Errors
	add := func(path string, err error) { errs = append(errs, config.FieldError{Path: path, Msg: err.Error()}) }
	known := map[string]bool{string(pwleak.ReasonPasswordLeak): true, ops.ReasonMarkedSpam: true}
	for _, r := range detect.BuiltinReasons() {
		known[string(r)] = true
	}
	for _, r := range cfg.Rules {
		known[r.ReasonOrName()] = true
	}
	r := &d.response
	for i, pc := range cfg.Playbooks {
		for j, tr := range pc.Triggers {
			if !known[tr] {
				add(fmt.Sprintf("playbooks[%d].triggers[%d]", i, j), fmt.Errorf("no rule or detector reports %q%s, so this would never open an incident", tr, suggestReason(tr, known)))
			}
		}
		pb := &playbook.Playbook{Name: pc.Name, Triggers: pc.Triggers, Severity: store.Severity(pc.Severity)}
		pb.ConfirmFrom = len(pc.Steps)
		for i, s := range pc.Steps {
			pb.Steps = append(pb.Steps, playbook.Step(s))
			if s == pc.ConfirmFrom {
				pb.ConfirmFrom = i
			}
		}
		r.playbooks = append(r.playbooks, pb)
	}
	if z := cfg.Response.Zimbra; z.URL != "" {
		c, err := zimbra.New(zimbra.Config{URL: z.URL, AdminUser: z.AdminUser, AdminPasswordFile: z.AdminPasswordFile, CAFile: z.CAFile,
			InsecureSkipVerify: z.InsecureSkipVerify, Timeout: z.Timeout.D(), Logger: d.log})
		if err != nil {
			add("response.zimbra", err)
		} else {
			d.zimbra = c
			zc := zimbraConnector{c}
			r.conns = append(r.conns, zc)
			r.checkers = append(r.checkers, zc)
			r.unlockers = append(r.unlockers, zc)
		}
	}
	if l := cfg.Directory.LDAP; l.URL != "" && cfg.Response.UseLDAP {
		c, err := d.ldapClient()
		if err != nil {
			add("directory.ldap", err)
		} else {
			lc := ldapConnector{c}
			r.conns = append(r.conns, lc)
			r.checkers = append(r.checkers, lc)
			r.unlockers = append(r.unlockers, lc)
		}
	}
	var pfw *passwdfile.Writer
	if pf := cfg.Directory.PasswdFile; pf.Path != "" && cfg.Response.UsePasswdFile {
		pfw = &passwdfile.Writer{Path: pf.Path}
		pc := passwdFileConnector{w: pfw, scheme: pf.Scheme}
		r.conns = append(r.conns, pc)
		r.unlockers = append(r.unlockers, pc)
	}
	if dv := cfg.Response.Dovecot; dv.URL != "" {
		c, err := dovecot.New(dovecot.Config{URL: dv.URL, APIKeyFile: dv.APIKeyFile, Timeout: dv.Timeout.D()})
		if err != nil {
			add("response.dovecot", err)
		} else {
			r.conns = append(r.conns, dovecotConnector{c: c, pf: pfw})
		}
	}
	if e := cfg.Response.Exec; len(e.Command) > 0 {
		c := &exec.Connector{Command: e.Command, Timeout: e.Timeout.D()}
		for _, s := range e.Steps {
			c.Steps = append(c.Steps, playbook.Step(s))
		}
		r.conns = append(r.conns, c)
	}
	nt, err := d.buildNotifier()
	var ce config.Errors
	switch {
	case errors.As(err, &ce):
		errs = append(errs, ce...)
	case err != nil:
		add("notify", err)
	case nt != nil:
		r.conns = append(r.conns, notifyConnector{nt})
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// suggestReason returns ` (did you mean "x"?)` for the known reason
// closest to s, or "".
func suggestReason(s string, known map[string]bool) string {
	best, bestD := "", 4
	for k := range known {
		if d := editDistance(s, k); d < bestD || d == bestD && k < best {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// startResponse assembles account response over the store: the runner
// with mailbrake's own connector first, then the configured systems'.
func (d *Daemon) startResponse(st *sqlite.Store) *ops.Response {
	cfg := d.cfg
	p := d.response
	r := &ops.Response{Incidents: st, MinLock: cfg.Response.MinLock.D(), Playbooks: p.playbooks, Checkers: p.checkers, Unlockers: p.unlockers}
	conns := append([]playbook.Connector{d.ops.Connector()}, p.conns...)
	conns = append(conns, d.extraConnectors...)
	r.Runner = &playbook.Runner{Incidents: st, Connectors: conns, Attempts: cfg.Response.Attempts, Backoff: cfg.Response.Backoff.D(),
		DryRun: cfg.Response.DryRun, Log: d.log}
	names := make([]string, len(conns))
	for i, c := range conns {
		names[i] = c.Name()
	}
	d.log.Info("account response ready", "playbooks", len(r.Playbooks), "connectors", strings.Join(names, ","), "dry_run", cfg.Response.DryRun)
	return r
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

// CheckPassword implements playbook.PasswordChecker: the scrambled password
// must satisfy the account's effective policy, which Zimbra enforces for a
// delegated admin and does not let the same password be retried. When the
// policy cannot be read, the password is left to SetPassword to judge.
func (z zimbraConnector) CheckPassword(ctx context.Context, account string, pw []byte) error {
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
