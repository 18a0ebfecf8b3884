package postfixtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// SMTP AUTH uses Postfix's built-in Cyrus SASL with the sasldb auxprop
// plugin: smtpd loads libsasl2 in-process and reads a private Berkeley DB
// that saslpasswd2 writes, so no authentication daemon has to be started,
// kept and stopped.
//
// Debian's Postfix ignores cyrus_sasl_config_path: it reads
// $config_directory/sasl/smtpd.conf (then /usr/lib/sasl/smtpd.conf), so the
// file lives there; cyrus_sasl_config_path is set as well for other builds.

func (in *Instance) saslDir() string { return filepath.Join(in.ConfigDir, "sasl") }

func (in *Instance) sasldbPath() string { return filepath.Join(in.saslDir(), "sasldb2") }

// writeSASL writes smtpd.conf and a sasldb holding opts.Users, readable by
// the postfix group (smtpd runs as postfix).
func (in *Instance) writeSASL(postfixGID int) error {
	dir := in.saslDir()
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	conf := strings.Join([]string{
		"pwcheck_method: auxprop",
		"auxprop_plugin: sasldb",
		"sasldb_path: " + in.sasldbPath(),
		// Plain-text mechanisms only: the tests send passwords in the
		// clear on loopback, and the CRAM/DIGEST/SCRAM plugins would
		// otherwise be offered first to clients that pick the strongest.
		"mech_list: PLAIN LOGIN",
		"",
	}, "\n")
	if err := os.WriteFile(filepath.Join(dir, "smtpd.conf"), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("writing smtpd.conf: %w", err)
	}
	names := make([]string, 0, len(in.opts.Users))
	for name := range in.opts.Users {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		// Cyrus splits "user@realm" at the last '@'; a bare name belongs
		// to the realm of the server's name, which Postfix passes as
		// myhostname.
		user, realm := name, Hostname
		if i := strings.LastIndexByte(name, '@'); i >= 0 {
			user, realm = name[:i], name[i+1:]
		}
		cmd := exec.Command(saslpasswdBin, "-c", "-p", "-f", in.sasldbPath(), "-u", realm, user)
		cmd.Stdin = strings.NewReader(in.opts.Users[name])
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("saslpasswd2 %s: %w: %s", name, err, out)
		}
	}
	if err := os.Chown(in.sasldbPath(), 0, postfixGID); err != nil {
		return fmt.Errorf("sasldb: %w", err)
	}
	if err := os.Chmod(in.sasldbPath(), 0o640); err != nil {
		return fmt.Errorf("sasldb: %w", err)
	}
	return nil
}
