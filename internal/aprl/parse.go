package aprl

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Limits on what Parse, ParseCleared and ParseMatcher accept.
const (
	// MaxLineLen is the longest line accepted, without its line ending.
	// An address is at most 254 octets (RFC 5321 section 4.5.3.1.3); with a
	// type and a date a line is under 270, so 1 KiB only rejects garbage.
	MaxLineLen = 1024
	// MaxEntries bounds the entries of one file. The full upstream list
	// (2018) has 53,438; a hundred times that keeps memory bounded (about
	// half a gigabyte at worst) while leaving room for growth.
	MaxEntries = 5_000_000
	// MaxBadLines is the number of bad lines after which a file is rejected
	// as not being in the list format. The upstream files have none.
	MaxBadLines = 1000
	// fewBadLines is how many bad lines a file with entries may always
	// have: enough for hand edits gone wrong, too few for a wrong file.
	fewBadLines = 10
	// maxErrors is the number of ParseErrors kept; further bad lines are
	// counted but not reported one by one.
	maxErrors = 100
	// maxQuote is how much of a bad line a ParseError quotes.
	maxQuote = 80
)

// maxEntries is MaxEntries, a variable so tests can lower it.
var maxEntries = MaxEntries

// dateLayout is the DATE field: YYYYMMDD.
const dateLayout = "20060102"

// Entry is one listed address.
type Entry struct {
	Address  string    // normalised: lower case, no angle brackets
	Types    Type      // how the address was used
	LastSeen time.Time // day last seen in a campaign, UTC midnight
	Source   string    // file the entry came from
	Line     int       // line number in Source, from 1
}

// ParseError describes a line that was skipped.
type ParseError struct {
	Source string
	Line   int
	Msg    string // quotes at most the first 80 bytes of the line
}

func (e ParseError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.Source, e.Line, e.Msg)
}

// ErrNotList is returned (wrapped) when a file has too many bad lines to be
// a list in the expected format.
var ErrNotList = errors.New("not a list in the expected format")

// lineReader reads bounded lines and collects ParseErrors.
type lineReader struct {
	r       *bufio.Reader
	source  string
	line    int
	errs    []ParseError
	bad     int
	good    int
	skipped int // errors not kept in errs
}

func newLineReader(r io.Reader, source string) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 4096), source: source}
}

// next returns the next line without its line ending. Blank and '#' comment
// lines are skipped; a line longer than MaxLineLen is reported and skipped.
func (lr *lineReader) next() (string, bool, error) {
	for {
		b, err := lr.r.ReadSlice('\n')
		if len(b) == 0 && err != nil {
			if err == io.EOF {
				return "", false, nil
			}
			return "", false, fmt.Errorf("reading %s: %w", lr.source, err)
		}
		lr.line++
		long := false
		if err == bufio.ErrBufferFull {
			long = true
			head := string(b[:maxQuote])
			for err == bufio.ErrBufferFull {
				_, err = lr.r.ReadSlice('\n')
			}
			lr.fail(fmt.Sprintf("line longer than %d bytes: %q…", MaxLineLen, head))
		}
		if err != nil && err != io.EOF {
			return "", false, fmt.Errorf("reading %s: %w", lr.source, err)
		}
		if long {
			if err == io.EOF {
				return "", false, nil
			}
			continue
		}
		s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if len(s) > MaxLineLen {
			lr.fail(fmt.Sprintf("line longer than %d bytes: %s", MaxLineLen, quote(s)))
			continue
		}
		t := strings.TrimSpace(s)
		if t == "" || t[0] == '#' {
			if err == io.EOF {
				return "", false, nil
			}
			continue
		}
		return t, true, nil
	}
}

func quote(s string) string {
	if len(s) > maxQuote {
		return fmt.Sprintf("%q…", s[:maxQuote])
	}
	return fmt.Sprintf("%q", s)
}

func (lr *lineReader) fail(msg string) {
	lr.bad++
	if len(lr.errs) < maxErrors {
		lr.errs = append(lr.errs, ParseError{Source: lr.source, Line: lr.line, Msg: msg})
	} else {
		lr.skipped++
	}
}

func (lr *lineReader) ok() error {
	lr.good++
	if lr.good > maxEntries {
		return fmt.Errorf("%s: more than %d entries", lr.source, maxEntries)
	}
	return nil
}

// finish returns the collected errors, and an error wrapping ErrNotList when
// the file is not a list: more than MaxBadLines bad lines, bad lines and no
// good ones, or more than a few bad lines and more bad than good (an HTML
// error page saved in place of the list, say). A few bad lines (up to
// fewBadLines) never reject a file that has entries.
func (lr *lineReader) finish() ([]ParseError, error) {
	errs := lr.errs
	if lr.skipped > 0 {
		errs = append(errs, ParseError{Source: lr.source, Line: lr.line, Msg: fmt.Sprintf("%d more bad lines not reported", lr.skipped)})
	}
	if lr.bad > MaxBadLines || (lr.bad > 0 && lr.good == 0) || (lr.bad > fewBadLines && lr.bad > lr.good) {
		return errs, fmt.Errorf("%s: %d bad lines, %d good: %w", lr.source, lr.bad, lr.good, ErrNotList)
	}
	return errs, nil
}

// splitFields splits an entry line on commas and trims each field.
func splitFields(s string, n int) ([]string, bool) {
	f := strings.Split(s, ",")
	if len(f) != n {
		return nil, false
	}
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	return f, true
}

func parseDate(s string) (time.Time, error) {
	if len(s) != len(dateLayout) {
		return time.Time{}, fmt.Errorf("date %s is not YYYYMMDD", quote(s))
	}
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("date %s is not YYYYMMDD", quote(s))
	}
	return t, nil
}

// Parse reads a phishing_reply_addresses file: ADDRESS,TYPE,DATE lines.
// Bad lines are skipped and returned as ParseErrors; the error is non-nil
// only when reading fails, the file has more than MaxEntries entries, or it
// has so many bad lines that it is not a list (ErrNotList). Addresses are
// normalised; duplicates are returned as they are (Build merges them).
func Parse(r io.Reader, source string) ([]Entry, []ParseError, error) {
	lr := newLineReader(r, source)
	var entries []Entry
	for {
		s, ok, err := lr.next()
		if err != nil {
			errs, _ := lr.finish()
			return nil, errs, err
		}
		if !ok {
			break
		}
		e, msg := parseEntry(s)
		if msg != "" {
			lr.fail(msg)
			continue
		}
		if err := lr.ok(); err != nil {
			errs, _ := lr.finish()
			return nil, errs, err
		}
		e.Source, e.Line = source, lr.line
		entries = append(entries, e)
	}
	errs, err := lr.finish()
	if err != nil {
		return nil, errs, err
	}
	return entries, errs, nil
}

// parseEntry parses one ADDRESS,TYPE,DATE line; msg is non-empty on error.
func parseEntry(s string) (e Entry, msg string) {
	f, ok := splitFields(s, 3)
	if !ok {
		return e, "want ADDRESS,TYPE,DATE: " + quote(s)
	}
	addr, ok := normalize(f[0])
	if !ok {
		return e, "bad address: " + quote(s)
	}
	t, err := parseType(f[1])
	if err != nil {
		return e, err.Error() + ": " + quote(s)
	}
	d, err := parseDate(f[2])
	if err != nil {
		return e, err.Error()
	}
	return Entry{Address: addr, Types: t, LastSeen: d}, ""
}

// ParseCleared reads a phishing_cleared_addresses file: ADDRESS,DATE lines,
// DATE the day the account was secured. It returns the latest cleared date
// of each normalised address; errors are as for Parse.
func ParseCleared(r io.Reader, source string) (map[string]time.Time, []ParseError, error) {
	lr := newLineReader(r, source)
	cleared := make(map[string]time.Time)
	for {
		s, ok, err := lr.next()
		if err != nil {
			errs, _ := lr.finish()
			return nil, errs, err
		}
		if !ok {
			break
		}
		f, ok := splitFields(s, 2)
		if !ok {
			lr.fail("want ADDRESS,DATE: " + quote(s))
			continue
		}
		addr, ok := normalize(f[0])
		if !ok {
			lr.fail("bad address: " + quote(s))
			continue
		}
		d, err := parseDate(f[1])
		if err != nil {
			lr.fail(err.Error())
			continue
		}
		if err := lr.ok(); err != nil {
			errs, _ := lr.finish()
			return nil, errs, err
		}
		if prev, dup := cleared[addr]; !dup || d.After(prev) {
			cleared[addr] = d
		}
	}
	errs, err := lr.finish()
	if err != nil {
		return nil, errs, err
	}
	return cleared, errs, nil
}
