package detect

import (
	"context"
	"errors"
	"log/slog"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/directory/passwdfile"
	"github.com/mailbrake/mailbrake/internal/leakscan"
	"github.com/mailbrake/mailbrake/internal/pwleak"
)

// PasswordLeakOptions returns the password-leak detector's options from
// the configuration with the hash sources the caller opened (the daemon's
// LDAP client, a passwd-file); nil when the detector is off or there is no
// source. The caller sets OnLateMatch.
func PasswordLeakOptions(c *config.Config, sources []pwleak.HashSource, log *slog.Logger) *pwleak.Options {
	p := c.PasswordLeak
	if !p.Enabled || len(sources) == 0 {
		return nil
	}
	return &pwleak.Options{
		Sources: sources, CacheTTL: p.CacheTTL.D(), InlineBudget: p.InlineBudget.D(), MaxSlowCandidates: p.MaxSlowCandidates, Workers: p.Workers,
		Extract: leakscan.Options{MaxBytes: p.MaxScanBytes, MinLen: p.MinLength, MaxLen: p.MaxLength, MaxCandidates: p.MaxCandidates},
		Action:  p.Verdict, Score: p.Score, DryRun: p.DryRun, Log: log,
	}
}

// PasswdFileSource reads password hashes from a Dovecot passwd-file
// (directory.passwd_file), read again at every lookup.
type PasswdFileSource struct{ Path string }

// Name implements pwleak.HashSource.
func (PasswdFileSource) Name() string { return "passwd_file" }

// PasswordHash implements pwleak.HashSource.
func (s PasswdFileSource) PasswordHash(_ context.Context, account string) (string, error) {
	h, err := passwdfile.Lookup(s.Path, account)
	if errors.Is(err, passwdfile.ErrNoSuchAccount) {
		return "", errors.Join(pwleak.ErrNoSuchAccount, err)
	}
	return h, err
}
