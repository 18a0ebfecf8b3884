// Package keyhash is SipHash-2-4, the keyed 64-bit hash mailbrake keeps
// instead of readable addresses, prefixes and message fingerprints.
package keyhash

import (
	"encoding/binary"
	"errors"
	"math/bits"
)

// Key is a SipHash-2-4 key (Aumasson and Bernstein, "SipHash: a fast
// short-input PRF", 2012). The standard library's keyed hashes are either
// unsettable (hash/maphash seeds cannot be exported or chosen, so a
// snapshot taken under one seed is useless to the next process) or slow for
// 20-byte inputs (HMAC-SHA-256), so the few lines of the reference
// algorithm live here, checked against the paper's test vectors.
type Key struct{ k0, k1 uint64 }

// New returns the key of the 16 bytes b.
func New(b [16]byte) Key {
	return Key{binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])}
}

// Sum returns SipHash-2-4 of p under k.
func (k Key) Sum(p []byte) uint64 {
	v0 := k.k0 ^ 0x736f6d6570736575
	v1 := k.k1 ^ 0x646f72616e646f6d
	v2 := k.k0 ^ 0x6c7967656e657261
	v3 := k.k1 ^ 0x7465646279746573
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13)
		v1 ^= v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16)
		v3 ^= v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21)
		v3 ^= v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17)
		v1 ^= v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	b := uint64(len(p)) << 56
	for len(p) >= 8 {
		m := binary.LittleEndian.Uint64(p)
		v3 ^= m
		round()
		round()
		v0 ^= m
		p = p[8:]
	}
	for i := len(p) - 1; i >= 0; i-- {
		b |= uint64(p[i]) << (8 * uint(i))
	}
	v3 ^= b
	round()
	round()
	v0 ^= b
	v2 ^= 0xff
	round()
	round()
	round()
	round()
	return v0 ^ v1 ^ v2 ^ v3
}

// Derive returns a key for one use of a shared secret: the first 16
// bytes of secret, the rest folded in, and label (16 bytes, say which
// detector) mixed over them, so that hashes made for one use never match
// another's.
func Derive(secret []byte, label string) Key {
	var kb [16]byte
	copy(kb[:], secret)
	if len(secret) > 16 {
		for i, c := range secret[16:] {
			kb[i%16] ^= c
		}
	}
	for i := range kb {
		if i < len(label) {
			kb[i] ^= label[i]
		}
	}
	return New(kb)
}

// ID names a key in what is stored under it (snapshots), without
// revealing it.
func (k Key) ID(use string) uint64 { return k.Sum([]byte("mailbrake " + use + " key id")) }

// AppendHeader starts a snapshot made under k: a version byte and the
// key's ID.
func AppendHeader(b []byte, version byte, id uint64) []byte {
	b = append(b, version)
	return binary.LittleEndian.AppendUint64(b, id)
}

// CutHeader checks a snapshot's header (AppendHeader) and returns the rest.
func CutHeader(b []byte, version byte, id uint64) ([]byte, error) {
	if len(b) < 9 || b[0] != version {
		return nil, errors.New("not a snapshot of this version")
	}
	if binary.LittleEndian.Uint64(b[1:9]) != id {
		return nil, errors.New("taken under another key")
	}
	return b[9:], nil
}
