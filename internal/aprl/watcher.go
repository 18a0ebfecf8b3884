package aprl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Watcher holds the List built from a set of list and cleared files and
// rebuilds it when one of them changes. Current is safe for concurrent use
// with Check and Run.
//
// Files should be replaced by renaming a complete new version into place:
// a half-written file is parsed as it is (a truncated last line is reported
// as a bad line).
type Watcher struct {
	files, cleared []string
	logger         *slog.Logger
	cur            atomic.Pointer[List]

	mu     sync.Mutex // serialises Check
	stamps []os.FileInfo
}

// NewWatcher loads files (phishing_reply_addresses format) and clearedFiles
// (phishing_cleared_addresses format) and returns a Watcher holding the
// result. It fails when there are no list files or the first load fails.
// A nil logger discards.
func NewWatcher(files, clearedFiles []string, logger *slog.Logger) (*Watcher, error) {
	if len(files) == 0 {
		return nil, errors.New("aprl: no list files")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{
		files:   append([]string(nil), files...),
		cleared: append([]string(nil), clearedFiles...),
		logger:  logger,
	}
	if _, err := w.Check(); err != nil {
		return nil, err
	}
	return w, nil
}

// Current returns the List of the last successful load.
func (w *Watcher) Current() *List { return w.cur.Load() }

// Check stats the files and, when any differs from the last successful
// load (modification time, size or identity, so a rename into place is
// seen), parses them all and swaps in the new List. It reports whether a
// new List was swapped in. On a missing or unreadable file, or one that is
// not a list, the previous List stays current, the error is returned, and
// the next Check tries again.
func (w *Watcher) Check() (changed bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	paths := append(append([]string(nil), w.files...), w.cleared...)
	stamps := make([]os.FileInfo, len(paths))
	same := w.stamps != nil
	for i, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return false, fmt.Errorf("aprl: %w", err)
		}
		stamps[i] = fi
		if same {
			old := w.stamps[i]
			same = os.SameFile(old, fi) && old.ModTime().Equal(fi.ModTime()) && old.Size() == fi.Size()
		}
	}
	if same {
		return false, nil
	}
	l, bad, err := w.load()
	if err != nil {
		return false, err
	}
	w.cur.Store(l)
	w.stamps = stamps
	w.logger.Info("aprl list loaded", "entries", l.Len(), "cleared_removed", l.removed, "bad_lines", bad)
	return true, nil
}

// load parses every file and builds the List; it returns the number of
// reported bad lines.
func (w *Watcher) load() (*List, int, error) {
	var entries []Entry
	bad := 0
	report := func(errs []ParseError) {
		bad += len(errs)
		for i, e := range errs {
			if i == 10 {
				break
			}
			w.logger.Warn("aprl bad line skipped", "source", e.Source, "line", e.Line, "error", e.Msg)
		}
	}
	for _, p := range w.files {
		f, err := os.Open(p)
		if err != nil {
			return nil, 0, fmt.Errorf("aprl: %w", err)
		}
		e, errs, err := Parse(f, p)
		f.Close()
		if err != nil {
			return nil, 0, fmt.Errorf("aprl: %w", err)
		}
		report(errs)
		entries = append(entries, e...)
	}
	cleared := map[string]time.Time{}
	for _, p := range w.cleared {
		f, err := os.Open(p)
		if err != nil {
			return nil, 0, fmt.Errorf("aprl: %w", err)
		}
		c, errs, err := ParseCleared(f, p)
		f.Close()
		if err != nil {
			return nil, 0, fmt.Errorf("aprl: %w", err)
		}
		report(errs)
		for a, d := range c {
			if prev, dup := cleared[a]; !dup || d.After(prev) {
				cleared[a] = d
			}
		}
	}
	return Build(entries, cleared), bad, nil
}

// Run calls Check every interval (a minute if every is not positive) until
// ctx is done, logging failures; the previous List stays current meanwhile.
func (w *Watcher) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := w.Check(); err != nil {
				w.logger.Warn("aprl reload failed, keeping previous list", "error", err)
			}
		}
	}
}
