package postfixtest

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Delivered is one SMTP transaction the Sink accepted: the envelope and the
// message exactly as Postfix sent it (CRLF line ends, dot-stuffing removed).
type Delivered struct {
	From       string
	Recipients []string
	Data       []byte
	Received   time.Time
}

// Header parses the header of the delivered message.
func (d Delivered) Header() (mail.Header, error) {
	m, err := mail.ReadMessage(bytes.NewReader(d.Data))
	if err != nil {
		return nil, fmt.Errorf("parsing delivered message: %w", err)
	}
	return m.Header, nil
}

// Sink is an SMTP server on 127.0.0.1 that accepts every message and keeps
// it in memory: the relayhost of an Instance.
type Sink struct {
	// Addr is the sink's 127.0.0.1:port.
	Addr string

	srv *smtp.Server

	mu       sync.Mutex
	messages []Delivered
	changed  chan struct{} // closed and replaced on every delivery
}

// StartSink starts a Sink on a free 127.0.0.1 port; t.Cleanup closes it.
func StartSink(t testing.TB) *Sink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("postfixtest: sink listen: %v", err)
	}
	s := &Sink{Addr: l.Addr().String(), changed: make(chan struct{})}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &sinkSession{sink: s}, nil
	}))
	s.srv.Domain = "sink.postfixtest.example"
	s.srv.EnableSMTPUTF8 = true
	s.srv.ReadTimeout = 60 * time.Second
	s.srv.WriteTimeout = 60 * time.Second
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Serve returns ErrServerClosed after Close. Any other error has
		// nobody to report to (the test may be over); a broken sink shows
		// up as deferred mail in the maillog.
		_ = s.srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = s.srv.Close()
		<-done
	})
	return s
}

// Messages returns a copy of every transaction received so far, in order.
func (s *Sink) Messages() []Delivered {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivered(nil), s.messages...)
}

// Recipients returns the number of recipients over all transactions.
func (s *Sink) Recipients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return countRecipients(s.messages)
}

// Reset forgets the transactions received so far.
func (s *Sink) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = nil
}

// WaitMessages waits until the sink holds at least n transactions and
// returns them all; it fails the test after timeout.
func (s *Sink) WaitMessages(t testing.TB, n int, timeout time.Duration) []Delivered {
	t.Helper()
	return s.waitFor(t, timeout, fmt.Sprintf("%d messages", n), func(m []Delivered) bool { return len(m) >= n })
}

// WaitRecipients waits until the transactions held by the sink carry at
// least n recipients in all and returns them; it fails the test after
// timeout.
func (s *Sink) WaitRecipients(t testing.TB, n int, timeout time.Duration) []Delivered {
	t.Helper()
	return s.waitFor(t, timeout, fmt.Sprintf("%d recipients", n), func(m []Delivered) bool { return countRecipients(m) >= n })
}

func (s *Sink) waitFor(t testing.TB, timeout time.Duration, what string, done func([]Delivered) bool) []Delivered {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if done(s.messages) {
			m := append([]Delivered(nil), s.messages...)
			s.mu.Unlock()
			return m
		}
		changed := s.changed
		got, rcpts := len(s.messages), countRecipients(s.messages)
		s.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("postfixtest: sink: waited %v for %s, have %d messages with %d recipients", timeout, what, got, rcpts)
			return nil
		}
	}
}

func (s *Sink) add(d Delivered) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = append(s.messages, d)
	close(s.changed)
	s.changed = make(chan struct{})
}

func countRecipients(m []Delivered) int {
	n := 0
	for _, d := range m {
		n += len(d.Recipients)
	}
	return n
}

type sinkSession struct {
	sink  *Sink
	from  string
	rcpts []string
}

func (s *sinkSession) Reset() {
	s.from = ""
	s.rcpts = nil
}

func (s *sinkSession) Logout() error { return nil }

func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("reading message: %w", err)
	}
	s.sink.add(Delivered{
		From:       s.from,
		Recipients: append([]string(nil), s.rcpts...),
		Data:       data,
		Received:   time.Now(),
	})
	return nil
}

// String summarises the delivery for test failure messages.
func (d Delivered) String() string {
	return fmt.Sprintf("from=<%s> to=<%s> (%d bytes)", d.From, strings.Join(d.Recipients, ">,<"), len(d.Data))
}
