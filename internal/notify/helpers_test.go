package notify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// testClock is the injected clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// sinkMsg is one message the SMTP sink accepted.
type sinkMsg struct {
	From  string
	To    []string
	Hello string
	TLS   bool
	Data  []byte
}

// sink is an SMTP server on 127.0.0.1:0 built on go-smtp's server.
type sink struct {
	Addr string

	mu      sync.Mutex
	msgs    []sinkMsg
	refuse  map[string]error // RCPT answers by address
	refuseN error            // RCPT answer for every address
}

func (s *sink) messages() []sinkMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinkMsg(nil), s.msgs...)
}

type sinkSession struct {
	s    *sink
	conn *smtp.Conn
	from string
	to   []string
}

func (ss *sinkSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *sinkSession) Logout() error { return nil }
func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if ss.s.refuseN != nil {
		return ss.s.refuseN
	}
	if err := ss.s.refuse[to]; err != nil {
		return err
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := ss.conn.TLSConnectionState()
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	ss.s.msgs = append(ss.s.msgs, sinkMsg{From: ss.from, To: ss.to, Hello: ss.conn.Hostname(), TLS: isTLS, Data: b})
	return nil
}

// startSink starts an SMTP sink; with tlsConfig it offers STARTTLS.
func startSink(t *testing.T, tlsConfig *tls.Config) *sink {
	t.Helper()
	s := &sink{refuse: map[string]error{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &sinkSession{s: s, conn: c}, nil
	}))
	srv.Domain = "sink.test"
	srv.TLSConfig = tlsConfig
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return s
}

// refusedAddr is a loopback address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// selfSigned returns a server TLS config for 127.0.0.1 and the path of
// its certificate as a CA file.
func selfSigned(t *testing.T) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sink.test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, path
}

// writeFile writes content into a new file in a test directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mailConfig is a mail-only configuration for the sink at addr.
func mailConfig(addr string) Config {
	return Config{
		SMTP: SMTPConfig{
			Addr: addr, HelloName: "mailbrake.test", From: "Mailbrake <mailbrake@example.edu>",
			StartTLS: "none", Timeout: 10 * time.Second,
		},
		HelpDesk:   []string{"helpdesk@example.edu"},
		Admins:     []string{"Admin One <admin1@example.edu>", "admin2@example.edu"},
		NotifyUser: true,
		UserAddress: func(_ context.Context, account string) (string, error) {
			if account == "alice@example.edu" {
				return "alice.private@example.org", nil
			}
			return "", nil
		},
	}
}

// logBuffer collects log records.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// newNotifier builds a Notifier on a test clock, with webhook waits
// recorded instead of slept.
func newNotifier(t *testing.T, cfg Config) (*Notifier, *testClock, *[]time.Duration, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	n, err := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{t: t0}
	n.now = clock.now
	var mu sync.Mutex
	var waits []time.Duration
	n.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, d)
		return ctx.Err()
	}
	return n, clock, &waits, logs
}

func testEvent() Event {
	opened := t0.Add(-10 * time.Minute)
	return Event{
		Kind: KindPlaybookFinished,
		Incident: Incident{
			ID: 42, Account: "alice@example.edu", Severity: "high", State: "contained",
			Reasons: []string{"password-leak"},
			Evidence: []string{
				"2026-01-02 02:54:01 message <a1@example.edu> to 212 recipients from 203.0.113.7",
				"password candidate matched the directory hash (masked: p******1)",
			},
			Steps: []Step{
				{Name: "lock-login", Status: "done", Detail: "ldap: pwdAccountLockedTime set", At: opened.Add(time.Minute)},
				{Name: "end-sessions", Status: "failed", Detail: "zimbra: timeout after 10s", At: opened.Add(2 * time.Minute)},
			},
			Opened: opened, Updated: t0, URL: "https://mailbrake.example.edu/incidents/42",
		},
		NextSteps: "Call Alice on the number in the directory and have her reset the password.",
	}
}

// parsed is a received message, decoded.
type parsed struct {
	Header  mail.Header
	Subject string
	Body    string
	Raw     string
}

func parseMessage(t testing.TB, raw []byte) parsed {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parsing message: %v\n%s", err, raw)
	}
	subj, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("decoding subject: %v", err)
	}
	if m.Header.Get("Content-Transfer-Encoding") != "quoted-printable" {
		t.Fatalf("Content-Transfer-Encoding %q", m.Header.Get("Content-Transfer-Encoding"))
	}
	body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		t.Fatalf("decoding body: %v", err)
	}
	return parsed{Header: m.Header, Subject: subj, Body: string(body), Raw: string(raw)}
}

// byRecipient indexes messages by their first envelope recipient.
func byRecipient(msgs []sinkMsg) map[string]sinkMsg {
	out := map[string]sinkMsg{}
	for _, m := range msgs {
		if len(m.To) > 0 {
			out[m.To[0]] = m
		}
	}
	return out
}

func resultOf(t *testing.T, rs []ChannelResult, channel string) ChannelResult {
	t.Helper()
	for _, r := range rs {
		if r.Channel == channel {
			return r
		}
	}
	t.Fatalf("no result for %s in %+v", channel, rs)
	return ChannelResult{}
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}

func mustNotContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			t.Errorf("%s contains %q:\n%s", what, sub, s)
		}
	}
}
