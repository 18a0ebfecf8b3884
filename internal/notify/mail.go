package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-smtp"
)

// maxSubject bounds the subject in characters, before encoding; RFC 5322
// allows 998 octets per line and mail clients show far fewer.
const maxSubject = 200

// sendMailTo renders the audience's mail and sends it to rcpts in one
// SMTP transaction.
func (n *Notifier) sendMailTo(ctx context.Context, channel, audience string, b bounded, rcpts []*mail.Address) ChannelResult {
	r := ChannelResult{Channel: channel}
	for _, a := range rcpts {
		r.Recipients = append(r.Recipients, a.Address)
	}
	if !n.allow(channel, b) {
		r.Skipped = SkipRateLimited
		return r
	}
	msg, err := n.compose(audience, b, rcpts)
	if err != nil {
		r.Err = err
		return r
	}
	r.Sent, r.Err = n.deliver(ctx, rcpts, msg)
	return r
}

// sendUser looks up the user's address and sends the user mail.
func (n *Notifier) sendUser(ctx context.Context, b bounded) ChannelResult {
	r := ChannelResult{Channel: ChannelUser}
	addr := b.Incident.Account
	if n.userAddress != nil {
		var err error
		addr, err = n.userAddress(ctx, b.Incident.Account)
		if err != nil {
			r.Err = fmt.Errorf("looking up the user's address: %w", err)
			return r
		}
	}
	if addr == "" {
		r.Skipped = SkipNoAddress
		return r
	}
	a, err := parseAddress(oneLine(addr, maxAccount))
	if err != nil {
		r.Err = fmt.Errorf("user address: %w", err)
		return r
	}
	return n.sendMailTo(ctx, ChannelUser, audienceUser, b, []*mail.Address{a})
}

// subject is the Subject of an audience's mail, before encoding.
func subject(audience string, b bounded) string {
	in := b.Incident
	if audience == audienceUser {
		return oneLine(fmt.Sprintf("Your mail account %s was locked for your protection", in.Account), maxSubject)
	}
	what := strings.Join(in.Reasons, ", ")
	if what == "" {
		what = b.Kind
	}
	state := in.State
	if state == "" {
		state = b.Kind
	}
	return oneLine(fmt.Sprintf("[mailbrake] incident %d on %s: %s — %s", in.ID, in.Account, what, state), maxSubject)
}

// threadID is the Message-ID every mail of an incident refers to in
// In-Reply-To and References, so mail clients thread them together. No
// mail carries it: it names the incident, not a message.
func (n *Notifier) threadID(in Incident) string {
	if in.Opened.IsZero() {
		return fmt.Sprintf("<mailbrake-incident-%d@%s>", in.ID, n.s.smtp.hello)
	}
	// The opening time tells apart incidents of two databases (a test
	// instance, a restore) that reuse an id.
	return fmt.Sprintf("<mailbrake-incident-%d-%d@%s>", in.ID, in.Opened.Unix(), n.s.smtp.hello)
}

// compose builds the whole message: headers and a quoted-printable UTF-8
// text body. Every header value is built from sanitised fields and
// checked again for CR and LF, so no incident field can add a header.
func (n *Notifier) compose(audience string, b bounded, rcpts []*mail.Address) ([]byte, error) {
	t := n.templates[audience]
	body, err := render(t, n.messageData(b))
	if err != nil {
		return nil, err
	}
	var to []string
	for _, a := range rcpts {
		to = append(to, a.String())
	}
	thread := n.threadID(b.Incident)
	var h strings.Builder
	headers := []struct{ name, value string }{
		{"Date", n.now().Format(time.RFC1123Z)},
		{"From", n.s.smtp.from.String()},
		{"To", strings.Join(to, ", ")},
		{"Subject", encodeText(subject(audience, b))},
		{"Message-ID", fmt.Sprintf("<mailbrake-%d-%s@%s>", b.Incident.ID, randomID(12), n.s.smtp.hello)},
		{"In-Reply-To", thread},
		{"References", thread},
		// RFC 3834: keeps vacation responders and ticket systems from
		// answering; the Microsoft header does the same for Exchange.
		{"Auto-Submitted", "auto-generated"},
		{"X-Auto-Response-Suppress", "All"},
		{"X-Mailbrake-Incident", strconv.FormatInt(b.Incident.ID, 10)},
		{"X-Mailbrake-Event", b.Kind},
		{"MIME-Version", "1.0"},
		{"Content-Type", "text/plain; charset=utf-8"},
		{"Content-Transfer-Encoding", "quoted-printable"},
	}
	for _, hd := range headers {
		if err := writeHeader(&h, hd.name, hd.value); err != nil {
			return nil, err
		}
	}
	h.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&h)
	if _, err := qp.Write([]byte(strings.ReplaceAll(body, "\r\n", "\n"))); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return []byte(h.String()), nil
}

// encodeText encodes an unstructured header value (RFC 2047). Plain
// ASCII goes as is; anything else, and text that looks like an encoded
// word ("=?"), becomes Q-encoded words so that a reader decodes exactly
// s. Go's mime.WordEncoder leaves "=?" alone, which would let an account
// name smuggle in an encoded word.
func encodeText(s string) string {
	plain := true
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			plain = false
			break
		}
	}
	if plain && !strings.Contains(s, "=?") {
		return s
	}
	const prefix, suffix = "=?utf-8?q?", "?="
	// RFC 2047 section 2: an encoded word is at most 75 characters.
	const maxPayload = 75 - len(prefix) - len(suffix)
	var out, word strings.Builder
	flush := func() {
		if word.Len() == 0 {
			return
		}
		if out.Len() > 0 {
			out.WriteByte(' ')
		}
		out.WriteString(prefix + word.String() + suffix)
		word.Reset()
	}
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		var enc strings.Builder
		switch {
		case r == ' ':
			enc.WriteByte('_')
		case r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!*+-/", r)):
			enc.WriteRune(r)
		default:
			for _, c := range []byte(string(r)) {
				fmt.Fprintf(&enc, "=%02X", c)
			}
		}
		if word.Len()+enc.Len() > maxPayload {
			flush()
		}
		word.WriteString(enc.String())
	}
	flush()
	return out.String()
}

// writeHeader writes one header field, folded at spaces to keep lines
// near 78 characters (RFC 5322 section 2.2.3: unfolding removes the CRLF
// and restores the value). A value with CR, LF or another control
// character is refused: that would be a bug in the sanitising.
func writeHeader(w *strings.Builder, name, value string) error {
	for _, r := range value {
		if r < ' ' && r != '\t' || r == 0x7f {
			return fmt.Errorf("header %s: control character in value", name)
		}
	}
	w.WriteString(name)
	w.WriteString(":")
	line := len(name) + 1
	for i, word := range strings.Split(value, " ") {
		if i > 0 && line+1+len(word) > 78 && line > len(name)+1 {
			w.WriteString("\r\n")
			line = 0
		}
		w.WriteString(" ")
		w.WriteString(word)
		line += 1 + len(word)
	}
	w.WriteString("\r\n")
	return nil
}

// deliver runs one SMTP transaction. It reports sent when the message
// was accepted for at least one recipient; err then lists the refused
// recipients.
func (n *Notifier) deliver(ctx context.Context, rcpts []*mail.Address, msg []byte) (sent bool, err error) {
	c, secure, err := n.dialSMTP(ctx)
	if err != nil {
		return false, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	if n.s.smtp.username != "" {
		if !secure {
			return false, errors.New("refusing AUTH: the connection is neither TLS with a verified certificate nor loopback")
		}
		if err := c.Auth(&plainAuth{user: n.s.smtp.username, pass: n.s.smtp.password}); err != nil {
			return false, fmt.Errorf("AUTH PLAIN: %w", err)
		}
	}
	var opts *smtp.MailOptions
	if !isASCII(n.s.smtp.from.Address) || !allASCII(rcpts) {
		opts = &smtp.MailOptions{UTF8: true}
	}
	if err := c.Mail(n.s.smtp.from.Address, opts); err != nil {
		return false, fmt.Errorf("MAIL FROM: %w", ctxErr(ctx, err))
	}
	var refused []error
	for _, a := range rcpts {
		if err := c.Rcpt(a.Address, nil); err != nil {
			refused = append(refused, fmt.Errorf("RCPT TO:<%s>: %w", a.Address, ctxErr(ctx, err)))
		}
	}
	if len(refused) == len(rcpts) {
		return false, errors.Join(refused...)
	}
	w, err := c.Data()
	if err != nil {
		return false, fmt.Errorf("DATA: %w", ctxErr(ctx, err))
	}
	if _, err := w.Write(msg); err != nil {
		return false, fmt.Errorf("DATA: %w", ctxErr(ctx, err))
	}
	if err := w.Close(); err != nil {
		return false, fmt.Errorf("end of DATA: %w", ctxErr(ctx, err))
	}
	_ = c.Quit() // the message is accepted; a failing QUIT changes nothing
	return true, errors.Join(refused...)
}

// dialSMTP connects, says EHLO and, as configured, starts TLS. secure
// reports whether credentials may be sent: TLS with a verified
// certificate, or a loopback peer.
func (n *Notifier) dialSMTP(ctx context.Context) (c *smtp.Client, secure bool, err error) {
	sc := &n.s.smtp
	deadline := time.Now().Add(sc.timeout) // the network's clock, not the injected one
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	dial := func() (*deadlineConn, error) {
		d := net.Dialer{Deadline: deadline}
		conn, err := d.DialContext(ctx, "tcp", sc.addr)
		if err != nil {
			return nil, fmt.Errorf("connecting to %s: %w", sc.addr, err)
		}
		dc := &deadlineConn{Conn: conn, limit: deadline}
		_ = dc.SetDeadline(time.Time{})
		return dc, nil
	}
	loopback := func(conn net.Conn) bool {
		a, ok := conn.RemoteAddr().(*net.TCPAddr)
		return ok && a.IP.IsLoopback()
	}
	tlsConfig := &tls.Config{
		ServerName: sc.host,
		RootCAs:    sc.roots,
		MinVersion: tls.VersionTLS12,
	}
	plain := func(conn *deadlineConn) (*smtp.Client, error) {
		c := newClient(conn, sc.timeout)
		if err := c.Hello(sc.hello); err != nil {
			c.Close()
			return nil, fmt.Errorf("EHLO: %w", ctxErr(ctx, err))
		}
		return c, nil
	}
	starttls := func(conn *deadlineConn, verify bool) (*smtp.Client, error) {
		cfg := tlsConfig.Clone()
		// Opportunistic TLS without a CA file encrypts without checking
		// who answers (Postfix's "may"): better than clear text against
		// a passive listener, and a local relay's snakeoil certificate
		// does not stop the notification.
		cfg.InsecureSkipVerify = !verify
		// go-smtp says EHLO localhost before STARTTLS and cannot be told
		// otherwise; the EHLO after it carries HelloName.
		c, err := smtp.NewClientStartTLS(conn, cfg)
		if err != nil {
			return nil, fmt.Errorf("STARTTLS: %w", ctxErr(ctx, err))
		}
		c.CommandTimeout, c.SubmissionTimeout = sc.timeout, sc.timeout
		if err := c.Hello(sc.hello); err != nil {
			c.Close()
			return nil, fmt.Errorf("EHLO after STARTTLS: %w", ctxErr(ctx, err))
		}
		return c, nil
	}

	conn, err := dial()
	if err != nil {
		return nil, false, err
	}
	lb := loopback(conn)
	switch sc.starttls {
	case "none":
		c, err = plain(conn)
		return c, lb, err
	case "required":
		c, err = starttls(conn, true)
		return c, err == nil, err
	default: // opportunistic
		c, err = plain(conn)
		if err != nil {
			return nil, false, err
		}
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return c, lb, nil
		}
		// go-smtp starts TLS only on a fresh client: say goodbye and
		// connect again.
		_ = c.Quit()
		c.Close()
		if conn, err = dial(); err != nil {
			return nil, false, err
		}
		verify := sc.roots != nil
		c, err = starttls(conn, verify)
		return c, err == nil && (verify || lb), err
	}
}

func newClient(conn net.Conn, timeout time.Duration) *smtp.Client {
	c := smtp.NewClient(conn)
	c.CommandTimeout, c.SubmissionTimeout = timeout, timeout
	return c
}

// deadlineConn caps every deadline go-smtp sets (it sets one per command
// and clears it afterwards) at the transaction's deadline.
type deadlineConn struct {
	net.Conn
	limit time.Time
}

func (c *deadlineConn) clamp(t time.Time) time.Time {
	if t.IsZero() || t.After(c.limit) {
		return c.limit
	}
	return t
}

func (c *deadlineConn) SetDeadline(t time.Time) error     { return c.Conn.SetDeadline(c.clamp(t)) }
func (c *deadlineConn) SetReadDeadline(t time.Time) error { return c.Conn.SetReadDeadline(c.clamp(t)) }
func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	return c.Conn.SetWriteDeadline(c.clamp(t))
}

// plainAuth is the SASL PLAIN client (RFC 4616); it satisfies go-sasl's
// Client interface.
type plainAuth struct{ user, pass string }

func (a *plainAuth) Start() (string, []byte, error) {
	return "PLAIN", []byte("\x00" + a.user + "\x00" + a.pass), nil
}

func (a *plainAuth) Next([]byte) ([]byte, error) {
	return nil, errors.New("unexpected server challenge")
}

// ctxErr prefers the context's error: a connection closed because ctx
// ended reads as "use of closed network connection" otherwise.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return err
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func allASCII(as []*mail.Address) bool {
	for _, a := range as {
		if !isASCII(a.Address) {
			return false
		}
	}
	return true
}
