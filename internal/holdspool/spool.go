package holdspool

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

// Spool is a directory of hold records waiting for the store. Put and
// Remove are called by one goroutine at a time; Len and Bytes by any.
type Spool struct {
	dir string
	log *slog.Logger

	mu    sync.Mutex
	last  int64 // the newest file's number: names grow
	files atomic.Int64
	bytes atomic.Int64
}

// Entry is one spooled hold.
type Entry struct {
	Name   string // the file's name in the spool directory; "" when not spooled
	Size   int64
	Hold   *store.Hold
	Report []Finding // what the hold reports for an incident once written
}

// AsideDir is the subdirectory files are moved to when they cannot be read
// or the store refused their record: kept for the admin, never written.
const AsideDir = "failed"

// File names: a 20-digit number (the time of the write in nanoseconds,
// made to grow) and the suffix; a file being written has tmpPrefix.
const (
	suffix    = ".hold"
	tmpPrefix = ".tmp-"
	numDigits = 20
)

// Open opens the spool in dir, creating it (mode 0700) when missing, and
// returns the holds spooled there, oldest first. A file that is not a
// readable hold is moved to AsideDir with a logged error; an unfinished
// write (a temporary file left by a killed process) is removed with a
// warning: its hold was never spooled. What the log says of a file never
// includes its content.
func Open(dir string, log *slog.Logger) (*Spool, []Entry, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("creating the hold spool: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("hold spool: %w", err)
	}
	s := &Spool{dir: dir, log: log}
	des, err := os.ReadDir(dir) // sorted by name: oldest first
	if err != nil {
		return nil, nil, fmt.Errorf("reading the hold spool: %w", err)
	}
	var out []Entry
	for _, de := range des {
		name := de.Name()
		switch {
		case name == AsideDir && de.IsDir():
			continue
		case strings.HasPrefix(name, tmpPrefix):
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				log.Warn("hold spool: an unfinished file could not be removed", "file", filepath.Join(dir, name), "err", err)
				continue
			}
			log.Warn("hold spool: an unfinished file removed (the process stopped while writing it; the queue sync records its hold)", "file", filepath.Join(dir, name))
			continue
		}
		n, ok := fileNumber(name)
		if !ok {
			log.Warn("hold spool: a file that is not the spool's left alone", "file", filepath.Join(dir, name))
			continue
		}
		s.last = max(s.last, n)
		e, err := s.read(name)
		if err != nil {
			s.moveAside(name, "it is not a readable hold record", err)
			continue
		}
		out = append(out, e)
	}
	s.files.Store(int64(len(out)))
	var total int64
	for _, e := range out {
		total += e.Size
	}
	s.bytes.Store(total)
	return s, out, nil
}

// Dir returns the spool's directory.
func (s *Spool) Dir() string { return s.dir }

// Len returns how many holds are spooled.
func (s *Spool) Len() int { return int(s.files.Load()) }

// Bytes returns the size of the spooled files.
func (s *Spool) Bytes() int64 { return s.bytes.Load() }

func fileNumber(name string) (int64, bool) {
	digits, ok := strings.CutSuffix(name, suffix)
	if !ok || len(digits) != numDigits {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	return n, err == nil
}

func (s *Spool) read(name string) (Entry, error) {
	p := filepath.Join(s.dir, name)
	fi, err := os.Lstat(p)
	if err != nil {
		return Entry{}, err
	}
	if !fi.Mode().IsRegular() {
		return Entry{}, fmt.Errorf("%w: not a regular file (%s)", ErrCorrupt, fi.Mode().Type())
	}
	if fi.Size() > MaxFileBytes {
		return Entry{}, fmt.Errorf("%w: %d bytes, over %d", ErrCorrupt, fi.Size(), MaxFileBytes)
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return Entry{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return Entry{}, err
	}
	e, err := DecodeEntry(b)
	if err != nil {
		return Entry{}, err
	}
	e.Name, e.Size = name, int64(len(b))
	return e, nil
}

// nextName returns a name after every name in the spool.
func (s *Spool) nextName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = max(time.Now().UnixNano(), s.last+1)
	return fmt.Sprintf("%0*d%s", numDigits, s.last, suffix)
}

// Put spools holds, each in a file of its own written whole (a temporary
// file, fsync, rename), then syncs the directory once. The entries are in
// the order of hs; one whose Name is empty was not spooled, and the error
// says why.
func (s *Spool) Put(hs []*store.Hold) ([]Entry, error) {
	in := make([]Entry, len(hs))
	for i, h := range hs {
		in[i].Hold = h
	}
	return s.PutEntries(in)
}

// PutEntries is Put of holds with the findings each reports once written
// (their Name and Size are ignored).
func (s *Spool) PutEntries(in []Entry) ([]Entry, error) {
	out := make([]Entry, len(in))
	var errs []error
	wrote := false
	for i, e := range in {
		h := e.Hold
		b, err := EncodeEntry(e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		name := s.nextName()
		if err := s.writeFile(name, b); err != nil {
			errs = append(errs, err)
			continue
		}
		out[i] = Entry{Name: name, Size: int64(len(b)), Hold: h, Report: e.Report}
		s.files.Add(1)
		s.bytes.Add(int64(len(b)))
		wrote = true
	}
	if wrote {
		if err := syncDir(s.dir); err != nil {
			errs = append(errs, fmt.Errorf("syncing the hold spool: %w", err))
		}
	}
	return out, errors.Join(errs...)
}

func (s *Spool) writeFile(name string, b []byte) (err error) {
	tmp := filepath.Join(s.dir, tmpPrefix+name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("spooling a hold: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("spooling a hold: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, name)); err != nil {
		return fmt.Errorf("spooling a hold: %w", err)
	}
	return nil
}

// Remove removes the files of holds the store has taken, then syncs the
// directory once. Entries that were not spooled are skipped.
func (s *Spool) Remove(es []Entry) error {
	var errs []error
	removed := false
	for _, e := range es {
		if e.Name == "" {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, e.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing a written hold from the spool: %w", err))
			continue
		}
		s.files.Add(-1)
		s.bytes.Add(-e.Size)
		removed = true
	}
	if removed {
		if err := syncDir(s.dir); err != nil {
			errs = append(errs, fmt.Errorf("syncing the hold spool: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Aside moves the file of a hold the store refused to AsideDir, with a
// logged error saying why: kept for the admin, never written again.
func (s *Spool) Aside(e Entry, why error) {
	if e.Name == "" {
		return
	}
	if s.moveAside(e.Name, "the store refused its record", why) {
		s.files.Add(-1)
		s.bytes.Add(-e.Size)
	}
}

// moveAside moves a file to AsideDir (under a name not yet taken there)
// and logs why, and reports whether it moved.
func (s *Spool) moveAside(name, what string, why error) bool {
	from := filepath.Join(s.dir, name)
	aside := filepath.Join(s.dir, AsideDir)
	err := os.MkdirAll(aside, 0o700)
	to := filepath.Join(aside, name)
	for i := 1; err == nil; i++ {
		if _, serr := os.Lstat(to); errors.Is(serr, os.ErrNotExist) {
			break
		}
		to = filepath.Join(aside, fmt.Sprintf("%s.%d", name, i))
	}
	if err == nil {
		err = os.Rename(from, to)
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		s.log.Error("hold spool: a file could not be moved aside; it stays where it is", "file", from, "why", what, "detail", why, "err", err)
		return false
	}
	s.log.Error("hold spool: a file moved aside, its hold not written: "+what+" (the queue sync records the message from Postfix's hold queue)", "file", to, "err", why)
	return true
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
