package dovecottest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/testnet"
)

// Standard locations of the Debian dovecot-core package. They are not taken
// from PATH so that a test never runs something else by accident.
const (
	dovecotBin = "/usr/sbin/dovecot"
	doveadmBin = "/usr/bin/doveadm"
)

// InstanceName is the instance_name of every test Dovecot. Dovecot prefixes
// its process titles with it (dovecottest/imap), so ps tells a test
// instance from a system Dovecot.
const InstanceName = "dovecottest"

// The users Dovecot's processes run as. dovenull and dovecot come with the
// dovecot-core package; mail is accessed as nobody:nogroup, which no
// other test daemon writes with.
const (
	loginUser    = "dovenull"
	internalUser = "dovecot"
	mailUser     = "nobody"
	mailGroup    = "nogroup"
)

// readyTimeout bounds how long Start waits for IMAP and the doveadm API to
// answer. Dovecot is ready in a few tens of milliseconds; the margin is for
// a loaded 2-core CI machine.
const readyTimeout = 15 * time.Second

// User is one passdb entry.
type User struct {
	// Name is the login name, as written in the passwd-file
	// ("alice@example.com"). Dovecot lower-cases login names before the
	// lookup (auth_username_format = %Lu), so use lower case.
	Name string
	// Password is the stored password. A value that starts with
	// "{SCHEME}" ({SHA512-CRYPT}$6$…, {SSHA512}…, {PLAIN}…) is written as
	// is; anything else is taken as plain text and written as {PLAIN}.
	Password string
	// Extra is the passwd-file's extra-fields column, space-separated
	// key=value pairs such as "nologin=y"; usually empty.
	Extra string
}

// Options configures an Instance. The zero value is a Dovecot without
// users.
type Options struct {
	// Users are written to the passwd-file (Instance.PasswdFile).
	Users []User
	// DisableAuthCache sets auth_cache_size = 0. By default the cache is
	// on (1M, one hour), as on most production servers; Dovecot 2.3.19
	// does not use it for a passwd-file with a fixed path such as
	// PasswdFile.
	DisableAuthCache bool
}

// Instance is a running private Dovecot. Its processes are stopped and its
// directory removed when the test ends.
type Instance struct {
	// Dir is the temporary directory holding everything below.
	Dir string
	// ConfigFile is the dovecot.conf: the FILE of `doveadm -c FILE`.
	ConfigFile string
	// BaseDir is base_dir, where master keeps its sockets and pid file.
	BaseDir string
	// LogFile is log_path.
	LogFile string
	// StdioFile receives master's stdout and stderr: errors from before
	// log_path is open, such as configuration errors.
	StdioFile string
	// PasswdFile is the passwd-file passdb.
	PasswdFile string
	// MailDir holds the users' homes (MailDir/domain/user) and maildirs.
	MailDir string
	// IMAPAddr is the 127.0.0.1:port of the IMAP listener (no TLS,
	// plaintext LOGIN allowed).
	IMAPAddr string
	// DoveadmURL is the doveadm HTTP API endpoint,
	// http://127.0.0.1:port/doveadm/v1.
	DoveadmURL string
	// APIKey is doveadm_api_key; APIKeyFile holds it (mode 0600) for
	// clients that read the key from a file.
	APIKey     string
	APIKeyFile string
	// DoveadmPassword is doveadm_password, for HTTP Basic doveadm:PASSWORD.
	DoveadmPassword string
	// StartupTime is how long Start took, configuration included.
	StartupTime time.Duration

	opts     Options
	ids      ids
	cmd      *exec.Cmd
	done     chan struct{} // closed when master has exited and been reaped
	waitErr  error         // master's exit, valid once done is closed
	imapPort int
	httpPort int
}

// ids are the numeric users and groups the instance needs.
type ids struct {
	mailUID, mailGID int
	internalGID      int
}

// Start starts a private Dovecot as described by opts. It skips the test
// when not root, in -short mode, or when dovecot-core is not installed.
// t.Cleanup stops Dovecot and removes its directory; when the test failed
// it logs the tail of the log first.
func Start(t testing.TB, opts Options) *Instance {
	t.Helper()
	begin := time.Now()
	if testing.Short() {
		t.Skip("dovecottest: real Dovecot skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("dovecottest: a private Dovecot needs root (dovecot -c FILE); run as root after scripts/install-test-deps.sh")
	}
	for _, bin := range []string{dovecotBin, doveadmBin} {
		if _, err := os.Stat(bin); err != nil {
			t.Skipf("dovecottest: %s not installed; run scripts/install-test-deps.sh", bin)
		}
	}
	ids, err := lookupIDs()
	if err != nil {
		t.Skipf("dovecottest: %v; run scripts/install-test-deps.sh", err)
	}
	for _, u := range opts.Users {
		if err := checkUser(u); err != nil {
			t.Fatalf("dovecottest: %v", err)
		}
	}

	in, err := launch(opts, ids)
	if in != nil {
		t.Cleanup(func() { in.cleanup(t) })
	}
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	in.StartupTime = time.Since(begin)
	t.Logf("dovecottest: Dovecot started in %v: imap %s, doveadm %s, dir %s",
		in.StartupTime.Round(time.Millisecond), in.IMAPAddr, in.DoveadmURL, in.Dir)
	return in
}

func checkUser(u User) error {
	switch {
	case u.Name == "":
		return errors.New("a User without a Name")
	case strings.ContainsAny(u.Name, ":\r\n\x00") || strings.HasPrefix(u.Name, "#"):
		return fmt.Errorf("user name %q cannot be written to a passwd-file", u.Name)
	case strings.ContainsAny(u.Password, ":\r\n\x00"):
		return fmt.Errorf("the password of %q cannot be written to a passwd-file (':' or a line break)", u.Name)
	case strings.ContainsAny(u.Extra, "\r\n\x00"):
		return fmt.Errorf("the extra fields of %q hold a line break", u.Name)
	}
	return nil
}

func lookupIDs() (ids, error) {
	var r ids
	for _, name := range []string{loginUser, internalUser} {
		if _, err := user.Lookup(name); err != nil {
			return r, fmt.Errorf("no %s user: %w", name, err)
		}
	}
	var err error
	if r.mailUID, err = lookupUID(mailUser); err != nil {
		return r, err
	}
	if r.mailGID, err = lookupGID(mailGroup); err != nil {
		return r, err
	}
	if r.internalGID, err = lookupGID(internalUser); err != nil {
		return r, err
	}
	return r, nil
}

func lookupUID(name string) (int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, fmt.Errorf("no %s user: %w", name, err)
	}
	return strconv.Atoi(u.Uid)
}

func lookupGID(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("no %s group: %w", name, err)
	}
	return strconv.Atoi(g.Gid)
}

// launch creates the instance's directory, writes its configuration and
// starts Dovecot. A non-nil Instance must be cleaned up even with an error.
func launch(opts Options, ids ids) (*Instance, error) {
	// Not t.TempDir: its parent is 0700, and auth (user dovecot) must read
	// the passwd-file and imap (user nobody) its maildir.
	dir, err := os.MkdirTemp("", "dovecottest-")
	if err != nil {
		return nil, err
	}
	in := &Instance{
		Dir:        dir,
		ConfigFile: filepath.Join(dir, "dovecot.conf"),
		BaseDir:    filepath.Join(dir, "run"),
		LogFile:    filepath.Join(dir, "dovecot.log"),
		StdioFile:  filepath.Join(dir, "stdio.log"),
		PasswdFile: filepath.Join(dir, "passwd"),
		MailDir:    filepath.Join(dir, "mail"),
		APIKeyFile: filepath.Join(dir, "doveadm-api.key"),
		opts:       opts,
		ids:        ids,
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return in, err
	}
	for _, d := range []string{in.MailDir, in.stateDir()} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return in, err
		}
	}
	if err := os.Chown(in.MailDir, ids.mailUID, ids.mailGID); err != nil {
		return in, err
	}
	if err := in.writePasswd(); err != nil {
		return in, err
	}
	if in.APIKey, err = randomHex(16); err != nil {
		return in, err
	}
	if in.DoveadmPassword, err = randomHex(16); err != nil {
		return in, err
	}
	if err := os.WriteFile(in.APIKeyFile, []byte(in.APIKey+"\n"), 0o600); err != nil {
		return in, err
	}

	// Free ports are found by listening on :0 and closing; another process
	// may take one before master binds it, so a bind failure is retried
	// with new ports.
	const attempts = 3
	for attempt := 1; ; attempt++ {
		if err := in.pickPorts(); err != nil {
			return in, err
		}
		if err := os.WriteFile(in.ConfigFile, []byte(in.config()), 0o600); err != nil {
			return in, err
		}
		err := in.startMaster()
		if err == nil {
			err = in.waitReady()
		}
		if err == nil {
			return in, nil
		}
		if stopErr := in.stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		logs := in.StdioLog() + in.Log()
		if attempt < attempts && strings.Contains(logs, "Address already in use") {
			continue
		}
		return in, fmt.Errorf("%w\n%s", err, in.logTails(40))
	}
}

func (in *Instance) stateDir() string { return filepath.Join(in.Dir, "state") }

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// writePasswd writes opts.Users as user:password::::::extra lines, owned by
// root and readable by the group of auth's user, like a real passdb.
func (in *Instance) writePasswd() error {
	var b strings.Builder
	b.WriteString("# generated by internal/dovecottest\n")
	for _, u := range in.opts.Users {
		pw := u.Password
		if !strings.HasPrefix(pw, "{") {
			pw = "{PLAIN}" + pw
		}
		fmt.Fprintf(&b, "%s:%s::::::%s\n", u.Name, pw, u.Extra)
	}
	if err := os.WriteFile(in.PasswdFile, []byte(b.String()), 0o640); err != nil {
		return err
	}
	return os.Chown(in.PasswdFile, 0, in.ids.internalGID)
}

func (in *Instance) pickPorts() error {
	var err error
	if in.imapPort, err = freePort(); err != nil {
		return err
	}
	if in.httpPort, err = freePort(); err != nil {
		return err
	}
	in.IMAPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(in.imapPort))
	in.DoveadmURL = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(in.httpPort)) + "/doveadm/v1"
	return nil
}

func freePort() (int, error) {
	a, err := testnet.FreeAddr()
	if err != nil {
		return 0, err
	}
	ap, err := netip.ParseAddrPort(a)
	if err != nil {
		return 0, err
	}
	return int(ap.Port()), nil
}

// config returns the generated dovecot.conf. It includes nothing from
// /etc/dovecot.
func (in *Instance) config() string {
	cacheSize := "1M"
	if in.opts.DisableAuthCache {
		cacheSize = "0"
	}
	return fmt.Sprintf(`# generated by internal/dovecottest
instance_name = %[1]s
base_dir = %[2]s
state_dir = %[3]s
log_path = %[4]s
protocols = imap
listen = 127.0.0.1

ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes

# REFERENCE §8: without these one failed login delays the next ones from
# 127.0.0.1 by seconds. Dovecot still answers a failure only on its next
# 500 ms failure-queue tick (AUTH_FAILURE_DELAY_CHECK_MSECS).
auth_failure_delay = 0
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}

auth_cache_size = %[5]s
auth_cache_ttl = 1 hour
auth_cache_negative_ttl = 1 hour

default_login_user = %[6]s
default_internal_user = %[7]s
first_valid_uid = %[8]d
last_valid_uid = %[8]d
first_valid_gid = %[9]d
last_valid_gid = %[9]d

passdb {
  driver = passwd-file
  args = %[10]s
}
userdb {
  driver = static
  args = uid=%[8]d gid=%[9]d home=%[11]s/%%d/%%n
}
mail_location = maildir:~/Maildir

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %[12]d
  }
  inet_listener imaps {
    port = 0
  }
}

doveadm_api_key = %[13]s
doveadm_password = %[14]s
service doveadm {
  inet_listener http {
    address = 127.0.0.1
    port = %[15]d
  }
}
`, InstanceName, in.BaseDir, in.stateDir(), in.LogFile, cacheSize,
		loginUser, internalUser, in.ids.mailUID, in.ids.mailGID,
		in.PasswdFile, in.MailDir, in.imapPort,
		in.APIKey, in.DoveadmPassword, in.httpPort)
}

// startMaster starts `dovecot -c FILE -F` as a child in its own process
// group, with stdio on StdioFile (REFERENCE §8: never the test's pipes).
func (in *Instance) startMaster() error {
	out, err := os.OpenFile(in.StdioFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(dovecotBin, "-c", in.ConfigFile, "-F")
	cmd.Dir = in.Dir
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting dovecot: %w", err)
	}
	in.cmd = cmd
	in.done = make(chan struct{})
	go func() {
		in.waitErr = cmd.Wait()
		close(in.done)
	}()
	return nil
}

// waitReady waits until imap-login greets on IMAPAddr and the doveadm API
// answers an authenticated GET (its command list), or master exits.
func (in *Instance) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	imapOK := false
	var last error
	for {
		select {
		case <-in.done:
			return fmt.Errorf("dovecot exited during start: %v", in.waitErr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dovecot not ready after %v: %v", readyTimeout, last)
		}
		if !imapOK {
			last = greets(in.IMAPAddr)
			imapOK = last == nil
		}
		if imapOK {
			if last = in.doveadmAnswers(hc); last == nil {
				return nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func greets(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading the IMAP greeting: %w", err)
	}
	if !strings.HasPrefix(line, "* OK") {
		return fmt.Errorf("IMAP greeting %q", strings.TrimSpace(line))
	}
	return nil
}

func (in *Instance) doveadmAnswers(hc *http.Client) error {
	req, err := http.NewRequest(http.MethodGet, in.DoveadmURL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "X-Dovecot-API "+base64.StdEncoding.EncodeToString([]byte(in.APIKey)))
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("doveadm API: %s", resp.Status)
	}
	return nil
}

// Login connects to IMAPAddr and logs in with LOGIN. A refused login is an
// *IMAPError with Status "NO"; the connection is then closed.
func (in *Instance) Login(user, password string) (*IMAPConn, error) {
	c, err := DialIMAP(in.IMAPAddr)
	if err != nil {
		return nil, err
	}
	if err := c.Login(user, password); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Command returns an *exec.Cmd that runs `doveadm -c ConfigFile args...`
// against this instance.
func (in *Instance) Command(args ...string) *exec.Cmd {
	return exec.Command(doveadmBin, append([]string{"-c", in.ConfigFile}, args...)...)
}

// HashPassword returns `doveadm pw -s scheme -p plain`: a stored password
// such as {SHA512-CRYPT}$6$…, with a fresh salt.
func (in *Instance) HashPassword(t testing.TB, scheme, plain string) string {
	t.Helper()
	out, err := in.Command("pw", "-s", scheme, "-p", plain).Output()
	if err != nil {
		t.Fatalf("dovecottest: doveadm pw -s %s: %v", scheme, err)
	}
	return strings.TrimSpace(string(out))
}

// AuthTest runs `doveadm auth test user password`, which authenticates over
// the auth-client socket the way Postfix's smtpd does for SMTP AUTH (an
// auth-only client, unlike imap-login). ok is whether Dovecot accepted the
// credentials; out is doveadm's report with the passdb's extra fields.
func (in *Instance) AuthTest(user, password string) (ok bool, out string, err error) {
	b, err := in.Command("auth", "test", user, password).CombinedOutput()
	out = string(b)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return true, out, nil
	case errors.As(err, &exit) && exit.ExitCode() == 77: // EX_NOPERM: auth failed
		return false, out, nil
	}
	return false, out, fmt.Errorf("doveadm auth test: %w: %s", err, out)
}

// Log returns the instance's log (log_path) so far.
func (in *Instance) Log() string {
	b, _ := os.ReadFile(in.LogFile)
	return string(b)
}

// StdioLog returns what master wrote to its stdout and stderr.
func (in *Instance) StdioLog() string {
	b, _ := os.ReadFile(in.StdioFile)
	return string(b)
}

func (in *Instance) logTails(n int) string {
	s := "log " + in.LogFile + ":\n" + tail(in.Log(), n)
	if stdio := strings.TrimSpace(in.StdioLog()); stdio != "" {
		s += "\nstdio " + in.StdioFile + ":\n" + tail(stdio, n)
	}
	return s
}

func (in *Instance) cleanup(t testing.TB) {
	if err := in.stop(); err != nil {
		t.Errorf("dovecottest: stopping Dovecot: %v", err)
	}
	if t.Failed() {
		t.Logf("dovecottest: %s", in.logTails(60))
		if os.Getenv("DOVECOTTEST_KEEP") != "" {
			t.Logf("dovecottest: kept %s (DOVECOTTEST_KEEP)", in.Dir)
			return
		}
	}
	if err := os.RemoveAll(in.Dir); err != nil {
		t.Errorf("dovecottest: %v", err)
	}
}

// stop signals master and every process of its group with SIGTERM and
// waits until master has been reaped and no other member is alive.
//
// Signalling the whole group rather than master alone (or `doveadm stop`)
// is what makes a stop quick: master alone exits only after its log
// process has lingered for about a second. Even so, master's shutdown
// (services_monitor_wait) sleeps a whole second when a child had not yet
// exited at its first check; once every child is gone nothing is left for
// it to do, so that sleep is cut short with SIGKILL. Children re-parented
// to init may stay zombies for a while; a zombie counts as gone
// (REFERENCE §8).
func (in *Instance) stop() error {
	if in.cmd == nil {
		return nil
	}
	pgid := in.cmd.Process.Pid
	defer func() { in.cmd = nil }()
	begin := time.Now()
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	for {
		masterDone := false
		select {
		case <-in.done:
			masterDone = true
		default:
		}
		children := slices.DeleteFunc(groupMembers(pgid), func(pid int) bool { return pid == pgid })
		switch waited := time.Since(begin); {
		case masterDone && len(children) == 0:
			return nil
		case !masterDone && len(children) == 0 && waited > 50*time.Millisecond:
			_ = syscall.Kill(pgid, syscall.SIGKILL)
		case waited > 10*time.Second:
			// Only our instance's group: pgid is the master we started.
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			if in.waitGone(pgid, 5*time.Second) {
				return errors.New("dovecot ignored SIGTERM for 10s; killed its process group")
			}
			return fmt.Errorf("processes %v of process group %d survive SIGKILL", groupMembers(pgid), pgid)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (in *Instance) waitGone(pgid int, timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-in.done:
	case <-timer.C:
		return false
	}
	for len(groupMembers(pgid)) != 0 {
		select {
		case <-timer.C:
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
	return true
}

// groupMembers lists the live (not zombie) processes in process group pgid,
// from /proc.
func groupMembers(pgid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		state, pg, ok := procStat(pid)
		if ok && pg == pgid && state != 'Z' && state != 'X' {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procStat reads state and pgrp from /proc/PID/stat. The command name is in
// parentheses and may itself contain spaces or parentheses.
func procStat(pid int) (state byte, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, false
	}
	pgrp, err = strconv.Atoi(f[2])
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], pgrp, true
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
