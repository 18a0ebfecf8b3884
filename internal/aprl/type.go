package aprl

import "fmt"

// Type is the set of ways an address was used in phishing, one bit per TYPE
// letter of the list format.
type Type uint8

// The TYPE letters, as defined in the header of phishing_reply_addresses.
const (
	TypeReplyTo    Type = 1 << iota // A: the address was used in the Reply-To header.
	TypeFrom                        // B: the address was used in the From header.
	TypeBody                        // C: the message body contained the address.
	TypeObfuscated                  // D: the body contained the address, obfuscated.
	TypeUnintended                  // E: the address might receive replies but was not meant to.

	typeAll = TypeReplyTo | TypeFrom | TypeBody | TypeObfuscated | TypeUnintended
)

const typeLetters = "ABCDE"

// valid reports whether t is a non-empty combination of known letters.
func (t Type) valid() bool { return t != 0 && t&^typeAll == 0 }

// String returns the letters of t in alphabetical order ("AE"), the form the
// list file uses.
func (t Type) String() string {
	if t&^typeAll != 0 {
		return fmt.Sprintf("Type(%#x)", uint8(t))
	}
	var b [len(typeLetters)]byte
	n := 0
	for i := range len(typeLetters) {
		if t&(1<<i) != 0 {
			b[n] = typeLetters[i]
			n++
		}
	}
	return string(b[:n])
}

// parseType parses a TYPE field. Letters may repeat and come in any order;
// lower case is accepted.
func parseType(s string) (Type, error) {
	if s == "" {
		return 0, fmt.Errorf("empty type")
	}
	var t Type
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'e' {
			c -= 'a' - 'A'
		}
		if c < 'A' || c > 'E' {
			return 0, fmt.Errorf("unknown type letter %q", s[i])
		}
		t |= 1 << (c - 'A')
	}
	return t, nil
}
