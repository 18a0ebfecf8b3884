// Package testnet hands out loopback ports for the servers tests start
// (Postfix, OpenLDAP, Dovecot, mailbrake itself) when the server must be
// told its port before it binds it.
//
// A port is found by binding 127.0.0.1:0 and closing the listener; the
// kernel may hand the same port to the next such probe, so two servers of
// one test could be given one port. FreeAddr never returns a port it
// returned before in this process.
package testnet

import (
	"fmt"
	"net"
	"sync"
)

var (
	mu    sync.Mutex
	given = map[string]bool{}
)

// FreeAddr returns "127.0.0.1:port" for a port that was free a moment ago
// and was not returned before in this process.
func FreeAddr() (string, error) {
	mu.Lock()
	defer mu.Unlock()
	var held []net.Listener // ports seen before stay bound while we look further
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for range 1000 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("finding a free port: %w", err)
		}
		addr := l.Addr().String()
		if given[addr] {
			held = append(held, l)
			continue
		}
		l.Close()
		given[addr] = true
		return addr, nil
	}
	return "", fmt.Errorf("finding a free port: every port offered was handed out before")
}
