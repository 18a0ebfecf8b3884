package passwdfile

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWriter(t *testing.T) {
	p := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(p, []byte("u@example.org:{PLAIN}old::::::\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	w := &Writer{Path: p}
	if !w.Visible().IsZero() {
		t.Fatal("Visible before any change")
	}
	start := time.Now()
	if err := w.Lock("u@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := w.SetPassword("u@example.org", "{PLAIN}new"); err != nil {
		t.Fatal(err)
	}
	// Neither change waited for the next second.
	if time.Since(start) > 900*time.Millisecond {
		t.Fatalf("Writer waited: %s", time.Since(start))
	}
	v := w.Visible()
	if !v.After(start) || v.Sub(start) > 2*time.Second || v.Nanosecond() != 0 {
		t.Fatalf("Visible %v after a change at %v", v, start)
	}
	e, err := LookupEntry(p, "u@example.org")
	if err != nil || e.Stored() != "{PLAIN}new" || !e.Locked() {
		t.Fatalf("entry after Lock and SetPassword: %+v %v", e, err)
	}
	// A change to an unknown account writes nothing.
	if err := w.Lock("nobody@example.org"); err == nil {
		t.Fatal("locked an unknown account")
	}
	w.Wait()
	if time.Now().Before(v) {
		t.Fatal("Wait returned before Visible")
	}
	if err := w.Unlock("u@example.org"); err != nil {
		t.Fatal(err)
	}
	if e, _ := LookupEntry(p, "u@example.org"); e.Locked() {
		t.Fatal("still locked")
	}
}
