// Package response says what each playbook step means on each system a
// site runs: Zimbra (SOAP admin API), an LDAP directory, a Dovecot
// passwd-file and Dovecot's doveadm HTTP API, and notification. Each
// adapter implements playbook.Connector, and where a system can tell,
// ops.PasswordChangeChecker, ops.Unlocker and playbook.PasswordChecker.
// The protocol clients live in internal/connector and internal/directory;
// the daemon builds the adapters from the configuration.
package response

import (
	"errors"

	"github.com/mailbrake/mailbrake/internal/playbook"
)

// permanent marks errors that retrying cannot fix.
func permanent(err error, perm ...error) error {
	for _, p := range perm {
		if errors.Is(err, p) {
			return errors.Join(playbook.ErrPermanent, err)
		}
	}
	return err
}
