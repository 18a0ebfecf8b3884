package main

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestDebVersion(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3":                  "1.2.3",
		"v1.2.3-dirty":            "1.2.3~dirty",
		"v1.2.3-4-gabcdef1":       "1.2.3+git4.abcdef1",
		"v1.2.3-4-gabcdef1-dirty": "1.2.3+git4.abcdef1~dirty",
		"013fd1d":                 "0.0.0~git013fd1d",
		"013fd1d-dirty":           "0.0.0~git013fd1d~dirty",
		"abcdef1":                 "0.0.0~gitabcdef1",
		"dev":                     "0.0.0~gitdev",
	} {
		if got := debVersion(in); got != want {
			t.Errorf("debVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDebianPackage builds the package as `make deb` does, installs it with
// dpkg into a private root (systemctl is absent: the test runs the unit's
// ExecStartPre and ExecStart itself, with the paths under that root), and
// checks the files, their modes, the conffile, that the daemon tells
// systemd it is ready (Type=notify) and serves, and that it stops cleanly.
func TestDebianPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("installing a package with dpkg needs root")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg not installed")
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	bin := filepath.Join(work, "mailbrake")
	gobuild := exec.Command("go", "build", "-trimpath", "-o", bin,
		"-ldflags", "-X github.com/mailbrake/mailbrake/internal/cli.Version=v1.2.3 -X github.com/mailbrake/mailbrake/internal/cli.Commit=0123456789ab -X github.com/mailbrake/mailbrake/internal/cli.BuildDate=2026-12-04T00:00:00Z",
		"./cmd/mailbrake")
	gobuild.Dir = repo
	gobuild.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := gobuild.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	deb, err := build(repo, bin, "", "amd64", filepath.Join(work, "dist"))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(deb) != "mailbrake_1.2.3_amd64.deb" {
		t.Errorf("package file %s", filepath.Base(deb))
	}

	// A private dpkg root: an empty database, no maintainer scripts run
	// (the package has none).
	root := filepath.Join(work, "root")
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("dpkg", "--root="+root, "--log=/dev/null", "-i", deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, out)
	}
	if out, err := exec.Command("dpkg", "--root="+root, "-s", "mailbrake").CombinedOutput(); err != nil || !bytes.Contains(out, []byte("Status: install ok installed")) || !bytes.Contains(out, []byte("Version: 1.2.3")) {
		t.Fatalf("dpkg -s: %v\n%s", err, out)
	}
	for path, mode := range map[string]os.FileMode{
		"usr/bin/mailbrake":                                       0o755,
		"etc/mailbrake/mailbrake.yaml":                            0o640,
		"var/lib/mailbrake":                                       0o700 | os.ModeDir,
		"lib/systemd/system/mailbrake.service":                    0o644,
		"usr/share/man/man1/mailbrake.1.gz":                       0o644,
		"usr/share/man/man1/mailbrake-serve.1.gz":                 0o644,
		"usr/share/doc/mailbrake/copyright":                       0o644,
		"usr/share/doc/mailbrake/NOTICE":                          0o644,
		"usr/share/doc/mailbrake/deploy.md":                       0o644,
		"usr/share/doc/mailbrake/examples/prometheus-rules.yml":   0o644,
		"usr/share/doc/mailbrake/examples/grafana-dashboard.json": 0o644,
	} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("/%s: %v", path, err)
			continue
		}
		if fi.Mode()&(os.ModeDir|os.ModePerm) != mode {
			t.Errorf("/%s: mode %v, want %v", path, fi.Mode(), mode)
		}
	}
	if cf, err := os.ReadFile(filepath.Join(root, "var/lib/dpkg/info/mailbrake.conffiles")); err != nil || strings.TrimSpace(string(cf)) != "/etc/mailbrake/mailbrake.yaml" {
		t.Errorf("conffiles: %q %v", cf, err)
	}
	conf, _ := os.ReadFile(filepath.Join(root, "etc/mailbrake/mailbrake.yaml"))
	if !bytes.Contains(conf, []byte("\ndata_dir: /var/lib/mailbrake\n")) {
		t.Error("the installed configuration does not keep its data under /var/lib/mailbrake")
	}
	out, err := exec.Command(filepath.Join(root, "usr/bin/mailbrake"), "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "mailbrake v1.2.3 (commit 0123456789ab, built 2026-12-04T00:00:00Z") {
		t.Errorf("version: %q %v", out, err)
	}

	// The unit, as systemd would run it.
	unit := readUnit(t, filepath.Join(root, "lib/systemd/system/mailbrake.service"))
	if unit["Type"] != "notify" || unit["User"] != "root" || unit["StateDirectory"] != "mailbrake" || unit["ProtectSystem"] != "strict" || unit["NoNewPrivileges"] != "yes" {
		t.Errorf("unit settings: %v", unit)
	}
	under := func(cmd string) []string {
		f := strings.Fields(cmd)
		for i, a := range f {
			if strings.HasPrefix(a, "/usr/") || strings.HasPrefix(a, "/etc/") {
				f[i] = filepath.Join(root, a)
			}
		}
		return f
	}
	dataDir := filepath.Join(root, "var/lib/mailbrake")
	env := append(os.Environ(), "MAILBRAKE_DATA_DIR="+dataDir)
	pre := under(unit["ExecStartPre"])
	preCmd := exec.Command(pre[0], pre[1:]...)
	preCmd.Env = env
	if out, err := preCmd.CombinedOutput(); err != nil {
		t.Fatalf("ExecStartPre %v: %v\n%s", pre, err, out)
	}

	notify := filepath.Join(work, "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addrs := make([]string, 3)
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = l.Addr().String()
		l.Close()
	}
	start := append(under(unit["ExecStart"]), "--policy", addrs[0], "--milter", addrs[1], "--http", addrs[2])
	serve := exec.Command(start[0], start[1:]...)
	serve.Env = append(env, "NOTIFY_SOCKET="+notify)
	var log bytes.Buffer
	serve.Stdout, serve.Stderr = &log, &log
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve.Wait() }()
	defer func() {
		serve.Process.Kill()
		if t.Failed() {
			t.Logf("serve log:\n%s", log.String())
		}
	}()
	msg := func() string {
		ln.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 512)
		n, _, err := ln.ReadFromUnix(buf)
		if err != nil {
			t.Fatalf("waiting for sd_notify: %v", err)
		}
		return string(buf[:n])
	}
	if got := msg(); !strings.HasPrefix(got, "READY=1") {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	res, err := http.Get("http://" + addrs[2] + "/healthz")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", res, err)
	}
	res.Body.Close()
	fi, err := os.Stat(filepath.Join(dataDir, "admin.sock"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("admin socket: %v %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(dataDir, "mailbrake.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("database: %v %v", fi, err)
	}
	serve.Process.Signal(syscall.SIGTERM)
	if got := msg(); got != "STOPPING=1" {
		t.Errorf("notification at stop %q", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after SIGTERM: %v", err)
		}
	case <-time.After(60 * time.Second): // the unit's TimeoutStopSec
		t.Fatal("serve did not stop within TimeoutStopSec")
	}
}

// readUnit reads a systemd unit's Key=Value settings (the last of each).
func readUnit(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok {
			out[k] = v
		}
	}
	return out
}
