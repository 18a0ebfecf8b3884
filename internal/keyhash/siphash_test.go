package keyhash

import "testing"

// TestSipHashVectors checks the reference vectors of the SipHash paper
// (key 00 01 … 0f, message 00 01 … len-1).
func TestSipHashVectors(t *testing.T) {
	var kb [16]byte
	for i := range kb {
		kb[i] = byte(i)
	}
	k := New(kb)
	msg := make([]byte, 64)
	for i := range msg {
		msg[i] = byte(i)
	}
	for _, tc := range []struct {
		n    int
		want uint64
	}{
		{0, 0x726fdb47dd0e0e31},
		{1, 0x74f839c593dc67fd},
		{8, 0x93f5f5799a932462},
		{15, 0xa129ca6149be45e5},
	} {
		if got := k.Sum(msg[:tc.n]); got != tc.want {
			t.Errorf("len %d: %#x, want %#x", tc.n, got, tc.want)
		}
	}
}
