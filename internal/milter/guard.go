package milter

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// maxPacket is the largest milter packet accepted from the MTA, command
// byte included: 1 MiB, the largest size the protocol defines
// (SMFIP_MDS_1M). Postfix sends body chunks of at most 64 KiB; only a
// header field longer than 1 MiB (header_size_limit is 100 KiB by
// default) would exceed it. go-milter itself accepts up to 512 MiB and
// allocates the whole packet up front.
const maxPacket = 1 << 20

// keepBuffer is the largest packet buffer kept between packets; a bigger
// one (after a long header field) is released to the garbage collector.
const keepBuffer = 128 << 10

// errMalformed marks a packet the guard refused.
var errMalformed = errors.New("malformed milter packet")

// packetReader passes milter packets from r through unchanged, one whole
// packet at a time, after checking them. It refuses packets that are
// empty, longer than maxPacket, carry an unknown command, or lack the NUL
// terminators go-milter v0.10.2 slices on without checking: an empty
// packet, an SMFIC_CONNECT without family byte or an SMFIC_MAIL/RCPT
// without NUL make the library index out of range and crash the process.
type packetReader struct {
	r       *bufio.Reader
	buf     []byte // the packet being passed on, 4-byte length included
	pending []byte // the part of buf not yet read
}

func newPacketReader(r io.Reader) *packetReader {
	return &packetReader{r: bufio.NewReaderSize(r, 4096)}
}

// Read implements io.Reader. It returns the bytes of the current packet
// and reads (and checks) the next packet once the current one is used up.
func (p *packetReader) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if len(p.pending) == 0 {
		if cap(p.buf) > keepBuffer {
			p.buf = nil
		}
		if err := p.next(); err != nil {
			return 0, err
		}
	}
	n := copy(b, p.pending)
	p.pending = p.pending[n:]
	return n, nil
}

// next reads and checks one packet into p.pending.
func (p *packetReader) next() error {
	var hdr [4]byte
	if _, err := io.ReadFull(p.r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxPacket {
		return fmt.Errorf("%w: length %d outside 1..%d", errMalformed, n, maxPacket)
	}
	size := 4 + int(n)
	if cap(p.buf) < size {
		p.buf = make([]byte, size)
	}
	p.buf = p.buf[:size]
	copy(p.buf, hdr[:])
	if _, err := io.ReadFull(p.r, p.buf[4:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("reading %d-byte milter packet: %w", n, err)
	}
	if err := checkPacket(p.buf[4], p.buf[5:]); err != nil {
		return err
	}
	p.pending = p.buf
	return nil
}

// checkPacket checks the structure go-milter relies on for a packet from
// the MTA (libmilter's mfdef.h and milter-protocol.txt).
func checkPacket(code byte, data []byte) error {
	switch code {
	case 'C': // SMFIC_CONNECT: hostname NUL, family, [port, address NUL]
		if i := bytes.IndexByte(data, 0); i < 0 || i+1 >= len(data) {
			return fmt.Errorf("%w: connect without host name terminator or family", errMalformed)
		}
	case 'M', 'R': // SMFIC_MAIL, SMFIC_RCPT: address NUL, [ESMTP args NUL …]
		if bytes.IndexByte(data, 0) < 0 {
			return fmt.Errorf("%w: %c without NUL-terminated address", errMalformed, code)
		}
	case 'O', 'D', 'Q', 'H', 'L', 'N', 'B', 'E', 'A', 'T', 'K', 'U':
		// SMFIC_OPTNEG, MACRO, QUIT, HELO, HEADER, EOH, BODY, BODYEOB,
		// ABORT, DATA, QUIT_NC, UNKNOWN: go-milter checks these itself.
	default:
		return fmt.Errorf("%w: unknown command %q", errMalformed, code)
	}
	return nil
}

// guardConn is the net.Conn handed to go-milter: reads go through a
// packetReader, and it notices the MTA hanging up while a handler runs.
type guardConn struct {
	net.Conn
	pr *packetReader

	// readErr is the first read error, reported when the connection ends.
	// Only the go-milter session goroutine reads, so it needs no lock.
	readErr error

	closeOnce sync.Once
	closed    chan struct{}
}

func newGuardConn(c net.Conn) *guardConn {
	return &guardConn{Conn: c, pr: newPacketReader(c), closed: make(chan struct{})}
}

func (g *guardConn) Read(b []byte) (int, error) {
	n, err := g.pr.Read(b)
	if err != nil && g.readErr == nil {
		g.readErr = err
	}
	return n, err
}

// abort closes the underlying connection from outside the session; the
// session's next read or write fails and go-milter ends it, calling Close.
func (g *guardConn) abort() {
	_ = g.Conn.Close()
}

// Close closes the connection once; later calls return nil. go-milter
// calls it as the last step of a session, which ends the oneConnListener.
func (g *guardConn) Close() error {
	err := net.ErrClosed
	g.closeOnce.Do(func() {
		close(g.closed)
		err = g.Conn.Close()
	})
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// aLongTimeAgo is a deadline in the past, to unblock a pending read.
var aLongTimeAgo = time.Unix(1, 0)

// watchHangup watches for the MTA closing the connection while go-milter
// is not reading (during end of message) and calls lost when it does. The
// returned stop must be called before go-milter reads again; bytes the MTA
// sends meanwhile stay buffered for it.
func (g *guardConn) watchHangup(lost func(error)) (stop func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Peek does not consume; a deadline error is cleared by bufio.
		if _, err := g.pr.r.Peek(1); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			lost(err)
		}
	}()
	return func() {
		_ = g.Conn.SetReadDeadline(aLongTimeAgo)
		<-done
		_ = g.Conn.SetReadDeadline(time.Time{})
	}
}

// oneConnListener hands one connection to a go-milter Server, then blocks
// until that connection is closed, so the Server's Serve returns when the
// session ends.
type oneConnListener struct {
	conn *guardConn
	once sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.conn })
	if c != nil {
		return c, nil
	}
	<-l.conn.closed
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }
