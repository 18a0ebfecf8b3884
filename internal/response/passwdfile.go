package response

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-crypt/crypt/algorithm"
	"github.com/go-crypt/crypt/algorithm/bcrypt"
	"github.com/go-crypt/crypt/algorithm/shacrypt"

	"github.com/mailbrake/mailbrake/internal/directory/passwdfile"
	"github.com/mailbrake/mailbrake/internal/playbook"
	"github.com/mailbrake/mailbrake/internal/store"
)

// PasswdFile locks and scrambles accounts in a Dovecot
// passwd-file (Dovecot re-reads it when it changes; end-sessions through
// the doveadm API flushes its auth cache).
type PasswdFile struct {
	w      *passwdfile.Writer
	scheme string // SHA512-CRYPT or BLF-CRYPT
}

// NewPasswdFile returns the passwd-file connector writing through w, new
// passwords hashed in scheme (SHA512-CRYPT, the default, or BLF-CRYPT).
func NewPasswdFile(w *passwdfile.Writer, scheme string) PasswdFile {
	return PasswdFile{w: w, scheme: scheme}
}

func (PasswdFile) Name() string { return "passwd_file" }

func (PasswdFile) Supports(s playbook.Step) bool {
	return s == playbook.StepLockLogin || s == playbook.StepScramblePassword
}

func (p PasswdFile) Do(_ context.Context, s playbook.Step, inc *store.Incident, pw []byte) (string, error) {
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

func (p PasswdFile) Unlock(_ context.Context, account string) error {
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

// Probe implements playbook.Prober: the passwd-file exists and opens for
// writing, and a file can be created beside it — a change is written to a
// temporary file in its directory and renamed over it, so a read-only
// directory (systemd's ProtectSystem=strict with ReadWritePaths naming
// the file only) makes every lock fail. The file itself is not written.
func (p PasswdFile) Probe(context.Context) error { return probeFile(p.w.Path) }

func probeFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("passwd-file: %w", err)
	}
	f.Close()
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("passwd-file: %w", err)
	}
	dir, base := filepath.Split(abs)
	tmp, err := os.CreateTemp(dir, "."+base+".mailbrake-probe-*")
	if err != nil {
		return fmt.Errorf("passwd-file: changes are written beside the file and renamed over it, but its directory takes no new file: %w", err)
	}
	tmp.Close()
	return os.Remove(tmp.Name())
}
