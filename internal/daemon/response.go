package daemon

import (
	"context"
	"errors"
	"fmt"
	"github.com/mailbrake/mailbrake/internal/api"
	"github.com/mailbrake/mailbrake/internal/notify"
	"github.com/mailbrake/mailbrake/internal/store"
	"strings"
	"time"

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
	"github.com/mailbrake/mailbrake/internal/response"
	"github.com/mailbrake/mailbrake/internal/verdict"
	"slices"
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
	// Every reason a finding can have, and its evidence family. An
	// admin's "this is spam" is reviewed evidence, not a count.
	builtin := map[string]verdict.Family{string(pwleak.ReasonPasswordLeak): verdict.Secret, ops.ReasonMarkedSpam: verdict.Reviewed}
	for _, r := range detect.BuiltinReasons() {
		builtin[string(r)] = detect.BuiltinFamily(r)
	}
	r := &d.response
	d.recovery = &response.Recovery{Log: d.log}
	if l := cfg.Directory.LDAP; l.URL != "" && l.RecoveryAddress != "" {
		d.recovery.LDAP, d.recovery.LDAPAttribute = d.ldapClient, l.RecoveryAddress
	}
	pbs, perrs := response.Playbooks(cfg.Playbooks, func(i int) string { return config.PlaybookPath(cfg, i) }, response.Families(builtin, cfg.Rules))
	errs = append(errs, perrs...)
	r.playbooks = pbs
	if z := cfg.Response.Zimbra; z.URL != "" {
		c, err := zimbra.New(zimbra.Config{URL: z.URL, AdminUser: z.AdminUser, AdminPasswordFile: z.AdminPasswordFile, CAFile: z.CAFile,
			InsecureSkipVerify: z.InsecureSkipVerify, Timeout: z.Timeout.D(), Logger: d.log})
		if err != nil {
			add("response.zimbra", err)
		} else {
			d.recovery.Zimbra = c
			zc := response.NewZimbra(c)
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
			lc := response.NewLDAP(c)
			r.conns = append(r.conns, lc)
			r.checkers = append(r.checkers, lc)
			r.unlockers = append(r.unlockers, lc)
		}
	}
	var pfw *passwdfile.Writer
	if pf := cfg.Directory.PasswdFile; pf.Path != "" && cfg.Response.UsePasswdFile {
		pfw = &passwdfile.Writer{Path: pf.Path}
		pc := response.NewPasswdFile(pfw, pf.Scheme.String())
		r.conns = append(r.conns, pc)
		r.unlockers = append(r.unlockers, pc)
	}
	if dv := cfg.Response.Dovecot; dv.URL != "" {
		c, err := dovecot.New(dovecot.Config{URL: dv.URL, APIKeyFile: dv.APIKeyFile, Timeout: dv.Timeout.D()})
		if err != nil {
			add("response.dovecot", err)
		} else {
			r.conns = append(r.conns, response.NewDovecot(c, pfw))
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
		d.notifier = nt
		r.conns = append(r.conns, response.NewNotify(nt))
	}
	if len(errs) > 0 {
		return errs
	}
	d.noteUncarriedSteps(r)
	return nil
}

// noteUncarriedSteps notes the playbook steps no configured system
// carries out: the runner skips them, and an incident is contained
// without them (a login not locked, a password not changed).
func (d *Daemon) noteUncarriedSteps(r *responseParts) {
	var steps, playbooks []string
	for _, pb := range r.playbooks {
		for _, st := range pb.Steps {
			if ops.SelfSupports(st) || slices.ContainsFunc(r.conns, func(c playbook.Connector) bool { return c.Supports(st) }) {
				continue
			}
			if !slices.Contains(steps, string(st)) {
				steps = append(steps, string(st))
			}
			if !slices.Contains(playbooks, pb.Name) {
				playbooks = append(playbooks, pb.Name)
			}
		}
	}
	if len(steps) == 0 || d.cfg.Response.DryRun {
		return
	}
	config.AddNote(d.cfg, "playbooks: no configured system carries out "+strings.Join(steps, ", ")+" (steps of "+strings.Join(playbooks, ", ")+
		"): they are skipped, and an incident is contained without them; response.zimbra, directory.ldap with response.use_ldap, directory.passwd_file with response.use_passwd_file, response.dovecot, notify or response.exec carry them out (docs/response.md)")
}

// startResponse assembles account response over the store: the runner
// with mailbrake's own connector first, then the configured systems'.
func (d *Daemon) startResponse(st recordStore) *ops.Response {
	cfg := d.cfg
	p := d.response
	r := &ops.Response{Incidents: st, MinLock: cfg.Response.MinLock.D(), Playbooks: p.playbooks, Checkers: p.checkers, Unlockers: p.unlockers}
	conns := append([]playbook.Connector{d.ops.Connector()}, p.conns...)
	conns = append(conns, d.extraConnectors...)
	r.Runner = &playbook.Runner{Incidents: st, Connectors: conns, Attempts: cfg.Response.Attempts, Backoff: cfg.Response.Backoff.D(),
		DryRun: cfg.Response.DryRun, Log: d.log}
	if d.notifier != nil {
		// The help desk hears the rest of an incident it was told of:
		// what the steps carried out after its notification did (those
		// an admin confirmed, retried ones), and its end. Mail is
		// threaded per incident.
		nc := response.NewNotify(d.notifier)
		send := func(ctx context.Context, inc *store.Incident, kind string) {
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if err := nc.Update(ctx, inc, kind); err != nil {
				d.log.Warn("telling the help desk about an incident failed", "incident", inc.ID, "kind", kind, "err", err)
			}
		}
		r.Runner.AfterRun = func(ctx context.Context, inc *store.Incident, _ *playbook.Playbook, ran []playbook.Step) {
			if response.Told(inc) && !slices.Contains(ran, playbook.StepNotify) {
				send(ctx, inc, "")
			}
		}
		r.Update = func(ctx context.Context, inc *store.Incident, change string) {
			if !response.Told(inc) {
				return
			}
			kind := notify.KindIncidentResolved
			if change == api.IncidentDismiss {
				kind = notify.KindIncidentDismissed
			}
			// Off the admin's request; Stop waits for it (the
			// "playbook runs" stage).
			d.helpdesk.Go(func() { send(ctx, inc, kind) })
		}
	}
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
