package pwhash

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-crypt/crypt/algorithm"
	"github.com/go-crypt/crypt/algorithm/argon2"
	"github.com/go-crypt/crypt/algorithm/bcrypt"
	"github.com/go-crypt/crypt/algorithm/md5crypt"
	"github.com/go-crypt/crypt/algorithm/scrypt"
	"github.com/go-crypt/crypt/algorithm/shacrypt"
)

// crypt64 is the alphabet of crypt(3) salts and hashes.
const crypt64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// unsupportedCryptIDs are real crypt(3) ids this package does not verify;
// only these are named in an error, since a bare "$…" string might be a
// cleartext password from a passdb with a PLAIN default scheme.
var unsupportedCryptIDs = map[string]bool{
	"2": true, "2x": true, "3": true, "7": true, "apr1": true, "gy": true,
	"md5": true, "sha1": true, "scrypt": true,
}

// parseCrypt parses a modular crypt string, "$id$…". The cost parameters
// are checked here, before go-crypt decodes, and go-crypt's errors are
// never passed on: they quote parts of the hash.
func (l Limits) parseCrypt(s string) (*Hash, error) {
	id, rest, ok := strings.Cut(strings.TrimPrefix(s, "$"), "$")
	if !ok {
		return nil, fmt.Errorf("%w: CRYPT: unsupported algorithm", ErrUnknownScheme)
	}
	switch id {
	case "1":
		return parseMD5Crypt(s)
	case "5", "6":
		return l.parseSHACrypt(id, s, rest)
	case "2a", "2b", "2y":
		return l.parseBcrypt(s, rest)
	case "y":
		return l.parseYescrypt(s, rest)
	case "argon2i", "argon2id", "argon2d":
		return l.parseArgon2(id, s)
	case "pbkdf2":
		return l.parseLDAPPBKDF2(pbkdf2SHA1, rest)
	case "pbkdf2-sha256":
		return l.parseLDAPPBKDF2(pbkdf2SHA256, rest)
	case "pbkdf2-sha512":
		return l.parseLDAPPBKDF2(pbkdf2SHA512, rest)
	}
	if unsupportedCryptIDs[id] {
		return nil, fmt.Errorf("%w: CRYPT $%s$", ErrUnknownScheme, id)
	}
	return nil, fmt.Errorf("%w: CRYPT: unsupported algorithm", ErrUnknownScheme)
}

// parseMD5Crypt parses "$1$salt$hash" (salt up to 8, hash 22 characters).
func parseMD5Crypt(s string) (*Hash, error) {
	const scheme = "CRYPT-MD5"
	f := strings.Split(s, "$")
	if len(f) != 4 || !cryptSalt(f[2], 8) || !cryptChars(f[3], 22) {
		return nil, malformed(scheme, "bad salt or hash")
	}
	return fromDigest(scheme, s, md5crypt.DecodeVariant(md5crypt.VariantStandard))
}

// shaCryptDefaultRounds is the SHA-crypt rounds when "rounds=" is absent.
const shaCryptDefaultRounds = 5000

// parseSHACrypt parses "$5$[rounds=N$]salt$hash" and "$6$…" (Ulrich
// Drepper's SHA-crypt spec: salt up to 16 characters, hash 43 or 86).
func (l Limits) parseSHACrypt(id, s, rest string) (*Hash, error) {
	scheme, hashLen, variant := "CRYPT-SHA256", 43, shacrypt.VariantSHA256
	if id == "6" {
		scheme, hashLen, variant = "CRYPT-SHA512", 86, shacrypt.VariantSHA512
	}
	f := strings.Split(rest, "$")
	if r, ok := strings.CutPrefix(f[0], "rounds="); ok {
		if err := checkIterations(scheme, "rounds", r, l.MaxRounds); err != nil {
			return nil, err
		}
		f = f[1:]
	} else if shaCryptDefaultRounds > l.MaxRounds {
		return nil, tooCostly(scheme, "rounds", shaCryptDefaultRounds, uint64(l.MaxRounds))
	}
	if len(f) != 2 || !cryptSalt(f[0], 16) || !cryptChars(f[1], hashLen) {
		return nil, malformed(scheme, "bad salt or hash")
	}
	return fromDigest(scheme, s, shacrypt.DecodeVariant(variant))
}

// parseBcrypt parses "$2b$NN$" followed by 22 salt and 31 hash characters.
func (l Limits) parseBcrypt(s, rest string) (*Hash, error) {
	const scheme = "BLF-CRYPT"
	f := strings.Split(rest, "$")
	if len(f) != 2 || len(f[0]) != 2 || !digits(f[0]) || !cryptChars(f[1], 53) {
		return nil, malformed(scheme, "bad cost, salt or hash")
	}
	cost, _ := strconv.Atoi(f[0])
	if cost < 4 {
		return nil, malformed(scheme, "cost below 4")
	}
	if cost > l.MaxBcryptCost {
		return nil, tooCostly(scheme, "cost", uint64(cost), uint64(l.MaxBcryptCost))
	}
	return fromDigest(scheme, s, bcrypt.DecodeVariant(bcrypt.VariantStandard))
}

// parseYescrypt parses libxcrypt's "$y$jNR$salt$hash" with default flags
// ('j'); go-crypt supports no other. N is 2^(index of the second setting
// character + 1) and r the index of the third + 1; memory is 128·r·N bytes
// (libxcrypt yescrypt-common.c).
func (l Limits) parseYescrypt(s, rest string) (*Hash, error) {
	const scheme = "CRYPT-YESCRYPT"
	f := strings.Split(rest, "$")
	if len(f) != 3 || f[1] == "" || !cryptChars(f[1], len(f[1])) || !cryptChars(f[2], 43) {
		return nil, malformed(scheme, "bad salt or hash")
	}
	if len(f[0]) != 3 || f[0][0] != 'j' {
		return nil, fmt.Errorf("%w: %s with non-default parameters", ErrUnknownScheme, scheme)
	}
	lnIdx, rIdx := strings.IndexByte(crypt64, f[0][1]), strings.IndexByte(crypt64, f[0][2])
	if lnIdx < 0 || rIdx < 0 {
		return nil, malformed(scheme, "invalid parameters")
	}
	ln, r := uint64(lnIdx+1), uint64(rIdx+1)
	limit := uint64(l.MaxMemoryKiB)
	// 128·r·2^ln bytes is r·2^(ln-3) KiB; ln ≥ 40 exceeds any uint32 KiB
	// limit whatever r is, and keeps the shift from overflowing.
	if ln >= 40 {
		return nil, tooCostlyHuge(scheme, "memory KiB", limit)
	}
	if kib := r << ln / 8; kib > limit {
		return nil, tooCostly(scheme, "memory KiB", kib, limit)
	}
	return fromDigest(scheme, s, scrypt.DecodeVariant(scrypt.VariantYescrypt))
}

// parseArgon2 parses a PHC string, "$argon2id$v=19$m=M,t=T,p=P$salt$hash"
// with unpadded base64 salt and hash, as libsodium, Dovecot and OpenLDAP's
// argon2 module write it.
func (l Limits) parseArgon2(id, s string) (*Hash, error) {
	scheme := strings.ToUpper(id)
	f := strings.Split(s, "$")
	if len(f) != 6 || f[2] != "v=19" {
		return nil, malformed(scheme, "not a version 19 PHC string")
	}
	var seen [3]bool // m, t, p
	for kv := range strings.SplitSeq(f[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		var i int
		var limit uint64
		switch k {
		case "m":
			i, limit = 0, uint64(l.MaxMemoryKiB)
		case "t":
			i, limit = 1, uint64(l.MaxArgon2Time)
		case "p":
			i, limit = 2, uint64(l.MaxArgon2Lanes)
		default:
			return nil, malformed(scheme, "unknown parameter")
		}
		if seen[i] || v == "" || !digits(v) {
			return nil, malformed(scheme, "invalid parameters")
		}
		seen[i] = true
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil { // all digits, so too large
			return nil, tooCostlyHuge(scheme, k, limit)
		}
		if n > limit {
			return nil, tooCostly(scheme, k, n, limit)
		}
	}
	if !seen[0] || !seen[1] || !seen[2] {
		return nil, malformed(scheme, "missing parameters")
	}
	// RFC 9106 section 3.1: salt at least 8 bytes; a tag shorter than 16
	// is a truncated value (libsodium and Dovecot write 32).
	salt, errS := base64.RawStdEncoding.DecodeString(f[4])
	tag, errT := base64.RawStdEncoding.DecodeString(f[5])
	if errS != nil || errT != nil || len(salt) < 8 || len(tag) < 16 {
		return nil, malformed(scheme, "bad salt or hash")
	}
	return fromDigest(scheme, s, argon2.DecodeVariant(argon2.VariantNone))
}

// fromDigest decodes with go-crypt into a Slow Hash.
func fromDigest(scheme, s string, decode func(string) (algorithm.Digest, error)) (*Hash, error) {
	d, err := decode(s)
	if err != nil || d == nil {
		return nil, malformed(scheme, "rejected by decoder")
	}
	return &Hash{scheme: scheme, cost: Slow, v: cryptVerifier{d}}, nil
}

// cryptVerifier verifies with a go-crypt digest, which recomputes the key
// and compares with crypto/subtle.
type cryptVerifier struct {
	d algorithm.Digest
}

func (c cryptVerifier) verify(candidate []byte) bool {
	return c.d.MatchBytes(candidate)
}

// checkIterations checks a decimal rounds or iterations count against max.
func checkIterations(scheme, param, s string, max int) error {
	if s == "" || !digits(s) {
		return malformed(scheme, "invalid "+param)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil { // all digits, so too large
		return tooCostlyHuge(scheme, param, uint64(max))
	}
	if n > uint64(max) {
		return tooCostly(scheme, param, n, uint64(max))
	}
	if n == 0 {
		return malformed(scheme, param+" is zero")
	}
	return nil
}

// cryptSalt reports whether s is a crypt(3) salt of 1 to max characters.
func cryptSalt(s string, max int) bool {
	return s != "" && len(s) <= max && cryptChars(s, len(s))
}

// cryptChars reports whether s has n characters, all from crypt64.
func cryptChars(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(crypt64, s[i]) < 0 {
			return false
		}
	}
	return true
}

// digits reports whether s is all ASCII digits.
func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
