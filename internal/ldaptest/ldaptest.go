package ldaptest

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/mailbrake/mailbrake/internal/testnet"
)

// Standard locations of the Debian slapd package. They are not taken from
// PATH so that a test never runs something else by accident.
const (
	slapdBin  = "/usr/sbin/slapd"
	moduleDir = "/usr/lib/ldap"
	schemaDir = "/etc/ldap/schema"
)

// Schemas loaded from schemaDir, in dependency order.
var schemas = []string{"core", "cosine", "inetorgperson", "nis"}

// relaxOID is the Relax Rules control (draft-zeilenga-ldap-relax), which
// slapd honours for the root DN: it lets SetAttr write attributes marked
// NO-USER-MODIFICATION such as pwdChangedTime.
const relaxOID = "1.3.6.1.4.1.4203.666.5.12"

// Instance is a running private slapd. Its directory is removed and slapd
// stopped when the test ends.
type Instance struct {
	// Dir is the temporary directory holding everything below.
	Dir string
	// ConfigFile is the generated slapd.conf.
	ConfigFile string
	// LogFile receives slapd's stdout and stderr (-d stats: one line per
	// connection and operation, never a password).
	LogFile string
	// URL is "ldap://127.0.0.1:port", the only listener.
	URL string
	// Addr is the "127.0.0.1:port" of URL.
	Addr string

	// BaseDN is the database suffix, "dc=example,dc=test".
	BaseDN string
	// AdminDN is the root DN; it bypasses ACLs and the password policy.
	AdminDN string
	// AdminPassword is AdminDN's password, random per instance.
	AdminPassword string
	// PeopleDN is the container AddUser puts users in.
	PeopleDN string
	// PolicyDN is the default ppolicy entry (ppolicy_default): pwdLockout
	// TRUE so that pwdAccountLockedTime is enforced, pwdMaxFailure 0 so that
	// failed binds never lock an account by themselves.
	PolicyDN string

	// SHA2 reports whether the pw-sha2 module is loaded: without it slapd
	// does not know {SSHA512} and a bind against such a value fails.
	SHA2 bool
	// StartupTime is how long Start took, base entries included.
	StartupTime time.Duration

	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait returned
}

// Start starts a private slapd with the base entries and the default
// password policy in place. It skips the test when not root, in -short
// mode, or when the slapd package is missing. t.Cleanup stops slapd and
// removes its directory; when the test failed it logs the tail of the slapd
// log first.
func Start(t testing.TB) *Instance {
	t.Helper()
	begin := time.Now()
	if testing.Short() {
		t.Skip("ldaptest: real slapd skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("ldaptest: a private slapd needs root; run as root after scripts/install-test-deps.sh")
	}
	need := []string{slapdBin, filepath.Join(moduleDir, "back_mdb.so"), filepath.Join(moduleDir, "ppolicy.so")}
	for _, s := range schemas {
		need = append(need, filepath.Join(schemaDir, s+".schema"))
	}
	for _, f := range need {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("ldaptest: %s not installed; run scripts/install-test-deps.sh", f)
		}
	}

	in, err := launch()
	if in != nil {
		t.Cleanup(func() { in.cleanup(t) })
	}
	if err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	if err := in.seed(); err != nil {
		t.Fatalf("ldaptest: adding base entries: %v", err)
	}
	in.StartupTime = time.Since(begin)
	t.Logf("ldaptest: slapd started in %v: %s, dir %s, pw-sha2 %v",
		in.StartupTime.Round(time.Millisecond), in.URL, in.Dir, in.SHA2)
	return in
}

// launch creates the instance's directory, writes slapd.conf and starts
// slapd. A non-nil Instance must be cleaned up even with an error.
func launch() (*Instance, error) {
	dir, err := os.MkdirTemp("", "ldaptest-")
	if err != nil {
		return nil, err
	}
	in := &Instance{
		Dir:           dir,
		ConfigFile:    filepath.Join(dir, "slapd.conf"),
		LogFile:       filepath.Join(dir, "slapd.log"),
		BaseDN:        "dc=example,dc=test",
		AdminDN:       "cn=admin,dc=example,dc=test",
		AdminPassword: randomHex(12),
		PeopleDN:      "ou=people,dc=example,dc=test",
		PolicyDN:      "cn=default,ou=policies,dc=example,dc=test",
	}
	_, err = os.Stat(filepath.Join(moduleDir, "pw-sha2.so"))
	in.SHA2 = err == nil
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		return in, err
	}

	// Free ports are found by listening on :0 and closing; another process
	// may take one before slapd binds it, so a bind failure is retried with
	// a new port.
	const attempts = 3
	for attempt := 1; ; attempt++ {
		if in.Addr, err = freeAddr(); err != nil {
			return in, err
		}
		in.URL = "ldap://" + in.Addr
		if err := os.WriteFile(in.ConfigFile, []byte(in.slapdConf()), 0o600); err != nil {
			return in, err
		}
		err = in.run()
		if err == nil {
			return in, nil
		}
		log := in.Log()
		if attempt < attempts && strings.Contains(log, "Address already in use") {
			continue
		}
		return in, fmt.Errorf("%w\nslapd log:\n%s", err, tail(log, 40))
	}
}

func freeAddr() (string, error) { return testnet.FreeAddr() }

// slapdConf returns the generated slapd.conf.
func (in *Instance) slapdConf() string {
	var b strings.Builder
	b.WriteString("# generated by internal/ldaptest\n")
	for _, s := range schemas {
		fmt.Fprintf(&b, "include %s\n", filepath.Join(schemaDir, s+".schema"))
	}
	// OpenLDAP 2.5 ships ppolicy as a module with its schema built in.
	fmt.Fprintf(&b, "modulepath %s\nmoduleload back_mdb.so\nmoduleload ppolicy.so\n", moduleDir)
	if in.SHA2 {
		// {SSHA256}, {SSHA384}, {SSHA512} and the unsalted variants.
		b.WriteString("moduleload pw-sha2.so\n")
	}
	fmt.Fprintf(&b, "pidfile %s\nargsfile %s\n", filepath.Join(in.Dir, "slapd.pid"), filepath.Join(in.Dir, "slapd.args"))
	// The scheme of Password Modify results and of hashed cleartext
	// writes; {SSHA} is slapd's default, spelled out.
	b.WriteString("password-hash {SSHA}\n")
	b.WriteString("\ndatabase mdb\n")
	fmt.Fprintf(&b, "suffix %q\nrootdn %q\nrootpw %s\n", in.BaseDN, in.AdminDN, SSHA(in.AdminPassword))
	fmt.Fprintf(&b, "directory %s\n", filepath.Join(in.Dir, "db"))
	// A test database need not survive a crash: no fsync per write.
	b.WriteString("dbnosync\n")
	// As a site would: users bind with their password and may change it;
	// nobody but the root DN reads it.
	b.WriteString("access to attrs=userPassword by self write by anonymous auth by * none\n")
	b.WriteString("access to * by * read\n")
	b.WriteString("\noverlay ppolicy\n")
	fmt.Fprintf(&b, "ppolicy_default %q\n", in.PolicyDN)
	// Plain userPassword writes in cleartext are stored hashed, as
	// Password Modify results are.
	b.WriteString("ppolicy_hash_cleartext\n")
	return b.String()
}

// run starts slapd on in.URL and waits until the root DN can bind.
func (in *Instance) run() error {
	logf, err := os.OpenFile(in.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	// -d keeps slapd in the foreground, so the test owns the process;
	// "stats" logs connections and operations to stderr (there is no
	// syslog here). Stdio goes to a file, not a pipe: a pipe that slapd
	// keeps open would hold up the test binary.
	cmd := exec.Command(slapdBin, "-f", in.ConfigFile, "-h", in.URL+"/", "-d", "stats")
	cmd.Dir = in.Dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting slapd: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	in.cmd, in.exited = cmd, exited

	// slapd needs some 50 ms here; 10 s covers a loaded test machine.
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			in.cmd, in.exited = nil, nil
			return fmt.Errorf("slapd exited during startup: %v", cmd.ProcessState)
		default:
		}
		conn, err := in.dial()
		if err == nil {
			err = conn.Bind(in.AdminDN, in.AdminPassword)
			conn.Close()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("slapd not ready after 10s: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dial connects to the instance without binding.
func (in *Instance) dial() (*ldap.Conn, error) {
	conn, err := ldap.DialURL(in.URL, ldap.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}))
	if err != nil {
		return nil, err
	}
	conn.SetTimeout(10 * time.Second)
	return conn, nil
}

// admin returns a connection bound as the root DN.
func (in *Instance) admin() (*ldap.Conn, error) {
	conn, err := in.dial()
	if err != nil {
		return nil, err
	}
	if err := conn.Bind(in.AdminDN, in.AdminPassword); err != nil {
		conn.Close()
		return nil, fmt.Errorf("binding as %s: %w", in.AdminDN, err)
	}
	return conn, nil
}

// seed adds the suffix, the containers and the default password policy.
func (in *Instance) seed() error {
	conn, err := in.admin()
	if err != nil {
		return err
	}
	defer conn.Close()
	entries := []struct {
		dn    string
		attrs map[string][]string
	}{
		{in.BaseDN, map[string][]string{"objectClass": {"dcObject", "organization"}, "dc": {"example"}, "o": {"example"}}},
		{in.PeopleDN, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"people"}}},
		{"ou=policies," + in.BaseDN, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"policies"}}},
		// slapo-ppolicy(5): pwdAccountLockedTime locks an account only
		// under a policy with pwdLockout TRUE; checked here with 2.5.13.
		// pwdMaxFailure 0 turns off locking after failed binds, so tests
		// that try wrong passwords do not lock their users.
		{in.PolicyDN, map[string][]string{
			"objectClass":   {"device", "pwdPolicy"},
			"cn":            {"default"},
			"pwdAttribute":  {"userPassword"},
			"pwdLockout":    {"TRUE"},
			"pwdMaxFailure": {"0"},
		}},
	}
	for _, e := range entries {
		if err := conn.Add(addRequest(e.dn, e.attrs)); err != nil {
			return fmt.Errorf("adding %s: %w", e.dn, err)
		}
	}
	return nil
}

func addRequest(dn string, attrs map[string][]string) *ldap.AddRequest {
	req := ldap.NewAddRequest(dn, nil)
	for name, values := range attrs {
		req.Attribute(name, values)
	}
	return req
}

// UserDN returns the DN AddUser gives uid.
func (in *Instance) UserDN(uid string) string {
	return "uid=" + ldap.EscapeDN(uid) + "," + in.PeopleDN
}

// AddUser adds an inetOrgPerson uid under PeopleDN and returns its DN.
// userPassword is stored as given: pass a stored value such as
// "{SSHA}…", "{SSHA512}…" or "{CRYPT}$6$…" (a cleartext value would be
// hashed by ppolicy_hash_cleartext). Empty mail or userPassword leaves the
// attribute out.
func (in *Instance) AddUser(t testing.TB, uid, mail, userPassword string) string {
	t.Helper()
	dn := in.UserDN(uid)
	attrs := map[string][]string{
		"objectClass": {"inetOrgPerson"},
		"uid":         {uid},
		"cn":          {uid},
		"sn":          {uid},
	}
	if mail != "" {
		attrs["mail"] = []string{mail}
	}
	if userPassword != "" {
		attrs["userPassword"] = []string{userPassword}
	}
	in.Add(t, dn, attrs)
	return dn
}

// Add adds an entry as the root DN; an error fails the test.
func (in *Instance) Add(t testing.TB, dn string, attrs map[string][]string) {
	t.Helper()
	conn, err := in.admin()
	if err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	defer conn.Close()
	if err := conn.Add(addRequest(dn, attrs)); err != nil {
		t.Fatalf("ldaptest: adding %s: %v", dn, err)
	}
}

// SetAttr replaces attr of dn with values, or deletes it when values is
// empty, as the root DN with the Relax control, so that operational
// attributes such as pwdChangedTime and pwdAccountLockedTime can be set
// directly. An error fails the test.
func (in *Instance) SetAttr(t testing.TB, dn, attr string, values ...string) {
	t.Helper()
	conn, err := in.admin()
	if err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	defer conn.Close()
	req := ldap.NewModifyRequest(dn, []ldap.Control{ldap.NewControlString(relaxOID, true, "")})
	if len(values) == 0 {
		req.Delete(attr, nil)
	} else {
		req.Replace(attr, values)
	}
	if err := conn.Modify(req); err != nil {
		t.Fatalf("ldaptest: setting %s of %s: %v", attr, dn, err)
	}
}

// Bind tries a simple bind as dn with password on a new connection and
// returns the result: nil on success, an *ldap.Error with result code 49
// (invalidCredentials) for a wrong password or a locked account.
func (in *Instance) Bind(dn, password string) error {
	conn, err := in.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Bind(dn, password)
}

// Entry reads dn as the root DN with its user and operational attributes
// ("*" and "+"). It returns nil when dn does not exist; other errors fail
// the test.
func (in *Instance) Entry(t testing.TB, dn string) map[string][]string {
	t.Helper()
	conn, err := in.admin()
	if err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	defer conn.Close()
	res, err := conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		0, 10, false, "(objectClass=*)", []string{"*", "+"}, nil))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return nil
	}
	if err != nil {
		t.Fatalf("ldaptest: reading %s: %v", dn, err)
	}
	if len(res.Entries) != 1 {
		t.Fatalf("ldaptest: reading %s: %d entries", dn, len(res.Entries))
	}
	m := make(map[string][]string)
	for _, a := range res.Entries[0].Attributes {
		m[a.Name] = a.Values
	}
	return m
}

// Log returns slapd's log so far.
func (in *Instance) Log() string {
	b, err := os.ReadFile(in.LogFile)
	if err != nil {
		return ""
	}
	return string(b)
}

func (in *Instance) cleanup(t testing.TB) {
	if err := in.stop(); err != nil {
		t.Errorf("ldaptest: stopping slapd: %v", err)
	}
	if t.Failed() {
		t.Logf("ldaptest: slapd log tail (%s):\n%s", in.LogFile, tail(in.Log(), 60))
		if os.Getenv("LDAPTEST_KEEP") != "" {
			t.Logf("ldaptest: kept %s (LDAPTEST_KEEP)", in.Dir)
			return
		}
	}
	if err := os.RemoveAll(in.Dir); err != nil {
		t.Errorf("ldaptest: %v", err)
	}
}

// stop sends slapd SIGTERM and waits for it to exit, which it does after
// finishing running operations and closing the database; SIGKILL after
// 10 s.
func (in *Instance) stop() error {
	if in.cmd == nil {
		return nil
	}
	if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-in.exited:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = in.cmd.Process.Kill()
	<-in.exited
	return errors.New("slapd ignored SIGTERM for 10s; killed it")
}

// SSHA returns the {SSHA} value of password with a random 8-byte salt:
// base64(SHA-1(password + salt) + salt), as slappasswd -h {SSHA} writes.
func SSHA(password string) string {
	salt := randomBytes(8)
	h := sha1.New()
	h.Write([]byte(password))
	h.Write(salt)
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(h.Sum(nil), salt...))
}

// SSHA512 returns the {SSHA512} value of password with a random 8-byte
// salt: base64(SHA-512(password + salt) + salt), as pw-sha2 writes. slapd
// verifies it only with the pw-sha2 module (Instance.SHA2).
func SSHA512(password string) string {
	salt := randomBytes(8)
	h := sha512.New()
	h.Write([]byte(password))
	h.Write(salt)
	return "{SSHA512}" + base64.StdEncoding.EncodeToString(append(h.Sum(nil), salt...))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return b
}

func randomHex(n int) string {
	return hex.EncodeToString(randomBytes(n))
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
