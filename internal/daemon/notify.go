package daemon

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/notify"
)

// buildNotifier builds the notifier from the configuration; nil when no
// channel is configured.
func (d *Daemon) buildNotifier() (*notify.Notifier, error) {
	n := d.cfg.Notify
	if n.SMTP.Addr == "" && n.Webhook.URL == "" && n.Syslog.Network == "" {
		return nil, nil
	}
	nc := notify.Config{
		SMTP: notify.SMTPConfig{Addr: n.SMTP.Addr, HelloName: n.SMTP.HelloName, From: n.SMTP.From, StartTLS: n.SMTP.StartTLS,
			Username: n.SMTP.Username, PasswordFile: n.SMTP.PasswordFile, CAFile: n.SMTP.CAFile, Timeout: n.SMTP.Timeout.D()},
		HelpDesk: n.HelpDesk, Admins: n.Admins, NotifyUser: n.NotifyUser, HelpDeskContact: n.HelpDeskContact,
		Webhook:      notify.WebhookConfig{URL: n.Webhook.URL, SecretFile: n.Webhook.SecretFile, Timeout: n.Webhook.Timeout.D(), Retries: n.Webhook.Retries},
		Syslog:       notify.SyslogConfig{Network: n.Syslog.Network, Addr: n.Syslog.Addr, Tag: n.Syslog.Tag, Facility: n.Syslog.Facility},
		TemplatesDir: n.TemplatesDir,
		RateLimit:    notify.RateLimitConfig{PerIncident: n.PerIncident, PerHour: n.PerHour},
	}
	if n.NotifyUser {
		nc.UserAddress = d.recoveryAddress
	}
	nt, err := notify.New(nc, d.log.With("component", "notify"))
	if err != nil {
		// notify reports each problem under the YAML key it came from.
		var errs config.Errors
		for _, e := range unjoin(err) {
			var ce *notify.ConfigError
			if errors.As(e, &ce) {
				errs = append(errs, config.FieldError{Path: ce.Path, Msg: ce.Msg})
			} else {
				errs = append(errs, config.FieldError{Path: "notify", Msg: e.Error()})
			}
		}
		return nil, errs
	}
	return nt, nil
}

// recoveryAddress looks up a user's recovery address: the LDAP attribute
// directory.ldap.recovery_address_attribute, else Zimbra's
// zimbraPrefPasswordRecoveryAddress. The compromised mailbox itself is
// never used. "" when there is none.
func (d *Daemon) recoveryAddress(ctx context.Context, account string) (string, error) {
	if attr := d.cfg.Directory.LDAP.RecoveryAddress; attr != "" && d.cfg.Directory.LDAP.URL != "" {
		c, err := d.ldapClient()
		if err != nil {
			return "", err
		}
		vs, err := c.Attribute(ctx, account, attr)
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
	if d.zimbra != nil {
		// The user sets zimbraPrefPasswordRecoveryAddress and its status
		// with ModifyPrefs, and so can an attacker in the user's session
		// (zm-mailbox zimbra-attrs.xml, commit 2b7f9787c69e): mail it only
		// when verified and unchanged since the incident opened.
		addr, status, known, err := d.zimbra.RecoveryAddress(ctx, account)
		if err != nil {
			return "", err
		}
		addr = strings.TrimSpace(addr)
		if !known || addr == "" || strings.EqualFold(addr, account) {
			return "", nil
		}
		if !strings.EqualFold(status, "verified") {
			d.log.Warn("user notification not sent: the recovery address is not verified", "account", account, "status", status)
			return "", nil
		}
		if before, ok := d.recoverySnap.Load(strings.ToLower(account)); ok && !strings.EqualFold(before.(string), addr) {
			d.log.Warn("user notification not sent: the recovery address changed during the incident (an attacker may have set it)", "account", account)
			return "", nil
		}
		return addr, nil
	}
	return "", nil
}

// unjoin returns the errors an errors.Join holds, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// noteRecoveryAddress remembers an account's Zimbra recovery address when
// its incident opens (ops.Service.IncidentOpened), so that the user mail
// is not sent to an address set during the incident.
func (d *Daemon) noteRecoveryAddress(ctx context.Context, account string) {
	if d.zimbra == nil || !d.cfg.Notify.NotifyUser {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addr, _, known, err := d.zimbra.RecoveryAddress(ctx, account)
	if err != nil {
		d.log.Warn("reading the recovery address at the incident's start failed", "account", account, "err", err)
		return
	}
	if known {
		d.recoverySnap.Store(strings.ToLower(account), strings.TrimSpace(addr))
	}
}
