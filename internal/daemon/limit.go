package daemon

import (
	"net"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Connection limits per listener: an unauthenticated flood of slow HTTP
// clients must not take the file descriptors Postfix's policy and milter
// connections need (Postfix opens at most default_process_limit, 100, of
// each).
const (
	httpMaxConns   = 512
	serverMaxConns = 4096
)

// limitListener accepts at most n connections at once; beyond that,
// Accept waits (new connections wait in the kernel's backlog) and the wait
// is counted.
type limitListener struct {
	net.Listener
	sem     chan struct{}
	open    prometheus.Gauge
	waited  prometheus.Counter
	release func()
}

func newLimitListener(l net.Listener, n int, open prometheus.Gauge, waited prometheus.Counter) net.Listener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n), open: open, waited: waited}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	default:
		l.waited.Inc()
		l.sem <- struct{}{}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	l.open.Inc()
	return &limitConn{Conn: c, done: func() { l.open.Dec(); <-l.sem }}, nil
}

type limitConn struct {
	net.Conn
	once sync.Once
	done func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.done)
	return err
}
