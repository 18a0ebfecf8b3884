package policy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Client sends policy requests over one persistent connection, as Postfix
// does. It is used by tests, the load generator and end-to-end checks.
// Requests on one Client are sent one at a time; it is safe for
// concurrent use. After any error the connection is closed and every
// later Check fails.
type Client struct {
	mu     sync.Mutex
	conn   net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	p      parser
	wire   []byte
	broken error
}

// ErrNoAction is returned by Client.Check when a reply has no action
// attribute.
var ErrNoAction = errors.New("policy: reply without action")

// maxReplyLines bounds the lines of one reply: Postfix's reply is a single
// action attribute, so anything longer is not a policy server talking.
const maxReplyLines = 16

// Dial connects to a policy server ("tcp" and "host:port", or "unix" and
// a socket path).
func Dial(network, addr string) (*Client, error) {
	conn, err := net.Dial(network, addr)
	if err != nil {
		return nil, fmt.Errorf("dialing policy server: %w", err)
	}
	return &Client{conn: conn, br: bufio.NewReader(conn), bw: bufio.NewWriter(conn)}, nil
}

// Check sends req and returns the server's action. ctx's deadline and
// cancellation apply to this exchange. A server that closes the
// connection instead of replying (its way to report trouble) gives an
// error wrapping io.EOF.
func (c *Client) Check(ctx context.Context, req *Request) (Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return Response{}, fmt.Errorf("policy check: connection unusable after an earlier error: %w", c.broken)
	}
	resp, err := c.check(ctx, req)
	if err != nil {
		c.broken = err
		c.conn.Close()
		return Response{}, fmt.Errorf("policy check: %w", err)
	}
	return resp, nil
}

func (c *Client) check(ctx context.Context, req *Request) (Response, error) {
	if err := ctx.Err(); err != nil {
		return Response{}, err
	}
	dl, _ := ctx.Deadline() // zero: no deadline
	if err := c.conn.SetDeadline(dl); err != nil {
		return Response{}, err
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	wire, err := req.appendWire(c.wire[:0])
	if err != nil {
		return Response{}, err
	}
	c.wire = wire
	c.bw.Write(wire)
	if err := c.bw.Flush(); err != nil {
		return Response{}, c.ctxErr(ctx, fmt.Errorf("sending request: %w", err))
	}
	var action string
	found := false
	for n := 0; ; n++ {
		line, _, err := c.p.readLine(c.br, maxActionLength+len("action="))
		if err != nil {
			if n > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Response{}, c.ctxErr(ctx, fmt.Errorf("reading reply: %w", err))
		}
		if len(line) == 0 {
			break
		}
		if n >= maxReplyLines {
			return Response{}, fmt.Errorf("reading reply: more than %d lines", maxReplyLines)
		}
		if v, ok := bytes.CutPrefix(line, []byte("action=")); ok {
			action, found = string(v), true
		}
	}
	if !found {
		return Response{}, ErrNoAction
	}
	return Response{Action: action}, nil
}

// ctxErr prefers ctx's error when ctx ended the exchange.
func (c *Client) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	return err
}

// Close closes the connection. It is a no-op when an error already
// closed it.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return nil
	}
	c.broken = net.ErrClosed
	return c.conn.Close()
}
