package passwdfile

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Field positions on a passwd-file line.
const (
	fieldUser = iota
	fieldPassword
	fieldUID
	fieldGID
	fieldGecos
	fieldHome
	fieldShell
	fieldExtra // and everything after it, joined with ':'
)

// LockField is the extra field Lock adds: with it Dovecot fails the
// passdb lookup whatever the password (see the package documentation).
const LockField = "fail"

// Entry is one user line of a passwd-file.
type Entry struct {
	// Line is the 1-based line number.
	Line int
	// User is the first field, the name Dovecot looks up.
	User string
	// Password is the stored password as written, usually {SCHEME}hash.
	Password string
	// UID, GID, Gecos, Home and Shell are the userdb fields; empty when
	// missing.
	UID, GID, Gecos, Home, Shell string
	// Extra is the extra-fields column: everything after the seventh
	// colon, colons included.
	Extra string
}

// Stored returns the stored password the way Dovecot reads it: as written,
// except that libpam-pwdfile's "hash[NN]" becomes {PLAIN-MD5}hash (34),
// {DIGEST-MD5}hash (56) or {CRYPT}hash (any other NN). A password without
// a {SCHEME} prefix is in the passdb's default scheme (CRYPT unless the
// passdb args say scheme=…).
func (e Entry) Stored() string {
	p := e.Password
	n := len(p)
	if n > 4 && p[0] != '{' && p[0] != '$' && p[n-1] == ']' && p[n-4] == '[' {
		// Dovecot computes the number without checking for digits.
		num := int(p[n-3]-'0')*10 + int(p[n-2]-'0')
		switch num {
		case 34:
			return "{PLAIN-MD5}" + p[:n-4]
		case 56:
			return "{DIGEST-MD5}" + p[:n-4]
		}
		return "{CRYPT}" + p[:n-4]
	}
	return p
}

// ExtraFields returns the extra fields: Extra split on spaces, as Dovecot
// splits it (p_strsplit_spaces), each "key=value" or a bare "key".
func (e Entry) ExtraFields() []string {
	return splitExtra(e.Extra)
}

// ExtraField returns the value of the first extra field named key, and
// whether there is one.
func (e Entry) ExtraField(key string) (value string, ok bool) {
	for _, f := range splitExtra(e.Extra) {
		if k, v, _ := strings.Cut(f, "="); k == key {
			return v, true
		}
	}
	return "", false
}

// Locked reports whether the entry carries LockField.
func (e Entry) Locked() bool {
	_, ok := e.ExtraField(LockField)
	return ok
}

func splitExtra(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' })
}

// File is a parsed passwd-file that keeps every line, comments and line
// ends included, so that writing it back changes only what was changed.
type File struct {
	lines []line
}

type line struct {
	text  string   // without the line end
	eol   string   // "\n", "\r\n", or "" for a last line without one
	parts []string // the ':'-separated fields of an entry; nil for other lines
}

// Parse parses a passwd-file. It fails only on a NUL byte, which Dovecot's
// C strings would read as an end of line.
func Parse(data []byte) (*File, error) {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return nil, fmt.Errorf("passwd-file holds a NUL byte at offset %d", i)
	}
	f := &File{}
	for len(data) > 0 {
		var l line
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			l.text = string(data)
			data = nil
		} else {
			l.text, l.eol = string(data[:i]), "\n"
			data = data[i+1:]
			// Dovecot's line reader drops a CR before the LF.
			if t, ok := strings.CutSuffix(l.text, "\r"); ok {
				l.text, l.eol = t, "\r\n"
			}
		}
		// db-passwd-file.c: "no username or comment".
		if l.text != "" && l.text[0] != ':' && l.text[0] != '#' {
			l.parts = strings.Split(l.text, ":")
		}
		f.lines = append(f.lines, l)
	}
	return f, nil
}

// Bytes returns the file's contents.
func (f *File) Bytes() []byte {
	var b bytes.Buffer
	for _, l := range f.lines {
		b.WriteString(l.text)
		b.WriteString(l.eol)
	}
	return b.Bytes()
}

// Entries returns every user line, duplicates included, in file order.
func (f *File) Entries() []Entry {
	var es []Entry
	for i, l := range f.lines {
		if l.parts != nil {
			es = append(es, entryOf(i+1, l.parts))
		}
	}
	return es
}

// Lookup returns user's entry: the first line for user, as in Dovecot,
// which logs later ones as errors and ignores them.
func (f *File) Lookup(user string) (Entry, bool) {
	for i, l := range f.lines {
		if l.parts != nil && l.parts[fieldUser] == user {
			return entryOf(i+1, l.parts), true
		}
	}
	return Entry{}, false
}

func entryOf(lineNo int, parts []string) Entry {
	field := func(i int) string {
		if i < len(parts) {
			return parts[i]
		}
		return ""
	}
	e := Entry{
		Line:     lineNo,
		User:     field(fieldUser),
		Password: field(fieldPassword),
		UID:      field(fieldUID),
		GID:      field(fieldGID),
		Gecos:    field(fieldGecos),
		Home:     field(fieldHome),
		Shell:    field(fieldShell),
	}
	if len(parts) > fieldExtra {
		e.Extra = strings.Join(parts[fieldExtra:], ":")
	}
	return e
}

// SetPassword sets user's stored password on every line for user (a
// duplicate line that Dovecot ignores today would otherwise bring the old
// password back the day the first one is removed).
func (f *File) SetPassword(user, stored string) error {
	if err := checkUser(user); err != nil {
		return err
	}
	if stored == "" || strings.ContainsAny(stored, ":\r\n\x00") {
		return fmt.Errorf("passwdfile: a stored password must be non-empty and hold no ':' or line break")
	}
	return f.update(user, func(parts []string) ([]string, error) {
		if len(parts) <= fieldPassword {
			return append(parts, stored), nil
		}
		parts[fieldPassword] = stored
		return parts, nil
	})
}

// SetExtraField sets the extra field key to value on every line for user,
// replacing any field of that name; an empty value writes a bare key.
// Dovecot expands %variables in extra fields: write %% for a literal %.
func (f *File) SetExtraField(user, key, value string) error {
	if err := checkUser(user); err != nil {
		return err
	}
	if err := checkKey(key); err != nil {
		return err
	}
	if strings.ContainsAny(value, " \r\n\x00") {
		return fmt.Errorf("passwdfile: extra field %s: a value holds no space or line break", key)
	}
	field := key
	if value != "" {
		field += "=" + value
	}
	return f.updateExtra(user, func(fields []string) []string {
		for i, fl := range fields {
			if k, _, _ := strings.Cut(fl, "="); k == key {
				// Replace the first in place, drop the others.
				return append(append(fields[:i:i], field), deleteKey(fields[i+1:], key)...)
			}
		}
		return append(fields, field)
	})
}

// RemoveExtraField removes every extra field named key from the lines for
// user. It is not an error when there is none.
func (f *File) RemoveExtraField(user, key string) error {
	if err := checkUser(user); err != nil {
		return err
	}
	if err := checkKey(key); err != nil {
		return err
	}
	return f.updateExtra(user, func(fields []string) []string { return deleteKey(fields, key) })
}

func deleteKey(fields []string, key string) []string {
	out := fields[:0:0]
	for _, fl := range fields {
		if k, _, _ := strings.Cut(fl, "="); k != key {
			out = append(out, fl)
		}
	}
	return out
}

// updateExtra rewrites the extra-fields column of user's lines with
// change, padding a short line to eight fields. A line whose fields are
// unchanged is left as it was.
func (f *File) updateExtra(user string, change func([]string) []string) error {
	return f.update(user, func(parts []string) ([]string, error) {
		var extra string
		if len(parts) > fieldExtra {
			if parts[fieldExtra] == "" && len(parts) > fieldExtra+1 {
				// db-passwd-file.c: an empty eighth field followed by more
				// is the old format, where the rest is the mail location.
				return nil, fmt.Errorf("passwdfile: %s: old-format line (mail location after an empty eighth field); convert it to userdb_mail=", user)
			}
			extra = strings.Join(parts[fieldExtra:], ":")
		}
		old := splitExtra(extra)
		fields := change(append([]string(nil), old...))
		if strings.Join(fields, " ") == strings.Join(old, " ") {
			return parts, nil
		}
		for len(parts) < fieldExtra {
			parts = append(parts, "")
		}
		return append(parts[:fieldExtra], strings.Join(fields, " ")), nil
	})
}

// update applies change to the fields of every line for user.
func (f *File) update(user string, change func([]string) ([]string, error)) error {
	found := false
	for i := range f.lines {
		l := &f.lines[i]
		if l.parts == nil || l.parts[fieldUser] != user {
			continue
		}
		found = true
		parts, err := change(append([]string(nil), l.parts...))
		if err != nil {
			return err
		}
		if text := strings.Join(parts, ":"); text != l.text {
			l.text, l.parts = text, parts
		}
	}
	if !found {
		return fmt.Errorf("%w: %s", ErrNoSuchAccount, user)
	}
	return nil
}

// ErrNoSuchAccount is returned for an account without a line.
var ErrNoSuchAccount = errors.New("passwdfile: no such account")

func checkUser(user string) error {
	if user == "" || user[0] == '#' || strings.ContainsAny(user, ":\r\n\x00") {
		return fmt.Errorf("passwdfile: %q cannot be a passwd-file user name", user)
	}
	return nil
}

func checkKey(key string) error {
	if key == "" || strings.ContainsAny(key, "= :\r\n\x00") {
		return fmt.Errorf("passwdfile: %q cannot be an extra field name", key)
	}
	return nil
}
