package daemon

import (
	"errors"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/notify"
)

// buildNotifier builds the notifier from the configuration; nil when no
// channel is configured.
func (d *Daemon) buildNotifier() (*notify.Notifier, error) {
	n := d.cfg.Notify
	if n.SMTP.Addr == "" && n.Webhook.URL == "" && n.Syslog.Network == config.SyslogOff {
		return nil, nil
	}
	nc := notify.Config{
		SMTP: notify.SMTPConfig{Addr: n.SMTP.Addr, HelloName: n.SMTP.HelloName, From: n.SMTP.From, StartTLS: n.SMTP.StartTLS.String(),
			Username: n.SMTP.Username, PasswordFile: n.SMTP.PasswordFile, CAFile: n.SMTP.CAFile, Timeout: n.SMTP.Timeout.D()},
		HelpDesk: n.HelpDesk, Admins: n.Admins, NotifyUser: n.NotifyUser, HelpDeskContact: n.HelpDeskContact,
		Webhook:      notify.WebhookConfig{URL: n.Webhook.URL, SecretFile: n.Webhook.SecretFile, Timeout: n.Webhook.Timeout.D(), Retries: n.Webhook.Retries},
		Syslog:       notify.SyslogConfig{Network: n.Syslog.Network.String(), Addr: n.Syslog.Addr, Tag: n.Syslog.Tag, Facility: n.Syslog.Facility},
		TemplatesDir: n.TemplatesDir,
		RateLimit:    notify.RateLimitConfig{PerIncident: n.PerIncident, PerHour: n.PerHour},
	}
	if n.NotifyUser {
		nc.UserAddress = d.recovery.Address
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

// unjoin returns the errors an errors.Join holds, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
