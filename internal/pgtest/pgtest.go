// Package pgtest starts a private, throw-away PostgreSQL server for tests:
// Debian's binaries (initdb and postgres of the installed major version,
// never looked up in PATH) on a free 127.0.0.1 port, a fresh cluster in a
// private directory with a random superuser password (scram-sha-256), its
// Unix socket in that directory, fsync off, and nothing of the system's
// cluster touched.
//
// One server serves one top-level test; NewDB gives each subtest an empty
// database of its own, so a conformance suite runs against one server
// without its subtests seeing each other's rows.
//
// A test can stop the server (Stop, or Kill as a crash) and start it
// again on the same port (Start) to model an outage; the data is kept
// across a restart.
//
// initdb and postgres refuse to run as root; as root, pgtest runs them as
// the postgres system user, in a directory it can reach.
//
// It needs the postgresql package that scripts/install-test-deps.sh
// installs; New skips the test without it, and in -short mode.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailbrake/mailbrake/internal/testnet"
)

// binGlob finds Debian's server binaries of every installed major version.
const binGlob = "/usr/lib/postgresql/*/bin"

// Superuser is the name of the cluster's superuser.
const Superuser = "postgres"

// Instance is a private PostgreSQL server. It is stopped and its directory
// removed when the test ends.
type Instance struct {
	Addr     string // 127.0.0.1:port
	Password string // the superuser's
	Dir      string // private directory: data, socket, log
	LogFile  string

	t       testing.TB
	bin     string
	cred    *syscall.Credential // nil unless run as root
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	dbCount int
}

// findBin returns the bin directory of the newest installed major version.
func findBin() (string, bool) {
	dirs, _ := filepath.Glob(binGlob)
	var best string
	bestMajor := -1
	for _, d := range dirs {
		major, err := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "postgres")); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			continue
		}
		if major > bestMajor {
			best, bestMajor = d, major
		}
	}
	return best, best != ""
}

// New creates a cluster and starts a server for t.
func New(t testing.TB) *Instance {
	t.Helper()
	if testing.Short() {
		t.Skip("pgtest: skipped in -short mode")
	}
	bin, ok := findBin()
	if !ok {
		t.Skip("pgtest: PostgreSQL server binaries not installed (" + binGlob + "); run scripts/install-test-deps.sh")
	}
	addr, err := testnet.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 16)
	rand.Read(b)
	in := &Instance{Addr: addr, Password: hex.EncodeToString(b), t: t, bin: bin}
	if os.Geteuid() == 0 {
		in.Dir = in.rootDir()
	} else {
		in.Dir = t.TempDir()
	}
	in.LogFile = filepath.Join(in.Dir, "postgres.log")
	in.initdb()
	in.Start()
	t.Cleanup(in.Stop)
	return in
}

// rootDir prepares a private directory the postgres system user owns, for
// a test run as root: t.TempDir's parents are mode 0700 and root's, so the
// server could not reach it. The directory sits in a fresh 0755 directory
// under os.TempDir(), removed when the test ends.
func (in *Instance) rootDir() string {
	t := in.t
	u, err := user.Lookup(Superuser)
	if err != nil {
		t.Skipf("pgtest: running as root and there is no %q system user to run the server as: %v", Superuser, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("pgtest: user %s: %v", Superuser, err)
	}
	in.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	parent, err := os.MkdirTemp("", "mailbrake-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered before New's Stop, so it runs after it.
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(parent); ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm()&0o001 == 0 {
			t.Skipf("pgtest: %s is not traversable by the %s user; set TMPDIR to a directory that is", d, Superuser)
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	dir := filepath.Join(parent, "pg")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// command returns a command of the server's binaries, run in the private
// directory, as the postgres user when the test runs as root.
func (in *Instance) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(in.bin, name), args...)
	cmd.Dir = in.Dir
	cmd.Env = []string{"LC_ALL=C", "PGTZ=UTC", "TZ=UTC"}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: in.cred,
		// The server goes with the test binary, even one killed by a
		// test timeout.
		Pdeathsig: syscall.SIGQUIT,
	}
	return cmd
}

// writeOwned writes a file in the private directory that the server's
// user can read.
func (in *Instance) writeOwned(name string, data []byte) string {
	p := filepath.Join(in.Dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		in.t.Fatal(err)
	}
	if in.cred != nil {
		if err := os.Chown(p, int(in.cred.Uid), int(in.cred.Gid)); err != nil {
			in.t.Fatal(err)
		}
	}
	return p
}

func (in *Instance) dataDir() string { return filepath.Join(in.Dir, "data") }

// initdb creates the cluster.
func (in *Instance) initdb() {
	in.t.Helper()
	pwfile := in.writeOwned("pwfile", []byte(in.Password+"\n"))
	cmd := in.command("initdb", "-D", in.dataDir(), "-U", Superuser, "--pwfile="+pwfile,
		"-A", "scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions")
	if out, err := cmd.CombinedOutput(); err != nil {
		in.t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	os.Remove(pwfile)
}

// Start starts the server (again) on its port and waits until it answers.
func (in *Instance) Start() {
	in.t.Helper()
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cmd != nil {
		return
	}
	_, port, _ := net.SplitHostPort(in.Addr)
	log, err := os.OpenFile(in.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		in.t.Fatal(err)
	}
	defer log.Close()
	cmd := in.command("postgres", "-D", in.dataDir(),
		"-c", "listen_addresses=127.0.0.1", "-c", "port="+port,
		"-c", "unix_socket_directories="+in.Dir,
		// fsync off, but every commit written to the WAL before it
		// returns (synchronous_commit on): Kill, a crash of the server
		// and not of the machine, loses nothing committed.
		"-c", "fsync=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=16MB")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		in.t.Fatalf("pgtest: starting postgres: %v", err)
	}
	in.cmd = cmd
	done := make(chan struct{})
	in.done = done
	go func() { cmd.Wait(); close(done) }()

	deadline := time.Now().Add(20 * time.Second)
	for {
		err := in.ping()
		if err == nil {
			return
		}
		select {
		case <-done:
			b, _ := os.ReadFile(in.LogFile)
			in.cmd = nil
			in.t.Fatalf("pgtest: postgres exited: %v\n%s", cmd.ProcessState, b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(in.LogFile)
			in.t.Fatalf("pgtest: postgres on %s does not answer: %v\n%s", in.Addr, err, b)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// Stop stops the server (a fast shutdown; a no-op when it is not running).
func (in *Instance) Stop() { in.stop(syscall.SIGINT) }

// Kill stops the server as a crash does: an immediate shutdown (SIGQUIT:
// every connection cut at once, no checkpoint), so the next Start
// recovers from the write-ahead log. A no-op when it is not running.
func (in *Instance) Kill() { in.stop(syscall.SIGQUIT) }

func (in *Instance) stop(sig os.Signal) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cmd == nil {
		return
	}
	in.cmd.Process.Signal(sig)
	select {
	case <-in.done:
	case <-time.After(15 * time.Second):
		in.cmd.Process.Kill()
		<-in.done
	}
	in.cmd = nil
}

func (in *Instance) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, in.DSN("postgres"))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	return c.Ping(ctx)
}

// ConnString returns a URL for database db as the superuser, without the
// password (give it apart, as mailbrake reads it from a file).
func (in *Instance) ConnString(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User(Superuser), Host: in.Addr, Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// DSN returns a URL for database db as the superuser, password included.
func (in *Instance) DSN(db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(Superuser, in.Password), Host: in.Addr, Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// NewDB creates an empty database with a random name and returns the
// name. Tests that need an empty store each take one.
func (in *Instance) NewDB(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	in.mu.Lock()
	in.dbCount++
	name := fmt.Sprintf("test_%d_%s", in.dbCount, hex.EncodeToString(b))
	in.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, in.DSN("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connecting: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: creating database %s: %v", name, err)
	}
	return name
}

// Exec runs statements as the superuser in database db.
func (in *Instance) Exec(t testing.TB, db string, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, in.DSN(db))
	if err != nil {
		t.Fatalf("pgtest: connecting: %v", err)
	}
	defer c.Close(ctx)
	for _, s := range stmts {
		if _, err := c.Exec(ctx, s); err != nil {
			t.Fatalf("pgtest: %s: %v", s, err)
		}
	}
}
