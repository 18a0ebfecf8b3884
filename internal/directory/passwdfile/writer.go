package passwdfile

import (
	"sync"
	"time"
)

// Writer changes one passwd-file without waiting after each change for
// Dovecot to see it (as Update does). A caller making several changes in a
// row (lock, then a new password) waits once, until Visible, before it
// relies on them (before flushing Dovecot's auth cache and kicking the
// user's sessions). The zero value is not usable; set Path.
type Writer struct {
	Path string

	mu      sync.Mutex
	visible time.Time
}

func (w *Writer) update(change func(*File) error) error {
	renamed, err := updateLocked(w.Path, change)
	if err != nil || renamed.IsZero() {
		return err
	}
	w.mu.Lock()
	if v := renamed.Truncate(time.Second).Add(time.Second); v.After(w.visible) {
		w.visible = v
	}
	w.mu.Unlock()
	return nil
}

// SetPassword is SetPassword without the wait.
func (w *Writer) SetPassword(account, stored string) error {
	return w.update(func(f *File) error { return f.SetPassword(account, stored) })
}

// Lock is Lock without the wait.
func (w *Writer) Lock(account string) error {
	return w.update(func(f *File) error { return f.SetExtraField(account, LockField, "y") })
}

// Unlock is Unlock without the wait.
func (w *Writer) Unlock(account string) error {
	return w.update(func(f *File) error { return f.RemoveExtraField(account, LockField) })
}

// Visible returns the time from which Dovecot sees every change this
// Writer has made (zero when it made none).
func (w *Writer) Visible() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.visible
}

// Wait sleeps until Visible.
func (w *Writer) Wait() { settle(time.Until(w.Visible())) }
