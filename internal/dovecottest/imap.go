package dovecottest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// commandTimeout bounds one IMAP command. A refused login is answered on
// Dovecot's next 500 ms failure-queue tick; the rest is margin for a
// loaded machine.
const commandTimeout = 10 * time.Second

// ErrDisconnected reports that the server closed the connection, with or
// without an untagged BYE first (a doveadm kick ends an IMAP session with
// "* BYE Server shutting down.").
var ErrDisconnected = errors.New("connection closed by the server")

// IMAPError is a tagged NO or BAD answer (RFC 3501 §7.1).
type IMAPError struct {
	Command string // LOGIN, NOOP, LOGOUT
	Status  string // NO or BAD
	Text    string // resp-text, with a response code such as [AUTHENTICATIONFAILED]
}

func (e *IMAPError) Error() string {
	return fmt.Sprintf("dovecottest: IMAP %s: %s %s", e.Command, e.Status, e.Text)
}

// IMAPConn is a minimal IMAP4rev1 client: enough to log in, keep a session
// open and notice when the server ends it. It is not safe for concurrent
// use.
type IMAPConn struct {
	// Greeting is the server's greeting line.
	Greeting string
	// Bye is the text of the last untagged BYE, if any.
	Bye string

	conn net.Conn
	tp   *textproto.Conn
	tag  int
}

// DialIMAP connects to addr and reads the greeting, which must be OK
// (PREAUTH and BYE greetings are errors).
func DialIMAP(addr string) (*IMAPConn, error) {
	conn, err := net.DialTimeout("tcp", addr, commandTimeout)
	if err != nil {
		return nil, fmt.Errorf("dovecottest: IMAP dial %s: %w", addr, err)
	}
	c := &IMAPConn{conn: conn, tp: textproto.NewConn(conn)}
	_ = conn.SetDeadline(time.Now().Add(commandTimeout))
	line, err := c.tp.ReadLine()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("dovecottest: IMAP greeting: %w", c.closedErr(err))
	}
	if !strings.HasPrefix(line, "* OK") {
		conn.Close()
		return nil, fmt.Errorf("dovecottest: IMAP greeting %q", line)
	}
	c.Greeting = line
	return c, nil
}

// Login sends LOGIN with both arguments as quoted strings.
func (c *IMAPConn) Login(user, password string) error {
	u, err := quote(user)
	if err != nil {
		return err
	}
	p, err := quote(password)
	if err != nil {
		return err
	}
	return c.command("LOGIN", "LOGIN "+u+" "+p)
}

// Noop sends NOOP. On a session the server has ended it returns an error
// that wraps ErrDisconnected.
func (c *IMAPConn) Noop() error { return c.command("NOOP", "NOOP") }

// WaitDisconnected sends NOOP until the server ends the session, and
// returns that error (wrapping ErrDisconnected), or another error, or an
// error after timeout. doveadm kick returns once it has signalled the
// session's process, so the session ends a moment after the kick: a NOOP
// sent at once may still be answered OK.
func (c *IMAPConn) WaitDisconnected(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := c.Noop()
		if err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dovecottest: IMAP session still open after %v", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Logout sends LOGOUT and closes the connection.
func (c *IMAPConn) Logout() error {
	err := c.command("LOGOUT", "LOGOUT")
	c.Close()
	return err
}

// Close closes the connection without LOGOUT.
func (c *IMAPConn) Close() error { return c.conn.Close() }

// command sends one tagged command and reads until its tagged answer,
// skipping untagged responses (and any literals in them) but remembering a
// BYE.
func (c *IMAPConn) command(name, line string) error {
	c.tag++
	tag := "a" + strconv.Itoa(c.tag)
	_ = c.conn.SetDeadline(time.Now().Add(commandTimeout))
	if err := c.tp.PrintfLine("%s %s", tag, line); err != nil {
		return fmt.Errorf("dovecottest: IMAP %s: %w", name, c.closedErr(err))
	}
	for {
		resp, err := c.tp.ReadLine()
		if err != nil {
			return fmt.Errorf("dovecottest: IMAP %s: %w", name, c.closedErr(err))
		}
		if err := c.skipLiteral(resp); err != nil {
			return fmt.Errorf("dovecottest: IMAP %s: %w", name, c.closedErr(err))
		}
		if text, ok := strings.CutPrefix(resp, "* BYE"); ok {
			c.Bye = strings.TrimSpace(text)
			continue
		}
		rest, ok := strings.CutPrefix(resp, tag+" ")
		if !ok {
			continue // untagged data or a continuation request
		}
		status, text, _ := strings.Cut(rest, " ")
		switch strings.ToUpper(status) {
		case "OK":
			return nil
		case "NO", "BAD":
			return &IMAPError{Command: name, Status: strings.ToUpper(status), Text: text}
		}
		return fmt.Errorf("dovecottest: IMAP %s: unexpected answer %q", name, resp)
	}
}

// skipLiteral discards the literal a line announces with a trailing
// {n} (RFC 3501 §4.3), and the rest of the line after it.
func (c *IMAPConn) skipLiteral(line string) error {
	for strings.HasSuffix(line, "}") {
		i := strings.LastIndexByte(line, '{')
		if i < 0 {
			return nil
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(line[i+1:len(line)-1], "+"), 10, 64)
		if err != nil || n < 0 {
			return nil
		}
		if _, err := io.CopyN(io.Discard, c.tp.R, n); err != nil {
			return err
		}
		if line, err = c.tp.ReadLine(); err != nil {
			return err
		}
	}
	return nil
}

// closedErr maps the ways a peer's close shows up to ErrDisconnected.
func (c *IMAPConn) closedErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		if c.Bye != "" {
			return fmt.Errorf("%w (BYE %s)", ErrDisconnected, c.Bye)
		}
		return ErrDisconnected
	}
	return err
}

// quote returns s as an IMAP quoted string (RFC 3501 §4.3: '"' and '\'
// escaped; CR, LF and NUL cannot be quoted).
func quote(s string) (string, error) {
	if strings.ContainsAny(s, "\r\n\x00") {
		return "", errors.New("dovecottest: CR, LF or NUL in an IMAP quoted string")
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`, nil
}
