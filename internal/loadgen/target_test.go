package loadgen

import (
	"context"
	"errors"
	"net/netip"
	"testing"
)

func TestResolveTarget(t *testing.T) {
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "localhost":
			return []netip.Addr{netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.1")}, nil
		case "mixed.example":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.10")}, nil
		case "remote.example":
			return []netip.Addr{netip.MustParseAddr("198.51.100.20")}, nil
		}
		return nil, errors.New("no such host")
	}
	for _, tc := range []struct {
		addr    string
		remote  bool
		network string
		address string
		refused bool // ErrNotLoopback
		bad     bool // any other error
	}{
		{addr: "127.0.0.1:10041", network: "tcp", address: "127.0.0.1:10041"},
		{addr: "127.8.9.10:25", network: "tcp", address: "127.8.9.10:25"},
		{addr: "[::1]:10042", network: "tcp", address: "[::1]:10042"},
		{addr: "[::ffff:127.0.0.1]:10042", network: "tcp", address: "127.0.0.1:10042"},
		{addr: "inet:127.0.0.1:10042", network: "tcp", address: "127.0.0.1:10042"},
		{addr: "unix:/run/mailbrake/policy.sock", network: "unix", address: "/run/mailbrake/policy.sock"},
		{addr: "localhost:10041", network: "tcp", address: "[::1]:10041"},
		{addr: "192.0.2.1:10041", refused: true},
		{addr: "0.0.0.0:10041", refused: true},
		{addr: "[::]:10041", refused: true},
		{addr: "[2001:db8::1]:10041", refused: true},
		{addr: "[::ffff:192.0.2.1]:10041", refused: true},
		{addr: "[fe80::1%lo]:10041", refused: true},
		{addr: "mixed.example:10041", refused: true},
		{addr: "remote.example:10041", refused: true},
		{addr: "remote.example:10041", remote: true, network: "tcp", address: "remote.example:10041"},
		{addr: "192.0.2.1:10041", remote: true, network: "tcp", address: "192.0.2.1:10041"},
		{addr: "nowhere.example:10041", bad: true},
		{addr: ":10041", bad: true},
		{addr: "127.0.0.1", bad: true},
		{addr: "127.0.0.1:0", bad: true},
		{addr: "127.0.0.1:smtp", bad: true},
		{addr: "unix:", bad: true},
	} {
		got, err := resolveTarget(t.Context(), tc.addr, tc.remote, lookup)
		switch {
		case tc.refused:
			if !errors.Is(err, ErrNotLoopback) {
				t.Errorf("%s: got %+v, %v; want ErrNotLoopback", tc.addr, got, err)
			}
		case tc.bad:
			if err == nil || errors.Is(err, ErrNotLoopback) {
				t.Errorf("%s: got %+v, %v; want an address error", tc.addr, got, err)
			}
		case err != nil || got.network != tc.network || got.address != tc.address:
			t.Errorf("%s: got %+v, %v; want %s %s", tc.addr, got, err, tc.network, tc.address)
		}
	}
}
