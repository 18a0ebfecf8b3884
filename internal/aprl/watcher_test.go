package aprl

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWatcherReload(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "phishing_reply_addresses")
	cleared := filepath.Join(dir, "phishing_cleared_addresses")
	// write replaces path with content and sets its mtime to a distinct
	// value, so no test waits for the clock to tick.
	stamp := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	write := func(path, content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		stamp = stamp.Add(time.Hour)
		if err := os.Chtimes(path, stamp, stamp); err != nil {
			t.Fatal(err)
		}
	}
	listed := func(w *Watcher, addr string) bool {
		t.Helper()
		_, ok := w.Current().Lookup(addr)
		return ok
	}
	write(list, "# v1\nold@x.org,A,20100101\ncleared@x.org,E,20100101\n")
	write(cleared, "cleared@x.org,20100102\n")

	w, err := NewWatcher([]string{list}, []string{cleared}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !listed(w, "old@x.org") || listed(w, "cleared@x.org") || w.Current().Len() != 1 {
		t.Fatalf("first load wrong: len %d", w.Current().Len())
	}
	if changed, err := w.Check(); changed || err != nil {
		t.Fatalf("Check without change = %v, %v", changed, err)
	}

	// A new version is visible after Check.
	write(list, "# v2\nnew@x.org,AB,20110101\ncleared@x.org,E,20110101\n")
	if changed, err := w.Check(); !changed || err != nil {
		t.Fatalf("Check after change = %v, %v", changed, err)
	}
	if listed(w, "old@x.org") || !listed(w, "new@x.org") || !listed(w, "cleared@x.org") {
		t.Fatal("second version not visible")
	}
	good := w.Current()

	// A corrupt file keeps the previous list, and the error persists.
	write(list, "<html><body>502 Bad Gateway</body></html>\n")
	for range 2 {
		if changed, err := w.Check(); changed || err == nil {
			t.Fatalf("Check of corrupt file = %v, %v", changed, err)
		}
		if w.Current() != good {
			t.Fatal("corrupt file replaced the list")
		}
	}

	// A missing cleared file keeps the previous list too.
	write(list, "new@x.org,AB,20110101\n")
	if err := os.Remove(cleared); err != nil {
		t.Fatal(err)
	}
	if changed, err := w.Check(); changed || err == nil || w.Current() != good {
		t.Fatalf("Check with missing file = %v, %v", changed, err)
	}

	// Fixed: the next Check loads again.
	write(cleared, "")
	if changed, err := w.Check(); !changed || err != nil || !listed(w, "new@x.org") || w.Current().Len() != 1 {
		t.Fatalf("Check after fix = %v, %v", changed, err)
	}

	// Replacing by rename with the same size and mtime is still seen.
	tmp := filepath.Join(dir, "tmp")
	if err := os.WriteFile(tmp, []byte("xxx@x.org,AB,20110101\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, stamp, stamp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, list); err != nil {
		t.Fatal(err)
	}
	if changed, err := w.Check(); !changed || err != nil || !listed(w, "xxx@x.org") {
		t.Fatalf("Check after rename = %v, %v", changed, err)
	}
}

func TestNewWatcherErrors(t *testing.T) {
	if _, err := NewWatcher(nil, nil, nil); err == nil {
		t.Error("no files: no error")
	}
	if _, err := NewWatcher([]string{filepath.Join(t.TempDir(), "missing")}, nil, nil); err == nil {
		t.Error("missing file: no error")
	}
}

func TestWatcherRunStops(t *testing.T) {
	path := filepath.Join(t.TempDir(), "list")
	if err := os.WriteFile(path, []byte("a@x.org,A,20100101\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := NewWatcher([]string{path}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx, time.Hour); close(done) }()
	cancel()
	<-done
}
