package passwdfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// noSettle makes Update return without waiting for the next second.
func noSettle(t *testing.T) {
	old := settle
	settle = func(time.Duration) {}
	t.Cleanup(func() { settle = old })
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	noSettle(t)
	path := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
	return path
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func stat(t *testing.T, path string) (os.FileInfo, *syscall.Stat_t) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi, fi.Sys().(*syscall.Stat_t)
}

func TestSetPasswordRewrite(t *testing.T) {
	path := writeFile(t, sample)
	uid, gid := os.Getuid(), os.Getgid()
	if os.Geteuid() == 0 {
		uid, gid = 65534, 65534 // a different owner to keep
		if err := os.Chown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	_, before := stat(t, path)

	if err := SetPassword(path, "alice@example.com", "{SHA512-CRYPT}$6$new$hash"); err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(sample, "$6$salt$hash", "$6$new$hash", 1)
	if got := read(t, path); got != want {
		t.Fatalf("file after SetPassword:\n%s\nwant\n%s", got, want)
	}
	fi, after := stat(t, path)
	if fi.Mode().Perm() != 0o640 || int(after.Uid) != uid || int(after.Gid) != gid {
		t.Errorf("mode %v owner %d:%d, want 0640 %d:%d", fi.Mode().Perm(), after.Uid, after.Gid, uid, gid)
	}
	if after.Ino == before.Ino {
		t.Error("the file was written in place, not replaced")
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
	if got, err := Lookup(path, "alice@example.com"); err != nil || got != "{SHA512-CRYPT}$6$new$hash" {
		t.Errorf("Lookup = %q, %v", got, err)
	}

	if err := SetPassword(path, "nobody@example.com", "{PLAIN}x"); !errors.Is(err, ErrNoSuchAccount) {
		t.Errorf("SetPassword(unknown) = %v, want ErrNoSuchAccount", err)
	}
	if err := SetPassword(filepath.Join(t.TempDir(), "missing"), "a", "{PLAIN}x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SetPassword(missing file) = %v, want fs.ErrNotExist", err)
	}
}

// TestSameSizeSameSecond checks the mtime bump: Dovecot would not re-read
// a rewrite of the same size within the same second.
func TestSameSizeSameSecond(t *testing.T) {
	path := writeFile(t, "u:{PLAIN}aaaa\n")
	for _, pw := range []string{"{PLAIN}bbbb", "{PLAIN}cccc", "{PLAIN}dddd"} {
		before, _ := stat(t, path)
		if err := SetPassword(path, "u", pw); err != nil {
			t.Fatal(err)
		}
		after, _ := stat(t, path)
		if after.Size() != before.Size() {
			t.Fatalf("sizes differ: the test needs same-size rewrites")
		}
		if after.ModTime().Unix() == before.ModTime().Unix() {
			t.Errorf("%s: mtime second %d unchanged: Dovecot would keep the old password", pw, after.ModTime().Unix())
		}
		if after.ModTime().After(time.Now().Add(5 * time.Second)) {
			t.Errorf("mtime %v runs away into the future", after.ModTime())
		}
	}
}

func TestSymlinkKept(t *testing.T) {
	target := writeFile(t, "u:{PLAIN}old\n")
	link := filepath.Join(t.TempDir(), "passwd-link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(link, "u", "{PLAIN}new"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", fi.Mode(), err)
	}
	if got := read(t, target); got != "u:{PLAIN}new\n" {
		t.Errorf("target = %q", got)
	}
}

func TestLockUnlockFile(t *testing.T) {
	path := writeFile(t, "u:{PLAIN}pw\nv:{PLAIN}pw2::::::nologin reason=x\n")
	if err := Lock(path, "u"); err != nil {
		t.Fatal(err)
	}
	before, _ := stat(t, path)
	if err := Lock(path, "u"); err != nil { // no change, no write
		t.Fatal(err)
	}
	if after, _ := stat(t, path); !sameVersion(before, after) {
		t.Error("locking a locked account rewrote the file")
	}
	if err := Lock(path, "v"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, path); got != "u:{PLAIN}pw::::::fail=y\nv:{PLAIN}pw2::::::nologin reason=x fail=y\n" {
		t.Fatalf("locked file:\n%s", got)
	}
	for _, u := range []string{"u", "v"} {
		if e, err := LookupEntry(path, u); err != nil || !e.Locked() {
			t.Errorf("%s not Locked: %+v %v", u, e, err)
		}
		if err := Unlock(path, u); err != nil {
			t.Fatal(err)
		}
	}
	if got := read(t, path); got != "u:{PLAIN}pw::::::\nv:{PLAIN}pw2::::::nologin reason=x\n" {
		t.Fatalf("unlocked file:\n%s", got)
	}
	if err := Lock(path, "w"); !errors.Is(err, ErrNoSuchAccount) {
		t.Errorf("Lock(unknown) = %v", err)
	}
}

func TestLookupRereads(t *testing.T) {
	path := writeFile(t, "u:{PLAIN}one\n")
	check := func(want string) {
		t.Helper()
		if got, err := Lookup(path, "u"); err != nil || got != want {
			t.Fatalf("Lookup = %q, %v; want %q", got, err, want)
		}
	}
	check("{PLAIN}one")
	check("{PLAIN}one") // cached
	if err := os.WriteFile(path, []byte("u:{PLAIN}three\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	check("{PLAIN}three") // size changed
	// Same size, written in place: the mtime (nanoseconds) differs.
	old, _ := stat(t, path)
	if err := os.WriteFile(path, []byte("u:{PLAIN}seven\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, old.ModTime().Add(time.Millisecond), old.ModTime().Add(time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	check("{PLAIN}seven")
	if err := SetPassword(path, "u", "{PLAIN}eight"); err != nil {
		t.Fatal(err)
	}
	check("{PLAIN}eight")
	if _, err := Lookup(path, "x"); !errors.Is(err, ErrNoSuchAccount) {
		t.Errorf("Lookup(unknown) = %v, want ErrNoSuchAccount", err)
	}
}

// TestConcurrentUpdates checks that our own concurrent updates of one file
// do not lose each other's changes.
func TestConcurrentUpdates(t *testing.T) {
	path := writeFile(t, "u:{PLAIN}pw\n")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if err := SetExtraField(path, "u", fmt.Sprintf("k%d", i), "v"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	e, err := LookupEntry(path, "u")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(e.ExtraFields()); n != 20 {
		t.Errorf("%d extra fields after 20 concurrent updates: %q", n, e.Extra)
	}
}

// TestUpdateSettles checks that an update that wrote the file waits until
// the second after the rename, and one that changed nothing does not.
func TestUpdateSettles(t *testing.T) {
	path := writeFile(t, "u:{PLAIN}pw\n")
	var waited []time.Duration
	settle = func(d time.Duration) { waited = append(waited, d) }
	if err := Lock(path, "u"); err != nil {
		t.Fatal(err)
	}
	fi, _ := stat(t, path)
	if len(waited) != 1 || waited[0] <= 0 || waited[0] > time.Second {
		t.Fatalf("waited %v, want one wait of at most a second", waited)
	}
	if end := time.Now().Add(waited[0]); end.Unix() <= fi.ModTime().Unix() && fi.ModTime().Unix() <= time.Now().Unix() {
		t.Errorf("the wait ends at %v, in the second of the rename", end)
	}
	if err := Lock(path, "u"); err != nil {
		t.Fatal(err)
	}
	if len(waited) != 1 {
		t.Errorf("an update without a change waited: %v", waited)
	}
}
