package response

import (
	"context"
	"fmt"

	"github.com/mailbrake/mailbrake/internal/connector/dovecot"
	"github.com/mailbrake/mailbrake/internal/directory/passwdfile"
	"github.com/mailbrake/mailbrake/internal/playbook"
	"github.com/mailbrake/mailbrake/internal/store"
)

// Dovecot ends IMAP and POP3 sessions through the doveadm HTTP
// API: the auth cache is flushed first, so a reconnect has to
// authenticate against the new password or the lock.
type Dovecot struct {
	c  *dovecot.Client
	pf *passwdfile.Writer // nil: no passwd-file written by playbooks
}

// NewDovecot returns the Dovecot connector; pf is the passwd-file the
// playbooks write, nil for none.
func NewDovecot(c *dovecot.Client, pf *passwdfile.Writer) Dovecot { return Dovecot{c: c, pf: pf} }

func (Dovecot) Name() string { return "dovecot" }

func (Dovecot) Supports(s playbook.Step) bool { return s == playbook.StepEndSessions }

func (d Dovecot) Do(ctx context.Context, s playbook.Step, inc *store.Incident, _ []byte) (string, error) {
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

// Probe implements playbook.Prober: the doveadm API, and the passwd-file
// when this connector writes one.
func (d Dovecot) Probe(ctx context.Context) error {
	if d.c != nil {
		if err := d.c.Ping(ctx); err != nil {
			return err
		}
	}
	if d.pf != nil {
		return probeFile(d.pf.Path)
	}
	return nil
}
