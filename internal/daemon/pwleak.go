package daemon

import (
	"context"
	"errors"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/detect"
	"github.com/mailbrake/mailbrake/internal/directory/ldapdir"
	"github.com/mailbrake/mailbrake/internal/engine"
	"github.com/mailbrake/mailbrake/internal/ops"
	"github.com/mailbrake/mailbrake/internal/pwleak"
)

// buildPasswordLeak checks the password-leak settings and keeps the
// detector's options for Start; d.pwleakOpts stays nil when the detector is
// off or no hash source is configured.
func (d *Daemon) buildPasswordLeak() error {
	cfg := d.cfg.PasswordLeak
	if !cfg.Enabled {
		return nil
	}
	var sources []pwleak.HashSource
	for _, src := range cfg.Sources {
		switch src {
		case config.SourceLDAP:
			if d.cfg.Directory.LDAP.URL == "" {
				continue
			}
			c, err := d.ldapClient()
			if err != nil {
				return err
			}
			sources = append(sources, ldapSource{c})
		case config.SourcePasswdFile:
			if d.cfg.Directory.PasswdFile.Path == "" {
				continue
			}
			sources = append(sources, detect.PasswdFileSource{Path: d.cfg.Directory.PasswdFile.Path})
		}
	}
	d.pwleakOpts = detect.PasswordLeakOptions(d.cfg, sources, d.log)
	if d.pwleakOpts == nil {
		d.log.Info("password-leak detection off: no directory configured (directory.ldap or directory.passwd_file)")
		return nil
	}
	d.pwleakOpts.OnLateMatch = func(account, queueID string, f engine.Finding) {
		if f.DryRun {
			return
		}
		d.queueFindings(account, []ops.Finding{{Reason: string(f.Reason), Detail: f.Evidence, QueueID: queueID}})
	}
	return nil
}

// newPasswordLeak starts the password-leak detector (its worker pool).
func (d *Daemon) newPasswordLeak() *pwleak.Detector { return pwleak.New(*d.pwleakOpts) }

type ldapSource struct{ c *ldapdir.Client }

func (ldapSource) Name() string { return "ldap" }

func (s ldapSource) PasswordHash(ctx context.Context, account string) (string, error) {
	h, err := s.c.PasswordHash(ctx, account)
	if errors.Is(err, ldapdir.ErrNoSuchAccount) || errors.Is(err, ldapdir.ErrNoPassword) {
		return "", errors.Join(pwleak.ErrNoSuchAccount, err)
	}
	return h, err
}
