package postfixtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Filter is an after-queue content filter as Postfix's FILTER_README
// describes it, for tests: an SMTP server on 127.0.0.1 that takes every
// message Postfix's content_filter hands it, lets Options.Filter change the
// message (add a spam tag, as amavis does), and hands it back to the
// instance's re-injection smtpd (Instance.ReinjectAddr). It answers
// Postfix only once the re-injection was accepted, so a message is never
// lost in it: a failed re-injection is a 451 and Postfix retries.
type Filter struct {
	// Addr is the filter's 127.0.0.1:port.
	Addr string

	srv    *smtp.Server
	edit   func(from string, to []string, data []byte) []byte
	target atomic.Pointer[string]

	mu     sync.Mutex
	passed int
}

// Passed returns how many messages the filter handed back.
func (f *Filter) Passed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.passed
}

func startFilter(t testing.TB, edit func(string, []string, []byte) []byte) *Filter {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("postfixtest: filter listen: %v", err)
	}
	f := &Filter{Addr: l.Addr().String(), edit: edit}
	f.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &filterSession{f: f}, nil
	}))
	f.srv.Domain = "filter.postfixtest.example"
	f.srv.ReadTimeout = 60 * time.Second
	f.srv.WriteTimeout = 60 * time.Second
	f.srv.ErrorLog = log.New(io.Discard, "", 0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = f.srv.Close()
		<-done
	})
	return f
}

type filterSession struct {
	f     *Filter
	from  string
	rcpts []string
}

func (s *filterSession) Reset()        { s.from, s.rcpts = "", nil }
func (s *filterSession) Logout() error { return nil }

func (s *filterSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *filterSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *filterSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("reading message: %w", err)
	}
	if s.f.edit != nil {
		data = s.f.edit(s.from, s.rcpts, data)
	}
	target := s.f.target.Load()
	if target == nil {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "no re-injection target yet"}
	}
	if err := reinject(*target, s.from, s.rcpts, data); err != nil {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "re-injection failed: " + err.Error()}
	}
	s.f.mu.Lock()
	s.f.passed++
	s.f.mu.Unlock()
	return nil
}

// reinject sends the message to the re-injection smtpd in one plain SMTP
// transaction (go-smtp's SendMail insists on STARTTLS; loopback needs
// none).
func reinject(addr, from string, to []string, data []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("filter.postfixtest.example"); err != nil {
		return err
	}
	if err := c.SendMail(from, to, bytes.NewReader(data)); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return fmt.Errorf("%d %s", se.Code, se.Message)
		}
		return err
	}
	return c.Quit()
}
