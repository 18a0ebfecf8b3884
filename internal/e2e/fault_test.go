package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/postfixtest"
	"github.com/mailbrake/mailbrake/internal/store"
)

// faultEnv is one run of the fault table: a private Postfix, a daemon and
// its data directory.
type faultEnv struct {
	in      *postfixtest.Instance
	d       *daemon
	dataDir string
	device  string // the loop device's name under /sys/fs/ext4, for the read-only fault
	image   string
}

type faultCase struct {
	name         string
	fs           string // "", "tmpfs" or "ext4": the data directory's own filesystem (root only)
	syncInterval string
	// inject starts the fault after the daemon started; recover ends it
	// after every message was sent (it may restart the daemon).
	inject, recover func(t *testing.T, f *faultEnv)
}

// TestFaultTable re-runs the adversarial run's faults (issue 13) against a
// real Postfix: the data disk full, the store locked by another process,
// the data filesystem going read-only (an ext4 error with errors=remount-ro,
// what a failing disk does), and a one-second queue sync with admins
// syncing by hand while mail flows. In each, 20 messages are sent while
// the fault lasts (half of them 60-recipient zclient messages that must be
// held): every message is delivered, held or refused with a 4xx (none
// lost), no held kind is delivered (none leaked), and once the fault is
// over every message in Postfix's hold queue is listed by mailbrake as
// held (listed = held). The table is logged for the closing note.
func TestFaultTable(t *testing.T) {
	cases := []faultCase{
		{name: "disk full", fs: "tmpfs",
			inject: func(t *testing.T, f *faultEnv) { fillDisk(t, f.dataDir) },
			recover: func(t *testing.T, f *faultEnv) {
				if err := os.Remove(filepath.Join(f.dataDir, "fill")); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "DB locked",
			inject: func(t *testing.T, f *faultEnv) { lockStore(t, f) },
			recover: func(t *testing.T, f *faultEnv) {
				f.endFault("lock")
			}},
		{name: "read-only filesystem", fs: "ext4",
			inject: func(t *testing.T, f *faultEnv) {
				// The kernel remounts the filesystem read-only with the
				// daemon's files open, as on a disk error.
				trigger := filepath.Join("/sys/fs/ext4", f.device, "trigger_fs_error")
				if err := os.WriteFile(trigger, []byte("mailbrake fault test"), 0o200); err != nil {
					t.Skipf("cannot trigger an ext4 error (%v)", err)
				}
				if err := os.WriteFile(filepath.Join(f.dataDir, "probe"), []byte("x"), 0o600); !errors.Is(err, syscall.EROFS) {
					t.Fatalf("data filesystem still writable after the error: %v", err)
				}
			},
			recover: func(t *testing.T, f *faultEnv) {
				// What an admin does: stop mailbrake, repair and remount
				// the filesystem, start mailbrake again.
				f.d.stop()
				run(t, "umount", f.dataDir)
				exec.Command("e2fsck", "-fy", f.image).Run() // exit 1: errors corrected
				run(t, "mount", "-o", "loop,errors=remount-ro", f.image, f.dataDir)
				f.d.start()
			}},
		{name: "fast sync", syncInterval: "1s",
			inject: func(t *testing.T, f *faultEnv) { f.syncLoop(t) },
			recover: func(t *testing.T, f *faultEnv) {
				f.endFault("sync")
			}},
	}
	var table []string
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			row := runFault(t, c)
			table = append(table, fmt.Sprintf("| %s | %s |", c.name, row))
		})
	}
	t.Logf("fault table:\n| fault | sent | delivered | held | 4xx | lost | leaked | listed = held |\n|---|---|---|---|---|---|---|---|\n%s", strings.Join(table, "\n"))
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// dataFS mounts a filesystem of its own for the data directory: tmpfs of
// 24 MiB, or ext4 on a loop device with errors=remount-ro.
func dataFS(t *testing.T, f *faultEnv, fs string) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount the data directory's filesystem")
	}
	f.dataDir = filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(f.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	switch fs {
	case "tmpfs":
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", f.dataDir).CombinedOutput(); err != nil {
			t.Skipf("cannot mount tmpfs: %v %s", err, out)
		}
	case "ext4":
		f.image = filepath.Join(t.TempDir(), "data.img")
		fh, err := os.Create(f.image)
		if err != nil {
			t.Fatal(err)
		}
		fh.Truncate(64 << 20)
		fh.Close()
		if out, err := exec.Command("mkfs.ext4", "-q", "-F", f.image).CombinedOutput(); err != nil {
			t.Skipf("mkfs.ext4: %v %s", err, out)
		}
		if out, err := exec.Command("mount", "-o", "loop,errors=remount-ro", f.image, f.dataDir).CombinedOutput(); err != nil {
			t.Skipf("cannot mount a loop device: %v %s", err, out)
		}
		out, err := exec.Command("findmnt", "-n", "-o", "SOURCE", f.dataDir).Output()
		if err != nil {
			t.Fatal(err)
		}
		f.device = filepath.Base(strings.TrimSpace(string(out)))
		if err := os.Chmod(f.dataDir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		// After the daemon's own cleanup (cleanups run last-in first-out).
		exec.Command("umount", "-l", f.dataDir).Run()
	})
}

func fillDisk(t *testing.T, dir string) {
	t.Helper()
	fh, err := os.Create(filepath.Join(dir, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := fh.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			break
		}
	}
	// The last partial blocks too.
	for _, n := range []int{64 << 10, 4 << 10, 512} {
		for {
			if _, err := fh.Write(buf[:n]); err != nil {
				break
			}
		}
	}
}

var (
	faultMu  sync.Mutex
	faultEnd = map[*faultEnv]map[string]func(){} // what ends each running fault, by name
)

// onEnd registers end as the way to end fault name; endFault runs it once.
func (f *faultEnv) onEnd(t *testing.T, name string, end func()) {
	faultMu.Lock()
	if faultEnd[f] == nil {
		faultEnd[f] = map[string]func(){}
	}
	faultEnd[f][name] = end
	faultMu.Unlock()
	t.Cleanup(func() { f.endFault(name) })
}

func (f *faultEnv) endFault(name string) {
	faultMu.Lock()
	end := faultEnd[f][name]
	delete(faultEnd[f], name)
	faultMu.Unlock()
	if end != nil {
		end()
	}
}

// lockStore takes the store's write lock from another process's
// connection (as sqlite3 or a backup tool would) until endFault("lock").
func lockStore(t *testing.T, f *faultEnv) {
	db, err := sql.Open("sqlite", filepath.Join(f.dataDir, "mailbrake.db"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	f.onEnd(t, "lock", func() {
		conn.ExecContext(ctx, "ROLLBACK")
		conn.Close()
		db.Close()
	})
}

// syncLoop runs `quarantine sync` by hand every 100 ms beside the
// one-second periodic sync, until endFault("sync").
func (f *faultEnv) syncLoop(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			f.d.cli("quarantine", "sync")
		}
	}()
	f.onEnd(t, "sync", func() { close(stop); <-done })
}

// runFault runs one fault and returns its table row.
func runFault(t *testing.T, c faultCase) string {
	f := &faultEnv{}
	if c.fs != "" {
		dataFS(t, f, c.fs)
	}
	mAddr := freeAddr(t)
	f.in = postfixtest.Start(t, postfixtest.Options{MilterAddr: mAddr, MilterDefaultAction: "tempfail"})
	f.d = startDaemon(t, daemonOptions{Milter: mAddr, PostfixConfigDir: f.in.ConfigDir, SyncGrace: "0s", DataDir: f.dataDir, SyncInterval: c.syncInterval})
	f.dataDir = f.d.dataDir

	c.inject(t, f)
	const n = 20
	results := make([]postfixtest.SendResult, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			xm, count := ajax, 3
			if i%2 == 0 {
				xm, count = zclient, 60
			}
			results[i] = f.in.Send(t, postfixtest.SendOptions{From: fmt.Sprintf("user%d@campus.example", i), To: recipients(count, "dest.example"),
				Headers: map[string]string{"X-Mailer": xm, "Subject": fmt.Sprintf("fault %d", i)}, Body: "body\n"})
		}()
	}
	wg.Wait()
	if c.fs != "" || c.name == "DB locked" {
		// The fault was real: mailbrake says it cannot record.
		// ("store unreachable" when even the ping waits for the lock.)
		if body := f.d.httpGet("/readyz"); !strings.Contains(body, "store does not take writes") && !strings.Contains(body, "store unreachable") {
			t.Errorf("readyz during the fault:\n%s", body)
		}
	}
	// Postfix finishes delivering what it accepted.
	f.in.WaitQueue(t, 60*time.Second, func(q []postfixtest.QueueEntry) bool {
		for _, e := range q {
			if e.QueueName != "hold" {
				return false
			}
		}
		return true
	})
	c.recover(t, f)

	q := f.in.Queue(t)
	var delivered, held, temp, lost, leaked int
	for i, o := range outcomes(t, f.in, q, results, func(i int) string { return fmt.Sprintf("fault %d", i) }) {
		switch o {
		case outDelivered:
			delivered++
			if i%2 == 0 {
				leaked++
				t.Errorf("message %d, a 60-recipient zclient message, was delivered", i)
			}
		case outHeld:
			held++
		case outTempFailed:
			temp++
		default:
			lost++
		}
	}

	// Once the fault is over, a sync lists every held message.
	heldIDs := map[string]bool{}
	for _, e := range q {
		if e.QueueName == "hold" {
			heldIDs[e.QueueID] = true
		}
	}
	listed := 0
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		f.d.cli("quarantine", "sync")
		listed = 0
		records := map[string]int{}
		for _, h := range f.d.holds() {
			records[h.QueueID]++
			if h.State == store.HoldHeld && heldIDs[h.QueueID] {
				listed++
			}
		}
		for qid, k := range records {
			if k > 1 {
				t.Errorf("queue id %s has %d hold records", qid, k)
			}
		}
		if listed == len(heldIDs) || time.Now().After(deadline) {
			break
		}
	}
	if listed != len(heldIDs) {
		t.Errorf("%d of %d messages in the hold queue listed as held", listed, len(heldIDs))
	}
	if held == 0 {
		t.Error("nothing was held: the zclient messages did not reach mailbrake")
	}
	eq := "yes"
	if listed != len(heldIDs) {
		eq = "no"
	}
	return fmt.Sprintf("%d | %d | %d | %d | %d | %d | %d of %d (%s)", n, delivered, held, temp, lost, leaked, listed, len(heldIDs), eq)
}
