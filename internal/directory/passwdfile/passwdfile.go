package passwdfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Lookup returns account's stored password (Entry.Stored) from the
// passwd-file at path, or an error wrapping ErrNoSuchAccount. The parsed
// file is cached and read again when its mtime, size or inode changes.
func Lookup(path, account string) (stored string, err error) {
	e, err := LookupEntry(path, account)
	if err != nil {
		return "", err
	}
	return e.Stored(), nil
}

// LookupEntry returns account's entry from the passwd-file at path, like
// Lookup.
func LookupEntry(path, account string) (Entry, error) {
	users, err := cached(path)
	if err != nil {
		return Entry{}, err
	}
	e, ok := users[account]
	if !ok {
		return Entry{}, fmt.Errorf("%w: %s in %s", ErrNoSuchAccount, account, path)
	}
	return e, nil
}

// SetPassword replaces account's stored password (for example
// "{SHA512-CRYPT}$6$…" from `doveadm pw`) with an atomic rewrite of the
// file at path. Only the password field of account's lines changes.
func SetPassword(path, account, stored string) error {
	return Update(path, func(f *File) error { return f.SetPassword(account, stored) })
}

// SetExtraField sets the extra field key=value on account's lines with an
// atomic rewrite of the file at path.
func SetExtraField(path, account, key, value string) error {
	return Update(path, func(f *File) error { return f.SetExtraField(account, key, value) })
}

// RemoveExtraField removes the extra field key from account's lines with
// an atomic rewrite of the file at path.
func RemoveExtraField(path, account, key string) error {
	return Update(path, func(f *File) error { return f.RemoveExtraField(account, key) })
}

// Lock makes every login of account fail by adding the extra field
// fail=y (LockField); see the package documentation for why not nologin.
// Locking a locked account changes nothing.
func Lock(path, account string) error {
	return SetExtraField(path, account, LockField, "y")
}

// Unlock removes the extra field Lock adds. Unlocking an unlocked account
// changes nothing.
func Unlock(path, account string) error {
	return RemoveExtraField(path, account, LockField)
}

// updateAttempts bounds the retries when another program changes the file
// while we rewrite it; more than a couple of collisions in a row means
// someone is rewriting it continuously, and waiting longer will not help.
const updateAttempts = 3

// errChanged reports that the file changed between our read and our
// rename.
var errChanged = errors.New("passwd-file changed while it was being rewritten")

// changeError carries an error of the caller's change function.
type changeError struct{ err error }

func (e changeError) Error() string { return e.err.Error() }

// writers serialises our own updates of one file.
var writers sync.Map // real path → *sync.Mutex

// Update reads the passwd-file at path, applies change and, when the
// contents differ, writes the result atomically: a temporary file in the
// same directory with the old file's mode and owner, fsync, rename over
// the old one, fsync of the directory. A symbolic link is followed and
// the file it points to is replaced. If the file changes between the read
// and the rename, the update starts over.
//
// After a rewrite, Update returns only once the clock has entered the
// second after the rename, which takes up to a second. Dovecot's auth
// process stats a passwd-file at most once per second (passwd_file_sync:
// last_sync_time == ioloop_time) and otherwise serves its copy in memory,
// so a login in the second of the rename may still see the old entry (and
// where the passdb is cached, cache it again right after the caller's auth
// cache flush). From the next second on every lookup sees the new file.
func Update(path string, change func(*File) error) error {
	renamed, err := updateLocked(path, change)
	if err != nil {
		return err
	}
	if !renamed.IsZero() {
		settle(time.Until(renamed.Truncate(time.Second).Add(time.Second)))
	}
	return nil
}

// settle sleeps; the package's own unit tests replace it to run without
// waiting.
var settle = time.Sleep

// updateLocked is Update under the per-file mutex, without the wait. It
// returns the time of the rename, zero when nothing was written.
func updateLocked(path string, change func(*File) error) (time.Time, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return time.Time{}, fmt.Errorf("passwdfile: %w", err)
	}
	mu, _ := writers.LoadOrStore(real, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()

	for attempt := 1; ; attempt++ {
		renamed, err := update(real, change)
		var ce changeError
		switch {
		case errors.As(err, &ce):
			return time.Time{}, ce.err // already says which account and why
		case errors.Is(err, errChanged) && attempt < updateAttempts:
			continue
		case err != nil:
			return time.Time{}, fmt.Errorf("passwdfile: %s: %w", path, err)
		}
		return renamed, nil
	}
}

func update(path string, change func(*File) error) (renamed time.Time, err error) {
	data, fi, err := readFile(path)
	if err != nil {
		return time.Time{}, err
	}
	f, err := Parse(data)
	if err != nil {
		return time.Time{}, err
	}
	if err := change(f); err != nil {
		return time.Time{}, changeError{err}
	}
	out := f.Bytes()
	if bytes.Equal(out, data) {
		return time.Time{}, nil
	}
	return replace(path, out, fi)
}

// readFile reads path and returns the FileInfo of what it read.
func readFile(path string) ([]byte, os.FileInfo, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer fd.Close()
	fi, err := fd.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(fd)
	if err != nil {
		return nil, nil, err
	}
	return data, fi, nil
}

// replace writes data to a temporary file beside path, with old's mode and
// owner, and renames it over path unless path no longer is old. It returns
// the time of the rename.
func replace(path string, data []byte, old os.FileInfo) (time.Time, error) {
	err := writeAndRename(path, data, old)
	return time.Now(), err
}

func writeAndRename(path string, data []byte, old os.FileInfo) (err error) {
	dir, base := filepath.Split(path)
	tmp, err := os.CreateTemp(dir, "."+base+".mailbrake-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(old.Mode().Perm()); err != nil {
		return err
	}
	if st, ok := old.Sys().(*syscall.Stat_t); ok {
		uid, gid := int(st.Uid), int(st.Gid)
		if cur, err := tmp.Stat(); err == nil {
			if cst, ok := cur.Sys().(*syscall.Stat_t); ok && (int(cst.Uid) != uid || int(cst.Gid) != gid) {
				if err := tmp.Chown(uid, gid); err != nil {
					return fmt.Errorf("keeping the owner %d:%d: %w", uid, gid, err)
				}
			}
		}
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := bumpMtime(tmp.Name(), int64(len(data)), old); err != nil {
		return err
	}
	// Optimistic concurrency: the file must still be the one we read.
	if cur, err := os.Stat(path); err != nil || !sameVersion(cur, old) {
		return errChanged
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// bumpMtime gives the new file an mtime a second after the old one's when
// Dovecot could not otherwise tell them apart: passwd_file_sync re-reads
// only when st_mtime (whole seconds) or st_size differs from what it read.
func bumpMtime(name string, size int64, old os.FileInfo) error {
	if size != old.Size() {
		return nil
	}
	fi, err := os.Stat(name)
	if err != nil {
		return err
	}
	if fi.ModTime().Unix() != old.ModTime().Unix() {
		return nil
	}
	t := time.Unix(old.ModTime().Unix()+1, 0)
	return os.Chtimes(name, t, t)
}

func syncDir(dir string) error {
	if dir == "" {
		dir = "."
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// sameVersion reports whether two FileInfos describe the same contents as
// far as stat can tell: same inode, size and mtime (full resolution).
func sameVersion(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// cache holds the first entry of every user of the files Lookup has read,
// by the path as given.
var cache struct {
	sync.Mutex
	files map[string]cachedFile
}

type cachedFile struct {
	fi    os.FileInfo
	users map[string]Entry
}

// cached returns the users of the file at path, reading it when it is not
// cached or has changed.
func cached(path string) (map[string]Entry, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("passwdfile: %w", err)
	}
	cache.Lock()
	c, ok := cache.files[path]
	cache.Unlock()
	if ok && sameVersion(c.fi, fi) {
		return c.users, nil
	}
	data, fi, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("passwdfile: %w", err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("passwdfile: %s: %w", path, err)
	}
	users := make(map[string]Entry)
	for _, e := range f.Entries() {
		if _, dup := users[e.User]; !dup { // the first line wins, as in Dovecot
			users[e.User] = e
		}
	}
	cache.Lock()
	if cache.files == nil {
		cache.files = make(map[string]cachedFile)
	}
	cache.files[path] = cachedFile{fi: fi, users: users}
	cache.Unlock()
	return users, nil
}
