package pwhash

import (
	"errors"
	"fmt"
	"strings"
)

// Errors returned by Parse, always wrapped with the scheme name and never
// with any part of the stored hash.
var (
	// ErrUnknownScheme means the scheme, or the crypt algorithm, is not one
	// this package verifies.
	ErrUnknownScheme = errors.New("pwhash: unknown password scheme")
	// ErrMalformed means the scheme is known but the stored value does not
	// follow its format (truncated, bad encoding, wrong digest length …).
	ErrMalformed = errors.New("pwhash: malformed password hash")
	// ErrTooCostly means the hash is well-formed but verifying it would
	// take more memory or time than Limits allow.
	ErrTooCostly = errors.New("pwhash: password hash parameters exceed limits")
)

// maxStoredLen bounds the stored string. The longest supported format
// (argon2 or PBKDF2-SHA512 with generous salt) is under 300 bytes and an
// LDAP {SSHA512} with a 64-byte salt is about 180; 4 KiB only refuses
// garbage while keeping every decode bounded.
const maxStoredLen = 4096

// maxSchemeLen bounds the name between braces; the longest real one,
// "PBKDF2-SHA512.BASE64", is 20. A longer or odd "name" is reported
// without repeating it: it may be a cleartext password that happens to
// start with '{'.
const maxSchemeLen = 32

// Cost says how expensive one Verify is.
type Cost uint8

// The costs of a Hash.
const (
	// Fast: a digest, a salted digest or a plain comparison; well under a
	// microsecond per candidate, fine inline on the mail path.
	Fast Cost = iota + 1
	// Slow: a deliberately slow KDF (crypt family, bcrypt, argon2, PBKDF2,
	// yescrypt); about a millisecond to a second per candidate, for a
	// bounded background pool with a time budget.
	Slow
)

// String returns "fast" or "slow".
func (c Cost) String() string {
	switch c {
	case Fast:
		return "fast"
	case Slow:
		return "slow"
	}
	return "unknown"
}

// Hash is a parsed stored password hash. It is immutable, and Verify is safe
// for concurrent use. Printing a Hash shows only its scheme.
type Hash struct {
	scheme string
	cost   Cost
	v      verifier
}

// verifier is one scheme's comparison.
type verifier interface {
	verify(candidate []byte) bool
}

// Scheme returns the canonical upper-case scheme: one of PLAIN, MD5, SMD5,
// SHA, SSHA, SHA256, SSHA256, SHA384, SSHA384, SHA512, SSHA512, CRYPT-MD5,
// CRYPT-SHA256, CRYPT-SHA512, CRYPT-YESCRYPT, BLF-CRYPT, ARGON2I, ARGON2ID,
// ARGON2D, PBKDF2-SHA1, PBKDF2-SHA256 or PBKDF2-SHA512. Aliases map to one
// name ({SHA1} is SHA, {SHA512-CRYPT} and {CRYPT}$6$ are CRYPT-SHA512,
// Dovecot's {PBKDF2} is PBKDF2-SHA1), so it is safe as a metric label.
func (h *Hash) Scheme() string {
	if h == nil {
		return ""
	}
	return h.scheme
}

// Cost returns Fast or Slow.
func (h *Hash) Cost() Cost {
	if h == nil {
		return 0
	}
	return h.cost
}

// Verify reports whether candidate is the password. The comparison of
// derived values is constant-time (crypto/subtle). Verify neither keeps nor
// logs candidate. A nil or zero Hash matches nothing.
func (h *Hash) Verify(candidate []byte) bool {
	if h == nil || h.v == nil {
		return false
	}
	return h.v.verify(candidate)
}

// String returns "pwhash.Hash{SCHEME}", never the hash itself, so a Hash
// can be logged by accident without leaking it.
func (h *Hash) String() string {
	return "pwhash.Hash{" + h.Scheme() + "}"
}

// GoString is String, for %#v.
func (h *Hash) GoString() string { return h.String() }

// Limits caps the parameters Parse accepts. A zero field takes its default.
type Limits struct {
	// MaxMemoryKiB caps the memory of one verification: argon2's m, and
	// yescrypt's 128·r·N bytes. Default 262144 (256 MiB): libsodium's
	// "moderate" argon2 level; Dovecot's default is 64 MiB.
	MaxMemoryKiB uint32
	// MaxArgon2Time caps argon2's t (passes over memory). Default 10:
	// above libsodium's "sensitive" levels (4 for argon2id, 8 for argon2i).
	MaxArgon2Time uint32
	// MaxArgon2Lanes caps argon2's p; each lane is a goroutine. Default 16:
	// libsodium and Dovecot use 1, RFC 9106 suggests 4.
	MaxArgon2Lanes uint32
	// MaxBcryptCost caps bcrypt's log2 cost. Default 14: about a second per
	// candidate here (cost 10 is 73 ms); Dovecot's default is 5, PHP's 10.
	MaxBcryptCost int
	// MaxRounds caps SHA-crypt rounds and PBKDF2 iterations. Default
	// 1,000,000: the largest defaults in use (SHA256-crypt in go-crypt,
	// PBKDF2-SHA256 at OWASP's 600,000) fit; glibc's maximum, 999,999,999,
	// would take half an hour.
	MaxRounds int
}

// Defaults of Limits; see the fields for why.
const (
	defaultMaxMemoryKiB   = 256 * 1024
	defaultMaxArgon2Time  = 10
	defaultMaxArgon2Lanes = 16
	defaultMaxBcryptCost  = 14
	defaultMaxRounds      = 1_000_000
)

func (l Limits) withDefaults() Limits {
	if l.MaxMemoryKiB == 0 {
		l.MaxMemoryKiB = defaultMaxMemoryKiB
	}
	if l.MaxArgon2Time == 0 {
		l.MaxArgon2Time = defaultMaxArgon2Time
	}
	if l.MaxArgon2Lanes == 0 {
		l.MaxArgon2Lanes = defaultMaxArgon2Lanes
	}
	if l.MaxBcryptCost <= 0 {
		l.MaxBcryptCost = defaultMaxBcryptCost
	}
	if l.MaxRounds <= 0 {
		l.MaxRounds = defaultMaxRounds
	}
	return l
}

// Parse parses a stored hash with the default Limits.
func Parse(stored string) (*Hash, error) {
	return Limits{}.Parse(stored)
}

// Parse parses a stored hash: "{SCHEME}value", or a bare crypt string
// ("$6$…", as in shadow-style passwd-files). A value that relies on a
// passdb's default_pass_scheme must be given with that scheme prefixed.
// The value is taken as is, surrounding spaces included. Errors wrap
// ErrUnknownScheme, ErrMalformed or ErrTooCostly and name at most the
// scheme.
func (l Limits) Parse(stored string) (*Hash, error) {
	l = l.withDefaults()
	if len(stored) > maxStoredLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxStoredLen)
	}
	if strings.HasPrefix(stored, "{") {
		end := strings.IndexByte(stored, '}')
		if end < 0 {
			return nil, fmt.Errorf("%w: no {SCHEME} prefix", ErrUnknownScheme)
		}
		return l.parseScheme(stored[1:end], stored[end+1:])
	}
	if strings.HasPrefix(stored, "$") {
		return l.parseCrypt(stored)
	}
	return nil, fmt.Errorf("%w: no {SCHEME} prefix", ErrUnknownScheme)
}

// parseScheme dispatches on the name between braces.
func (l Limits) parseScheme(name, body string) (*Hash, error) {
	if !validSchemeName(name) {
		return nil, fmt.Errorf("%w: invalid scheme name", ErrUnknownScheme)
	}
	upper := strings.ToUpper(name)
	// Dovecot: "{SCHEME.HEX}" and "{SCHEME.B64}" set the encoding of the
	// schemes that have one (password-scheme.c, password_scheme_lookup).
	base, enc, _ := strings.Cut(upper, ".")
	switch enc {
	case "", "HEX", "B64", "BASE64":
	default:
		return nil, fmt.Errorf("%w: %s", ErrUnknownScheme, upper)
	}
	if body == "" {
		return nil, fmt.Errorf("%w: %s: empty", ErrMalformed, upper)
	}
	if ds, ok := digestSchemes[base]; ok {
		// Dovecot's {MD5} is MD5-CRYPT when the value is "$1$…"; OpenLDAP's
		// is a base64 digest.
		if base == "MD5" && enc == "" && strings.HasPrefix(body, "$1$") {
			return l.parseCrypt(body)
		}
		return parseDigest(ds, enc, body)
	}
	if enc != "" && base != "PLAIN" && base != "CLEARTEXT" && base != "CLEAR" {
		return nil, fmt.Errorf("%w: %s", ErrUnknownScheme, upper)
	}
	switch base {
	case "PLAIN", "CLEARTEXT", "CLEAR":
		return parsePlain(enc, body)
	case "CRYPT", "MD5-CRYPT", "SHA256-CRYPT", "SHA512-CRYPT", "BLF-CRYPT":
		// All name crypt(3)-style values whose "$id$" picks the algorithm:
		// Dovecot checks SHA*-CRYPT and BLF-CRYPT with crypt(3) itself, so
		// the name does not constrain the value there either.
		if !strings.HasPrefix(body, "$") {
			return nil, fmt.Errorf("%w: CRYPT-DES", ErrUnknownScheme)
		}
		return l.parseCrypt(body)
	case "ARGON2", "ARGON2I", "ARGON2ID":
		// OpenLDAP's {ARGON2} and Dovecot's {ARGON2I}/{ARGON2ID} hold a PHC
		// string; the variant is the one it names.
		if !strings.HasPrefix(body, "$argon2") {
			return nil, fmt.Errorf("%w: %s: not a PHC argon2 string", ErrMalformed, base)
		}
		return l.parseCrypt(body)
	case "PBKDF2":
		if strings.HasPrefix(body, "$1$") {
			return l.parseDovecotPBKDF2(body)
		}
		return l.parseLDAPPBKDF2(pbkdf2SHA1, body)
	case "PBKDF2-SHA1":
		return l.parseLDAPPBKDF2(pbkdf2SHA1, body)
	case "PBKDF2-SHA256":
		return l.parseLDAPPBKDF2(pbkdf2SHA256, body)
	case "PBKDF2-SHA512":
		return l.parseLDAPPBKDF2(pbkdf2SHA512, body)
	}
	return nil, fmt.Errorf("%w: %s", ErrUnknownScheme, upper)
}

// validSchemeName reports whether name looks like a scheme, so that it may
// be repeated in an error.
func validSchemeName(name string) bool {
	if name == "" || len(name) > maxSchemeLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		default:
			return false
		}
	}
	return true
}

// malformed wraps ErrMalformed with the scheme and a fixed reason.
func malformed(scheme, reason string) error {
	return fmt.Errorf("%w: %s: %s", ErrMalformed, scheme, reason)
}

// tooCostly wraps ErrTooCostly with the parameter, its value and the limit;
// cost parameters are not secret.
func tooCostly(scheme, param string, value, limit uint64) error {
	return fmt.Errorf("%w: %s: %s %d exceeds %d", ErrTooCostly, scheme, param, value, limit)
}

// tooCostlyHuge is tooCostly for a value too large to parse.
func tooCostlyHuge(scheme, param string, limit uint64) error {
	return fmt.Errorf("%w: %s: %s exceeds %d", ErrTooCostly, scheme, param, limit)
}
