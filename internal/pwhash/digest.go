package pwhash

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"strings"
)

// digestScheme is an unsalted ({SHA}) or salted ({SSHA}) digest: the value
// is the encoded digest, for a salted one followed by the salt
// (OpenLDAP lutil_passwd, Dovecot password-scheme.c ssha_verify).
type digestScheme struct {
	name   string // canonical
	new    func() hash.Hash
	size   int
	salted bool
}

// digestSchemes maps every accepted name, aliases included, upper-case.
var digestSchemes = map[string]digestScheme{
	"MD5":       {"MD5", md5.New, md5.Size, false},
	"LDAP-MD5":  {"MD5", md5.New, md5.Size, false},
	"PLAIN-MD5": {"MD5", md5.New, md5.Size, false},
	"SMD5":      {"SMD5", md5.New, md5.Size, true},
	"SHA":       {"SHA", sha1.New, sha1.Size, false},
	"SHA1":      {"SHA", sha1.New, sha1.Size, false},
	"SSHA":      {"SSHA", sha1.New, sha1.Size, true},
	"SHA256":    {"SHA256", sha256.New, sha256.Size, false},
	"SSHA256":   {"SSHA256", sha256.New, sha256.Size, true},
	"SHA384":    {"SHA384", sha512.New384, sha512.Size384, false},
	"SSHA384":   {"SSHA384", sha512.New384, sha512.Size384, true},
	"SHA512":    {"SHA512", sha512.New, sha512.Size, false},
	"SSHA512":   {"SSHA512", sha512.New, sha512.Size, true},
}

// parseDigest decodes a digest scheme's value.
func parseDigest(ds digestScheme, enc, body string) (*Hash, error) {
	// Dovecot guesses hex when an unsalted value has exactly twice the
	// digest length and base64 otherwise (password-scheme.c,
	// password_decode); a salted value has no fixed length.
	rawLen := ds.size
	if ds.salted {
		rawLen = 0
	}
	raw, err := decodeValue(ds.name, enc, body, rawLen)
	if err != nil {
		return nil, err
	}
	switch {
	case ds.salted && len(raw) <= ds.size:
		return nil, malformed(ds.name, "shorter than digest plus salt")
	case !ds.salted && len(raw) != ds.size:
		return nil, malformed(ds.name, "wrong digest length")
	}
	return &Hash{scheme: ds.name, cost: Fast, v: digestVerifier{
		new:  ds.new,
		sum:  raw[:ds.size:ds.size],
		salt: raw[ds.size:],
	}}, nil
}

// parsePlain handles {PLAIN}, {CLEARTEXT} and {CLEAR}. Only a SHA-256 of
// the password is kept, so the Hash does not hold the plaintext.
func parsePlain(enc, body string) (*Hash, error) {
	raw := []byte(body)
	if enc != "" {
		var err error
		if raw, err = decodeValue("PLAIN", enc, body, 0); err != nil {
			return nil, err
		}
	}
	if len(raw) == 0 {
		return nil, malformed("PLAIN", "empty")
	}
	sum := sha256.Sum256(raw)
	clear(raw)
	return &Hash{scheme: "PLAIN", cost: Fast, v: digestVerifier{new: sha256.New, sum: sum[:]}}, nil
}

// decodeValue decodes body by Dovecot's encoding suffix enc ("" to guess
// between hex, when the length is 2·rawLen, and base64).
func decodeValue(scheme, enc, body string, rawLen int) ([]byte, error) {
	switch enc {
	case "HEX":
		raw, err := hex.DecodeString(body)
		if err != nil {
			return nil, malformed(scheme, "invalid hex")
		}
		return raw, nil
	case "B64", "BASE64":
		return decodeBase64(scheme, body)
	case "":
		if rawLen > 0 && len(body) == 2*rawLen {
			if raw, err := hex.DecodeString(body); err == nil {
				return raw, nil
			}
		}
		return decodeBase64(scheme, body)
	}
	return nil, malformed(scheme, "unknown encoding suffix")
}

// decodeBase64 decodes standard base64, padded or not.
func decodeBase64(scheme, s string) ([]byte, error) {
	enc := base64.StdEncoding
	if !strings.HasSuffix(s, "=") && len(s)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	raw, err := enc.DecodeString(s)
	if err != nil {
		return nil, malformed(scheme, "invalid base64")
	}
	return raw, nil
}

// digestVerifier checks H(candidate || salt) == sum.
type digestVerifier struct {
	new  func() hash.Hash
	sum  []byte
	salt []byte
}

func (d digestVerifier) verify(candidate []byte) bool {
	h := d.new()
	h.Write(candidate)
	h.Write(d.salt)
	return subtle.ConstantTimeCompare(h.Sum(nil), d.sum) == 1
}
