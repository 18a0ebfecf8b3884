package pwhash

import (
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"strings"
)

// pbkdf2PRF is PBKDF2's pseudo-random function: HMAC with this hash.
type pbkdf2PRF struct {
	scheme string
	new    func() hash.Hash
	size   int
}

var (
	pbkdf2SHA1   = pbkdf2PRF{"PBKDF2-SHA1", sha1.New, sha1.Size}
	pbkdf2SHA256 = pbkdf2PRF{"PBKDF2-SHA256", sha256.New, sha256.Size}
	pbkdf2SHA512 = pbkdf2PRF{"PBKDF2-SHA512", sha512.New, sha512.Size}
)

// parseDovecotPBKDF2 parses Dovecot's {PBKDF2} value, "$1$salt$rounds$hex":
// PBKDF2-HMAC-SHA1, the salt string used as is (not decoded), a 20-byte key
// in 40 hex digits (Dovecot 2.3 password-scheme-pbkdf2.c, pbkdf2_verify).
func (l Limits) parseDovecotPBKDF2(body string) (*Hash, error) {
	prf := pbkdf2SHA1
	f := strings.Split(strings.TrimPrefix(body, "$1$"), "$")
	if len(f) != 3 {
		return nil, malformed(prf.scheme, "not salt, rounds and key")
	}
	if err := checkIterations(prf.scheme, "rounds", f[1], l.MaxRounds); err != nil {
		return nil, err
	}
	dk, err := hex.DecodeString(f[2])
	if err != nil || len(dk) != prf.size {
		return nil, malformed(prf.scheme, "key is not 40 hex digits")
	}
	return newPBKDF2(prf, []byte(f[0]), f[1], dk), nil
}

// parseLDAPPBKDF2 parses "iter$salt$dk" with salt and dk in adapted base64
// (base64 with '.' for '+' and no padding), the format of OpenLDAP's
// pw-pbkdf2 module after "{PBKDF2-SHA512}" and of passlib after
// "$pbkdf2-sha512$". The key is as long as the hash, as pw-pbkdf2 checks.
func (l Limits) parseLDAPPBKDF2(prf pbkdf2PRF, body string) (*Hash, error) {
	f := strings.Split(body, "$")
	if len(f) != 3 {
		return nil, malformed(prf.scheme, "not iterations, salt and key")
	}
	if err := checkIterations(prf.scheme, "iterations", f[0], l.MaxRounds); err != nil {
		return nil, err
	}
	salt, errS := decodeAB64(f[1])
	dk, errK := decodeAB64(f[2])
	if errS != nil || errK != nil || len(salt) == 0 || len(dk) != prf.size {
		return nil, malformed(prf.scheme, "bad salt or key")
	}
	return newPBKDF2(prf, salt, f[0], dk), nil
}

// newPBKDF2 builds the Hash; iter has passed checkIterations.
func newPBKDF2(prf pbkdf2PRF, salt []byte, iter string, dk []byte) *Hash {
	n := 0
	for i := 0; i < len(iter); i++ {
		n = n*10 + int(iter[i]-'0')
	}
	return &Hash{scheme: prf.scheme, cost: Slow, v: pbkdf2Verifier{prf: prf, salt: salt, iter: n, dk: dk}}
}

// decodeAB64 decodes adapted base64; standard '+' and padding are
// accepted too.
func decodeAB64(s string) ([]byte, error) {
	s = strings.TrimRight(strings.ReplaceAll(s, ".", "+"), "=")
	return base64.RawStdEncoding.DecodeString(s)
}

// pbkdf2Verifier recomputes the derived key.
type pbkdf2Verifier struct {
	prf  pbkdf2PRF
	salt []byte
	iter int
	dk   []byte
}

func (p pbkdf2Verifier) verify(candidate []byte) bool {
	key, err := pbkdf2.Key(p.prf.new, string(candidate), p.salt, p.iter, len(p.dk))
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(key, p.dk) == 1
}
