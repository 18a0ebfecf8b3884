package milter

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startServer serves s on a fresh 127.0.0.1 port and shuts it down at the
// end of the test. It returns the address and a channel with Serve's
// result.
func startServer(t testing.TB, s *Server) (string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if s.Logger == nil {
		s.Logger = testLogger(t)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return ln.Addr().String(), served
}

// recorder is a Handler that keeps every message and answers with decide
// (Accept when nil).
type recorder struct {
	decide func(context.Context, *Message) (Decision, error)

	mu   sync.Mutex
	msgs []*Message
}

func (r *recorder) EndOfMessage(ctx context.Context, msg *Message) (Decision, error) {
	r.mu.Lock()
	r.msgs = append(r.msgs, msg)
	r.mu.Unlock()
	if r.decide != nil {
		return r.decide(ctx, msg)
	}
	return Decision{Kind: Accept}, nil
}

func (r *recorder) messages() []*Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Message(nil), r.msgs...)
}

// dialerFunc adapts a function to go-milter's Dialer.
type dialerFunc func(network, addr string) (net.Conn, error)

func (f dialerFunc) Dial(network, addr string) (net.Conn, error) { return f(network, addr) }

// session opens a go-milter client session (the MTA side) to addr and
// sends CONNECT and HELO from a client at 192.0.2.7:54321.
func session(t testing.TB, addr string, macros *gomilter.MacroBag, opts ...gomilter.Option) *gomilter.ClientSession {
	t.Helper()
	if macros == nil {
		// A nil *MacroBag in the Macros interface would crash the client.
		macros = gomilter.NewMacroBag()
	}
	cs, err := gomilter.NewClient("tcp", addr, opts...).Session(macros)
	if err != nil {
		t.Fatalf("opening milter session: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	if act, err := cs.Conn("client.example", gomilter.FamilyInet, 54321, "192.0.2.7"); err != nil || act.Type != gomilter.ActionContinue {
		t.Fatalf("Conn = %v, %v", act, err)
	}
	if act, err := cs.Helo("helo.example"); err != nil || act.Type != gomilter.ActionContinue {
		t.Fatalf("Helo = %v, %v", act, err)
	}
	return cs
}

// testMessage is one transaction as the MTA sends it.
type testMessage struct {
	from    string
	rcpts   []string
	headers []Header
	body    []byte
}

// sendEnvelope sends MAIL and RCPT.
func sendEnvelope(t testing.TB, cs *gomilter.ClientSession, m testMessage) {
	t.Helper()
	if act, err := cs.Mail(m.from, ""); err != nil || act.Type != gomilter.ActionContinue {
		t.Fatalf("Mail = %v, %v", act, err)
	}
	for _, r := range m.rcpts {
		if act, err := cs.Rcpt(r, ""); err != nil || act.Type != gomilter.ActionContinue {
			t.Fatalf("Rcpt(%q) = %v, %v", r, act, err)
		}
	}
}

// sendContent sends DATA, the header fields and the body, and returns the
// milter's end-of-message actions.
func sendContent(t testing.TB, cs *gomilter.ClientSession, m testMessage) ([]gomilter.ModifyAction, *gomilter.Action, error) {
	t.Helper()
	if act, err := cs.DataStart(); err != nil || act.Type != gomilter.ActionContinue {
		t.Fatalf("DataStart = %v, %v", act, err)
	}
	for _, h := range m.headers {
		if act, err := cs.HeaderField(h.Name, h.Value, nil); err != nil || act.Type != gomilter.ActionContinue {
			t.Fatalf("HeaderField(%q) = %v, %v", h.Name, act, err)
		}
	}
	if act, err := cs.HeaderEnd(); err != nil || act.Type != gomilter.ActionContinue {
		t.Fatalf("HeaderEnd = %v, %v", act, err)
	}
	return cs.BodyReadFrom(bytes.NewReader(m.body))
}

// send sends a whole transaction and fails the test on a protocol error.
func send(t testing.TB, cs *gomilter.ClientSession, m testMessage) ([]gomilter.ModifyAction, *gomilter.Action) {
	t.Helper()
	sendEnvelope(t, cs, m)
	acts, act, err := sendContent(t, cs, m)
	if err != nil {
		t.Fatalf("end of message: %v", err)
	}
	return acts, act
}

var simpleMessage = testMessage{
	from:    "alice@example.org",
	rcpts:   []string{"bob@example.net"},
	headers: []Header{{"From", "alice@example.org"}, {"Subject", "hi"}},
	body:    []byte("hello\r\n"),
}

// frame encodes one milter packet: length, command, data.
func frame(code byte, data ...[]byte) []byte {
	payload := append([]byte{code}, bytes.Join(data, nil)...)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(payload))), payload...)
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func cstr(s string) []byte { return append([]byte(s), 0) }

// optneg is an MTA's SMFIC_OPTNEG offering protocol v6 with every action
// and protocol flag.
var optneg = frame('O', be32(6), be32(uint32(gomilter.AllClientSupportedActionMasks)), be32(0x1fffff))

// frameCounter counts the packets of a milter byte stream by command.
type frameCounter struct {
	mu     sync.Mutex
	buf    []byte
	counts map[byte]int
	onCode func(code byte, count int)
}

func (f *frameCounter) feed(b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buf = append(f.buf, b...)
	for len(f.buf) >= 4 {
		n := int(binary.BigEndian.Uint32(f.buf))
		if len(f.buf) < 4+n || n == 0 {
			return
		}
		code := f.buf[4]
		if f.counts == nil {
			f.counts = map[byte]int{}
		}
		f.counts[code]++
		if f.onCode != nil {
			f.onCode(code, f.counts[code])
		}
		f.buf = f.buf[4+n:]
	}
}

// sniffConn feeds what the client reads into a frameCounter.
type sniffConn struct {
	net.Conn
	fc *frameCounter
}

func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.fc.feed(p[:n])
	return n, err
}

// isDropped reports whether reading c ended with the peer closing it
// (EOF or reset) rather than the safety deadline.
func isDropped(c net.Conn) (bool, error) {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false, err
		}
		return true, err
	}
}
