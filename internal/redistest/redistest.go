// Package redistest starts a private, throw-away Redis server for tests:
// Debian's redis-server on a free 127.0.0.1 port, with a random password,
// its directory under a temporary directory, no persistence, and nothing
// of the system's instance touched.
//
// A test can stop the server (Stop) and start it again on the same port
// (Start) to model an outage; the data is gone after a restart, as after
// a real Redis restart without persistence.
//
// It needs the redis-server package that scripts/install-test-deps.sh
// installs; New skips the test without it, and in -short mode.
package redistest

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/testnet"
)

// serverBin is Debian's redis-server; not looked up in PATH so a test
// never runs something else by accident.
const serverBin = "/usr/bin/redis-server"

// Instance is a private Redis server. It is stopped and its directory
// removed when the test ends.
type Instance struct {
	Addr     string // 127.0.0.1:port
	Password string
	Dir      string
	LogFile  string

	t     testing.TB
	mu    sync.Mutex
	cmd   *exec.Cmd
	extra []string // more configuration lines (cluster mode)
}

// New starts a server for t.
func New(t testing.TB) *Instance {
	t.Helper()
	if testing.Short() {
		t.Skip("redistest: skipped in -short mode")
	}
	if _, err := os.Stat(serverBin); err != nil {
		t.Skip("redistest: redis-server not installed; run scripts/install-test-deps.sh")
	}
	b := make([]byte, 16)
	rand.Read(b)
	return start(t, hex.EncodeToString(b), nil)
}

func start(t testing.TB, password string, extra []string) *Instance {
	t.Helper()
	addr, err := testnet.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	in := &Instance{Addr: addr, Password: password, Dir: t.TempDir(), t: t, extra: extra}
	in.LogFile = filepath.Join(in.Dir, "redis.log")
	in.Start()
	t.Cleanup(in.Stop)
	return in
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
	conf := strings.Join([]string{
		"bind 127.0.0.1", "port " + port, "protected-mode yes", "daemonize no",
		"dir " + in.Dir, `save ""`, "appendonly no", "logfile " + in.LogFile,
		"requirepass " + in.Password,
	}, "\n") + "\n"
	for _, l := range in.extra {
		conf += l + "\n"
	}
	confFile := filepath.Join(in.Dir, "redis.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		in.t.Fatal(err)
	}
	cmd := exec.Command(serverBin, confFile)
	if err := cmd.Start(); err != nil {
		in.t.Fatalf("redistest: starting redis-server: %v", err)
	}
	in.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := in.ping(); err == nil {
			return
		} else if time.Now().After(deadline) {
			log, _ := os.ReadFile(in.LogFile)
			in.t.Fatalf("redistest: redis-server on %s does not answer: %v\n%s", in.Addr, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (SIGKILL, as a crash: connections cut, nothing
// saved; a no-op when it is not running).
func (in *Instance) Stop() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cmd == nil {
		return
	}
	in.cmd.Process.Kill()
	in.cmd.Wait()
	in.cmd = nil
}

// ping speaks RESP by hand: AUTH, then PING.
func (in *Instance) ping() error {
	c, err := net.DialTimeout("tcp", in.Addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n", len(in.Password), in.Password)
	r := bufio.NewReader(c)
	for _, want := range []string{"+OK", "+PONG"} {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.TrimSpace(line) != want {
			return fmt.Errorf("redis answered %q", strings.TrimSpace(line))
		}
	}
	return nil
}
