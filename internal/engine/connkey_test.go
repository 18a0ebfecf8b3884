package engine

import (
	"net/netip"
	"testing"
)

// TestConnKey: both paths name one SMTP client connection alike, however
// they wrote the address (IPv4 or IPv4-mapped IPv6); another port or
// address is another connection; no address or port, no key.
func TestConnKey(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.7")
	mapped := netip.MustParseAddr("::ffff:192.0.2.7")
	if connKey(v4, 25000) != connKey(mapped, 25000) {
		t.Error("IPv4 and IPv4-mapped keys differ")
	}
	for _, other := range []string{connKey(v4, 25001), connKey(netip.MustParseAddr("192.0.2.8"), 25000), connKey(netip.MustParseAddr("2001:db8::7"), 25000)} {
		if other == connKey(v4, 25000) {
			t.Error("different connections share a key")
		}
	}
	if connKey(netip.Addr{}, 25000) != "" || connKey(v4, 0) != "" {
		t.Error("a key without address or port")
	}
}
