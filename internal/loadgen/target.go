package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ErrNotLoopback is returned (wrapped) by RunPolicy and RunMilter when the
// target is not on this host and AllowRemote is not set.
var ErrNotLoopback = errors.New("not a loopback address")

// target is where a run connects: the address has been checked (and, for
// a host name, resolved) once, so every dial goes to the address that was
// checked even if DNS answers differently later.
type target struct {
	network string // "tcp" or "unix"
	address string
}

// lookupFunc resolves a host name; tests replace it.
type lookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

func systemLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// resolveTarget parses addr (host:port, inet:host:port as in Postfix's
// main.cf, or unix:/path) and, unless allowRemote, refuses anything but
// 127.0.0.0/8, ::1 and unix sockets. A host name must resolve to loopback
// addresses only; the first one is dialled.
func resolveTarget(ctx context.Context, addr string, allowRemote bool, lookup lookupFunc) (target, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if path == "" {
			return target{}, fmt.Errorf("address %q: empty socket path", addr)
		}
		return target{network: "unix", address: path}, nil
	}
	hostport := strings.TrimPrefix(addr, "inet:")
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return target{}, fmt.Errorf("address %q: %w", addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return target{}, fmt.Errorf("address %q: bad port %q", addr, portStr)
	}
	if host == "" {
		return target{}, fmt.Errorf("address %q: missing host", addr)
	}
	if allowRemote {
		return target{network: "tcp", address: hostport}, nil
	}
	refuse := func(what string) error {
		return fmt.Errorf("target %q: %s %w; set AllowRemote (--allow-remote) to load another host", addr, what, ErrNotLoopback)
	}
	var ips []netip.Addr
	ip, err := netip.ParseAddr(host)
	literal := err == nil
	if literal {
		ips = []netip.Addr{ip}
	} else {
		ips, err = lookup(ctx, host)
		if err != nil {
			return target{}, fmt.Errorf("address %q: resolving %s: %w", addr, host, err)
		}
		if len(ips) == 0 {
			return target{}, fmt.Errorf("address %q: %s has no address", addr, host)
		}
	}
	for _, ip := range ips {
		// netip: IsLoopback is 127.0.0.0/8 or ::1; an IPv4-mapped IPv6
		// address is judged by its IPv4 part.
		if !ip.Unmap().IsLoopback() {
			if literal {
				return target{}, refuse(host + " is")
			}
			return target{}, refuse(host + " resolves to " + ip.String() + ", which is")
		}
	}
	return target{network: "tcp", address: netip.AddrPortFrom(ips[0].Unmap(), uint16(port)).String()}, nil
}
