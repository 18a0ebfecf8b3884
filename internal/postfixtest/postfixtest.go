package postfixtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/testnet"
)

// Standard locations of the Debian postfix package. They are not taken from
// PATH so that a test never runs something else by accident.
const (
	postfixBin    = "/usr/sbin/postfix"
	postconfBin   = "/usr/sbin/postconf"
	commandDir    = "/usr/sbin"
	swaksBin      = "/usr/bin/swaks"
	saslpasswdBin = "/usr/sbin/saslpasswd2"
)

// Hostname is the instance's myhostname. Users named without a domain are
// SASL users of this realm.
const Hostname = "mx.postfixtest.example"

// Options configures an Instance. The zero value is a plain relay for
// 127.0.0.0/8 without milter, policy service or SASL.
type Options struct {
	// MilterAddr is the "127.0.0.1:port" of a milter for smtpd_milters;
	// empty for none.
	MilterAddr string
	// MilterDefaultAction is milter_default_action; "" means "tempfail".
	MilterDefaultAction string
	// PolicyAddr is the "127.0.0.1:port" of a policy service, asked in
	// smtpd_recipient_restrictions and smtpd_end_of_data_restrictions;
	// empty for none.
	PolicyAddr string
	// SASL adds a submission smtpd (Instance.SubmissionAddr) that offers
	// AUTH PLAIN and LOGIN for Users and relays only for authenticated
	// clients.
	SASL bool
	// Users maps SASL user names ("alice" or "alice@example.com") to
	// passwords. Required with SASL.
	Users map[string]string
	// TrustedNetworks is mynetworks; "" means "127.0.0.0/8".
	TrustedNetworks string
	// ExtraMainCF is written to main.cf after everything else, so it
	// overrides the generated settings.
	ExtraMainCF map[string]string
	// ContentFilter routes every message through an after-queue content
	// filter (Postfix FILTER_README: content_filter = smtp:[127.0.0.1]:port)
	// that hands it back to a re-injection smtpd, Instance.ReinjectAddr,
	// as amavis does. Filter is the filter: nil passes messages on
	// unchanged.
	ContentFilter bool
	Filter        func(from string, to []string, data []byte) []byte
	// ReinjectOptions are the re-injection service's master.cf options
	// ("-o name=value" lines). Empty: FILTER_README's minimum,
	// "-o content_filter=", so the service inherits main.cf's milters
	// and restrictions.
	ReinjectOptions []string
}

// Instance is a running private Postfix. Its directories are removed and its
// processes stopped when the test ends.
type Instance struct {
	// Dir is the temporary directory holding everything below.
	Dir string
	// ConfigDir holds main.cf and master.cf: the DIR of `postsuper -c DIR`.
	ConfigDir string
	// QueueDir is queue_directory.
	QueueDir string
	// DataDir is data_directory.
	DataDir string
	// LogFile is maillog_file.
	LogFile string
	// SMTPAddr is the 127.0.0.1:port of the plain smtpd, which relays for
	// Options.TrustedNetworks (and offers no AUTH).
	SMTPAddr string
	// SubmissionAddr is the 127.0.0.1:port of the SASL smtpd; empty
	// without Options.SASL.
	SubmissionAddr string
	// ReinjectAddr is the 127.0.0.1:port of the smtpd the content filter
	// hands messages back to; empty without Options.ContentFilter.
	ReinjectAddr string
	// Filter is the running content filter; nil without
	// Options.ContentFilter.
	Filter *Filter
	// Sink receives every message the instance delivers.
	Sink *Sink
	// StartupTime is how long Start took, sink and config included.
	StartupTime time.Duration

	opts      Options
	masterPID int
}

// Start starts a private Postfix as described by opts, with a new Sink as
// its relayhost. It skips the test when not root, in -short mode, or when
// the packages from scripts/install-test-deps.sh are missing. t.Cleanup
// stops Postfix and removes its directory; when the test failed it logs the
// tail of the maillog first.
func Start(t testing.TB, opts Options) *Instance {
	t.Helper()
	begin := time.Now()
	if testing.Short() {
		t.Skip("postfixtest: real Postfix skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("postfixtest: a private Postfix needs root (postfix -c DIR); run as root after scripts/install-test-deps.sh")
	}
	need := []string{postfixBin, postconfBin}
	if opts.SASL {
		need = append(need, saslpasswdBin)
	}
	for _, bin := range need {
		if _, err := os.Stat(bin); err != nil {
			t.Skipf("postfixtest: %s not installed; run scripts/install-test-deps.sh", bin)
		}
	}
	if opts.SASL && len(opts.Users) == 0 {
		t.Fatal("postfixtest: Options.SASL needs Options.Users")
	}
	if _, _, err := lookupPostfix(); err != nil {
		t.Skipf("postfixtest: %v; run scripts/install-test-deps.sh", err)
	}

	sink := StartSink(t)
	var filter *Filter
	if opts.ContentFilter {
		filter = startFilter(t, opts.Filter)
	}
	in, err := launch(opts, sink, filter)
	if in != nil {
		t.Cleanup(func() { in.cleanup(t) })
	}
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	in.StartupTime = time.Since(begin)
	t.Logf("postfixtest: Postfix started in %v: smtp %s, submission %q, sink %s, dir %s",
		in.StartupTime.Round(time.Millisecond), in.SMTPAddr, in.SubmissionAddr, sink.Addr, in.Dir)
	return in
}

// launch creates the instance's directory, writes its configuration and
// starts Postfix. A non-nil Instance must be cleaned up even with an error.
func launch(opts Options, sink *Sink, filter *Filter) (*Instance, error) {
	postfixUID, postfixGID, err := lookupPostfix()
	if err != nil {
		return nil, err
	}
	// Not t.TempDir: its parent is 0700 and Postfix daemons run as the
	// postfix user, which must reach the queue, the log and the sasldb.
	dir, err := os.MkdirTemp("", "postfixtest-")
	if err != nil {
		return nil, err
	}
	in := &Instance{
		Dir:       dir,
		ConfigDir: filepath.Join(dir, "etc"),
		QueueDir:  filepath.Join(dir, "spool"),
		DataDir:   filepath.Join(dir, "data"),
		LogFile:   filepath.Join(dir, "maillog"),
		Sink:      sink,
		Filter:    filter,
		opts:      opts,
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return in, err
	}
	for _, d := range []string{in.ConfigDir, in.QueueDir, in.DataDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return in, err
		}
	}
	// REFERENCE §8: master dies on its lock file unless data_directory
	// belongs to postfix.
	if err := os.Chown(in.DataDir, postfixUID, postfixGID); err != nil {
		return in, err
	}
	if opts.SASL {
		if err := in.writeSASL(postfixGID); err != nil {
			return in, err
		}
	}

	// Free ports are found by listening on :0 and closing; another process
	// may take one before master binds it, so a bind failure is retried
	// with new ports. `postfix start` runs the checks of `postfix check`
	// (creating the queue tree) and returns once master has bound every
	// listener (master -w).
	const attempts = 3
	for attempt := 1; ; attempt++ {
		if err := in.pickPorts(); err != nil {
			return in, err
		}
		if err := in.writeConfig(); err != nil {
			return in, err
		}
		out, err := in.postfix("start")
		if err == nil {
			break
		}
		log := in.MailLog()
		if attempt < attempts && strings.Contains(log, "Address already in use") {
			continue
		}
		return in, fmt.Errorf("postfix start: %w\n%s\nmaillog:\n%s", err, out, tail(log, 40))
	}
	pid, err := in.readMasterPID()
	if err != nil {
		return in, fmt.Errorf("%w\nmaillog:\n%s", err, tail(in.MailLog(), 40))
	}
	in.masterPID = pid
	if filter != nil {
		addr := in.ReinjectAddr
		filter.target.Store(&addr)
	}
	return in, nil
}

func lookupPostfix() (uid, gid int, err error) {
	u, err := user.Lookup("postfix")
	if err != nil {
		return 0, 0, fmt.Errorf("no postfix user: %w", err)
	}
	g, err := user.LookupGroup("postfix")
	if err != nil {
		return 0, 0, fmt.Errorf("no postfix group: %w", err)
	}
	uid, err = strconv.Atoi(u.Uid)
	if err != nil {
		return 0, 0, fmt.Errorf("postfix uid %q: %w", u.Uid, err)
	}
	gid, err = strconv.Atoi(g.Gid)
	if err != nil {
		return 0, 0, fmt.Errorf("postfix gid %q: %w", g.Gid, err)
	}
	return uid, gid, nil
}

func (in *Instance) pickPorts() error {
	var err error
	if in.SMTPAddr, err = freeAddr(); err != nil {
		return err
	}
	in.SubmissionAddr, in.ReinjectAddr = "", ""
	if in.opts.ContentFilter {
		if in.ReinjectAddr, err = freeAddr(); err != nil {
			return err
		}
	}
	if in.opts.SASL {
		if in.SubmissionAddr, err = freeAddr(); err != nil {
			return err
		}
	}
	return nil
}

func freeAddr() (string, error) { return testnet.FreeAddr() }

// mainCF returns the generated main.cf settings.
func (in *Instance) mainCF() map[string]string {
	o := in.opts
	mynetworks := o.TrustedNetworks
	if mynetworks == "" {
		mynetworks = "127.0.0.0/8"
	}
	cf := map[string]string{
		"compatibility_level": "3.6",
		"queue_directory":     in.QueueDir,
		"data_directory":      in.DataDir,
		// No syslog on these machines (REFERENCE §8): log through the
		// postlog service to a file under an allowed prefix.
		"maillog_file":          in.LogFile,
		"maillog_file_prefixes": in.Dir,
		"syslog_name":           "postfix",

		"myhostname":      Hostname,
		"mydomain":        "postfixtest.example",
		"myorigin":        "$myhostname",
		"mydestination":   "",
		"relay_domains":   "",
		"mynetworks":      mynetworks,
		"inet_interfaces": "127.0.0.1",
		"inet_protocols":  "ipv4",

		// Everything goes to the sink, without DNS: a bracketed IP
		// address is a literal next hop, and smtpd does not look up the
		// client's name.
		"relayhost":              "[" + hostOf(in.Sink.Addr) + "]:" + portOf(in.Sink.Addr),
		"smtp_dns_support_level": "disabled",
		"smtp_host_lookup":       "native",
		"lmtp_host_lookup":       "native",
		"smtpd_peername_lookup":  "no",
		// One transaction per message however many recipients (the
		// default 50 splits a 60-recipient message in two).
		"smtp_destination_recipient_limit":    "1000",
		"default_destination_recipient_limit": "1000",

		"alias_maps":           "",
		"alias_database":       "",
		"local_recipient_maps": "",
		"biff":                 "no",
		"append_dot_mydomain":  "no",
		"readme_directory":     "no",

		// Deferred mail is retried within seconds rather than minutes.
		// minimal_backoff_time is 2s, not 1s: qmgr takes a deferred file
		// whose time stamp is at most 1s in the future (qmgr_active_feed),
		// so with 1s a queue scan can pick the message up again while the
		// delivery agent that deferred it still holds its lock (agents
		// reply before they close the file); qmgr then logs "skipped,
		// still being delivered" and parks the message in incoming for
		// 60s, where only `postqueue -f` finds it.
		"queue_run_delay":      "1s",
		"minimal_backoff_time": "2s",
		"maximal_backoff_time": "2s",
	}
	if o.MilterAddr != "" {
		action := o.MilterDefaultAction
		if action == "" {
			action = "tempfail"
		}
		cf["smtpd_milters"] = "inet:" + o.MilterAddr
		cf["milter_default_action"] = action
		cf["milter_protocol"] = "6"
		// Postfix's default list, spelled out: the queue id and the
		// SASL identity are what the milter keys on.
		cf["milter_mail_macros"] = "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}"
	}
	if o.PolicyAddr != "" {
		// try_limit=1: an unreachable policy service costs one failed
		// connect per check, not two tries a second apart (REFERENCE §8).
		check := "check_policy_service { inet:" + o.PolicyAddr + ", timeout=10s, default_action=DUNNO, try_limit=1 }"
		cf["smtpd_recipient_restrictions"] = check + ", permit_sasl_authenticated, permit_mynetworks, reject_unauth_destination"
		cf["smtpd_end_of_data_restrictions"] = check
	}
	if o.ContentFilter {
		cf["content_filter"] = "smtp:[" + hostOf(in.Filter.Addr) + "]:" + portOf(in.Filter.Addr)
	}
	if o.SASL {
		cf["smtpd_sasl_type"] = "cyrus"
		cf["smtpd_sasl_path"] = "smtpd"
		cf["cyrus_sasl_config_path"] = in.saslDir()
		cf["smtpd_sasl_security_options"] = "noanonymous"
	}
	for k, v := range o.ExtraMainCF {
		cf[k] = v
	}
	return cf
}

// masterCF returns the generated master.cf: Debian's services without
// chroot (REFERENCE §8), the listeners on our ports and the postlog service.
func (in *Instance) masterCF() string {
	var b strings.Builder
	b.WriteString("# generated by internal/postfixtest\n")
	fmt.Fprintf(&b, "%s inet n - n - - smtpd\n", in.SMTPAddr)
	if in.SubmissionAddr != "" {
		fmt.Fprintf(&b, "%s inet n - n - - smtpd\n", in.SubmissionAddr)
		b.WriteString("  -o syslog_name=postfix/submission\n")
		b.WriteString("  -o smtpd_sasl_auth_enable=yes\n")
		b.WriteString("  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n")
	}
	if in.ReinjectAddr != "" {
		fmt.Fprintf(&b, "%s inet n - n - - smtpd\n", in.ReinjectAddr)
		b.WriteString("  -o syslog_name=postfix/reinject\n")
		opts := in.opts.ReinjectOptions
		if len(opts) == 0 {
			opts = []string{"-o content_filter="}
		}
		for _, o := range opts {
			fmt.Fprintf(&b, "  %s\n", o)
		}
	}
	b.WriteString(`pickup     unix  n - n 60    1 pickup
cleanup    unix  n - n -     0 cleanup
qmgr       unix  n - n 300   1 qmgr
rewrite    unix  - - n -     - trivial-rewrite
bounce     unix  - - n -     0 bounce
defer      unix  - - n -     0 bounce
trace      unix  - - n -     0 bounce
verify     unix  - - n -     1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -     - proxymap
proxywrite unix  - - n -     1 proxymap
smtp       unix  - - n -     - smtp
relay      unix  - - n -     - smtp
showq      unix  n - n -     - showq
error      unix  - - n -     - error
retry      unix  - - n -     - error
discard    unix  - - n -     - discard
local      unix  - n n -     - local
anvil      unix  - - n -     1 anvil
scache     unix  - - n -     1 scache
postlog    unix-dgram n - n - 1 postlogd
`)
	return b.String()
}

func (in *Instance) writeConfig() error {
	cf := in.mainCF()
	keys := make([]string, 0, len(cf))
	for k := range cf {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# generated by internal/postfixtest\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, cf[k])
	}
	if err := in.writeConfigFile("main.cf", b.String()); err != nil {
		return err
	}
	return in.writeConfigFile("master.cf", in.masterCF())
}

func (in *Instance) writeConfigFile(name, content string) error {
	path := filepath.Join(in.ConfigDir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return backdate(path)
}

// backdate sets a config file's mtime a few seconds into the past: Postfix
// commands wait in 300 ms steps while main.cf is younger than about 2 s
// (REFERENCE §8).
func backdate(path string) error {
	old := time.Now().Add(-5 * time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		return fmt.Errorf("back-dating %s: %w", path, err)
	}
	return nil
}

func hostOf(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// postfix runs `postfix -c DIR args...`.
func (in *Instance) postfix(args ...string) (string, error) {
	cmd := in.Command("postfix", args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Command returns an *exec.Cmd that runs the Postfix command name (postfix,
// postsuper, postqueue, postcat, postconf, ...) from /usr/sbin against this
// instance: `-c ConfigDir` comes first, then args.
func (in *Instance) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(commandDir, name), append([]string{"-c", in.ConfigDir}, args...)...)
	cmd.Env = in.PostfixCommandEnv()
	return cmd
}

// PostfixCommandEnv returns the environment for running Postfix commands
// against this instance: the current environment with MAIL_CONFIG set to
// ConfigDir, which every Postfix command honours like -c (as root).
func (in *Instance) PostfixCommandEnv() []string {
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MAIL_CONFIG=") {
			env = append(env, kv)
		}
	}
	return append(env, "MAIL_CONFIG="+in.ConfigDir)
}

// Run runs a Postfix command like Command and returns its combined output;
// a non-zero exit fails the test.
func (in *Instance) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := in.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("postfixtest: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// MailLog returns the instance's maillog so far.
func (in *Instance) MailLog() string {
	b, err := os.ReadFile(in.LogFile)
	if err != nil {
		return ""
	}
	return string(b)
}

// PostConf sets main.cf parameters with `postconf -e`; Reload makes the
// running instance use them.
func (in *Instance) PostConf(t testing.TB, settings map[string]string) {
	t.Helper()
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := []string{"-e"}
	for _, k := range keys {
		args = append(args, k+"="+settings[k])
	}
	in.Run(t, "postconf", args...)
	if err := backdate(filepath.Join(in.ConfigDir, "main.cf")); err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
}

// Reload runs `postfix reload` and waits until master has logged the
// reload: the command returns before master re-reads its configuration
// (REFERENCE §8).
func (in *Instance) Reload(t testing.TB) {
	t.Helper()
	before := strings.Count(in.MailLog(), "]: reload -- version")
	in.Run(t, "postfix", "reload")
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(in.MailLog(), "]: reload -- version") <= before {
		if time.Now().After(deadline) {
			t.Fatalf("postfixtest: no reload line in the maillog after 10s:\n%s", tail(in.MailLog(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (in *Instance) readMasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(in.QueueDir, "pid", "master.pid"))
	if err != nil {
		return 0, fmt.Errorf("reading master.pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("master.pid %q: %w", b, err)
	}
	return pid, nil
}

func (in *Instance) cleanup(t testing.TB) {
	if err := in.stop(); err != nil {
		t.Errorf("postfixtest: stopping Postfix: %v", err)
	}
	if t.Failed() {
		t.Logf("postfixtest: maillog tail (%s):\n%s", in.LogFile, tail(in.MailLog(), 60))
		if os.Getenv("POSTFIXTEST_KEEP") != "" {
			t.Logf("postfixtest: kept %s (POSTFIXTEST_KEEP)", in.Dir)
			return
		}
	}
	if err := os.RemoveAll(in.Dir); err != nil {
		t.Errorf("postfixtest: %v", err)
	}
}

// stop runs `postfix stop` and waits until master and every process of its
// process group are gone. master calls setsid, so the group id is master's
// pid and every daemon it forks is a member. A zombie counts as gone: once
// master exits its children are re-parented to init, which may reap late
// (REFERENCE §8).
func (in *Instance) stop() error {
	pgid := in.masterPID
	if pgid == 0 {
		// Start failed after master may have come up.
		pid, err := in.readMasterPID()
		if err != nil || !alive(pid) {
			return nil
		}
		pgid = pid
	}
	out, err := in.postfix("stop")
	if err != nil && len(groupMembers(pgid)) == 0 {
		// "not running": master died already.
		return nil
	}
	if waitGroupGone(pgid, 10*time.Second) {
		return nil
	}
	// Only our instance's group: pgid is the master we started.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if waitGroupGone(pgid, 5*time.Second) {
		return fmt.Errorf("postfix stop left processes behind; killed them (postfix stop: %v %s)", err, out)
	}
	return fmt.Errorf("processes %v of process group %d survive SIGKILL", groupMembers(pgid), pgid)
}

func waitGroupGone(pgid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if len(groupMembers(pgid)) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
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
		state, _, pg, ok := procStat(pid)
		if ok && pg == pgid && state != 'Z' && state != 'X' {
			pids = append(pids, pid)
		}
	}
	return pids
}

func alive(pid int) bool {
	state, _, _, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

// procStat reads state, ppid and pgrp from /proc/PID/stat. The command name
// is in parentheses and may itself contain spaces or parentheses.
func procStat(pid int) (state byte, ppid, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, 0, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, 0, false
	}
	return f[0][0], ppid, pgrp, true
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
