package policy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Handler decides on policy requests. Check is called from many
// connections at once; ctx is cancelled when a Shutdown gives up waiting.
// Returning an error sends no reply and closes the connection
// (SMTPD_POLICY_README: "In case of trouble the policy server must not
// send a reply. Instead the server must log a warning and disconnect"), so
// Postfix applies smtpd_policy_service_default_action.
type Handler interface {
	Check(ctx context.Context, req *Request) (Response, error)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc func(ctx context.Context, req *Request) (Response, error)

// Check calls f.
func (f HandlerFunc) Check(ctx context.Context, req *Request) (Response, error) { return f(ctx, req) }

// ErrServerClosed is returned by Serve after Shutdown. It wraps
// net.ErrClosed, so callers that ignore a closed listener ignore it too.
var ErrServerClosed = fmt.Errorf("policy: server closed: %w", net.ErrClosed)

// Defaults for the Server's zero fields.
const (
	// DefaultReadTimeout: Postfix closes a policy connection it has not
	// used for smtpd_policy_service_max_idle (300 s). Waiting 10% longer
	// leaves that close to Postfix, so we never drop a connection just as
	// Postfix picks it up for a request (which would cost the SMTP session
	// a retry and smtpd_policy_service_retry_delay).
	DefaultReadTimeout = 330 * time.Second
	// DefaultWriteTimeout: a reply is one short line that fits in the
	// socket buffer; a write blocked this long means Postfix stopped
	// reading.
	DefaultWriteTimeout = 10 * time.Second
)

// Server answers policy requests. Set the exported fields before calling
// Serve and do not change them afterwards.
type Server struct {
	// Handler decides on each request. It is required.
	Handler Handler
	// Logger receives the server's logs, each line with the connection id
	// ("conn") and peer ("remote"); nil means slog.Default(). Attribute
	// values are never logged.
	Logger *slog.Logger
	// Limits bound each request; zero fields mean the defaults.
	Limits Limits
	// ReadTimeout is how long a connection may stay idle between
	// requests, and how long a started request may take to arrive; 0
	// means DefaultReadTimeout.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a reply; 0 means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// DecisionTimeout bounds the handler: a request it has not decided
	// within this long is answered with OnTimeout's response (Dunno when
	// nil), so that Postfix gets the site's chosen answer instead of
	// applying its default_action after its own timeout; the handler's
	// late answer is dropped. 0 means no bound.
	DecisionTimeout time.Duration
	OnTimeout       func(*Request) Response
	// Observe, when set, is called once for each request the server
	// answered or gave up on: with the protocol state ("" when the request
	// could not be parsed), the time from the request being read to the
	// reply being written (the handler plus the write; 0 for a bad
	// request), and nil or the error that closed the connection. It runs on the connection's goroutine, so it must be
	// fast and safe for concurrent use.
	Observe func(state string, d time.Duration, err error)

	noise      noiseLimit // connection-level log lines
	initOnce   sync.Once
	ctx        context.Context // cancelled when a Shutdown gives up waiting
	cancel     context.CancelFunc
	closing    chan struct{} // closed when Shutdown starts
	inShutdown atomic.Bool
	lastConnID atomic.Uint64

	mu        sync.Mutex
	listeners map[*net.Listener]struct{}
	conns     map[*conn]struct{}
	drained   chan struct{}  // closed when the last connection ends after Shutdown started
	deciders  sync.WaitGroup // running deciders, a connection's and those left behind by a timeout
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.closing = make(chan struct{})
		s.drained = make(chan struct{})
		s.listeners = make(map[*net.Listener]struct{})
		s.conns = make(map[*conn]struct{})
	})
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Serve accepts connections on ln and serves each on its own goroutine
// until Shutdown, then returns ErrServerClosed. It may be called for
// several listeners. Serve closes ln when it returns.
func (s *Server) Serve(ln net.Listener) error {
	if s.Handler == nil {
		return errors.New("policy: Server.Handler is nil")
	}
	s.init()
	if !s.trackListener(&ln, true) {
		ln.Close()
		return ErrServerClosed
	}
	defer s.trackListener(&ln, false)
	defer ln.Close()

	log := s.logger()
	var backoff time.Duration
	for {
		rwc, err := ln.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return ErrServerClosed
			}
			if !retryableAccept(err) {
				return fmt.Errorf("accepting policy connections: %w", err)
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.Warn("accepting a policy connection failed; retrying", "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.closing:
				t.Stop()
			}
			continue
		}
		backoff = 0
		c := s.newConn(rwc)
		if !s.trackConn(c, true) {
			rwc.Close()
			return ErrServerClosed
		}
		go c.serve()
	}
}

// retryableAccept reports whether an Accept error is a passing shortage
// (file descriptors, buffers) or an aborted handshake, after which the
// listener still works.
func retryableAccept(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN, syscall.EPROTO} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *Server) trackListener(ln *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.listeners, ln)
		return true
	}
	if s.inShutdown.Load() {
		return false
	}
	s.listeners[ln] = struct{}{}
	return true
}

func (s *Server) trackConn(c *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, c)
		if len(s.conns) == 0 && s.inShutdown.Load() {
			select {
			case <-s.drained:
			default:
				close(s.drained)
			}
		}
		return true
	}
	if s.inShutdown.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// Shutdown stops the server gracefully: it closes the listeners and the
// idle connections, lets every request already being read or handled get
// its reply, closes those connections too, and returns nil once all are
// gone. If ctx ends first, Shutdown closes the remaining connections,
// cancels the handlers' context and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	if !s.inShutdown.Swap(true) {
		close(s.closing)
	}
	for ln := range s.listeners {
		(*ln).Close()
	}
	for c := range s.conns {
		// A connection that marks itself idle after this loop sees
		// inShutdown and closes itself.
		if c.state.CompareAndSwap(connIdle, connClosing) {
			c.rwc.Close()
		}
	}
	if len(s.conns) == 0 {
		select {
		case <-s.drained:
		default:
			close(s.drained)
		}
	}
	s.mu.Unlock()

	select {
	case <-s.drained:
		// A handler that outlived its request's DecisionTimeout may still
		// be running; it is waited for like a connection.
		handlers := make(chan struct{})
		go func() {
			s.deciders.Wait()
			close(handlers)
		}()
		select {
		case <-handlers:
			return nil
		case <-ctx.Done():
		}
	case <-ctx.Done():
	}
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		c.rwc.Close()
	}
	s.mu.Unlock()
	return fmt.Errorf("policy server shutdown: %w", ctx.Err())
}

// Connection states, for Shutdown.
const (
	connIdle    int32 = iota // waiting for the first byte of a request
	connActive               // reading a request, in the handler or replying
	connClosing              // closed by Shutdown while idle
)

type conn struct {
	s     *Server
	rwc   net.Conn
	id    uint64
	log   *slog.Logger
	ctx   context.Context // the handler's context; carries the connection id
	state atomic.Int32
	dec   *decider    // runs the handler; nil until the first request
	timer *time.Timer // decide's DecisionTimeout, reused
}

type connKey struct{}

// connInfo is what a Handler's ctx carries of its connection.
type connInfo struct {
	id  uint64
	log *slog.Logger
}

// ConnID returns the id of the policy connection a Handler's ctx belongs
// to, the same number the server logs as "conn", so a handler can log
// lines that join up with the server's.
func ConnID(ctx context.Context) (uint64, bool) {
	ci, ok := ctx.Value(connKey{}).(*connInfo)
	if !ok {
		return 0, false
	}
	return ci.id, true
}

// ConnLogger returns the logger the server uses for the connection a
// Handler's ctx belongs to (its lines carry "conn" and "remote"), made
// once per connection; nil outside a connection.
func ConnLogger(ctx context.Context) *slog.Logger {
	ci, ok := ctx.Value(connKey{}).(*connInfo)
	if !ok {
		return nil
	}
	return ci.log
}

func (s *Server) newConn(rwc net.Conn) *conn {
	id := s.lastConnID.Add(1)
	log := s.logger().With("conn", id, "remote", rwc.RemoteAddr().String())
	return &conn{
		s:   s,
		rwc: rwc,
		id:  id,
		log: log,
		ctx: context.WithValue(s.ctx, connKey{}, &connInfo{id: id, log: log}),
	}
}

// serve answers requests on one connection until it closes, fails, or
// the server shuts down.
func (c *conn) serve() {
	s := c.s
	var served int
	defer func() {
		if c.dec != nil {
			close(c.dec.work)
		}
		c.rwc.Close()
		s.trackConn(c, false)
		c.log.Debug("policy connection closed", "requests", served)
	}()
	c.log.Debug("policy connection opened")

	lim := s.Limits.withDefaults()
	readTimeout := s.ReadTimeout
	if readTimeout <= 0 {
		readTimeout = DefaultReadTimeout
	}
	writeTimeout := s.WriteTimeout
	if writeTimeout <= 0 {
		writeTimeout = DefaultWriteTimeout
	}
	br := bufio.NewReader(c.rwc)
	// A reply is at most "action=", maxActionLength bytes and "\n\n".
	bw := bufio.NewWriterSize(c.rwc, 1024)
	var p parser
	var writeDeadline time.Time

	for {
		c.state.Store(connIdle)
		if s.inShutdown.Load() {
			return
		}
		// The whole idle wait gets ReadTimeout, so that Postfix, not we,
		// closes an unused connection (see DefaultReadTimeout).
		readDeadline := time.Now().Add(readTimeout)
		c.rwc.SetReadDeadline(readDeadline)
		if _, err := br.Peek(1); err != nil {
			c.logIdleEnd(err)
			return
		}
		if !c.state.CompareAndSwap(connIdle, connActive) {
			return // closed by Shutdown
		}
		// A request that starts late in the idle wait still gets at least
		// half of ReadTimeout to arrive.
		if now := time.Now(); readDeadline.Sub(now) < readTimeout/2 {
			c.rwc.SetReadDeadline(now.Add(readTimeout))
		}

		req, err := p.read(br, lim)
		if err != nil {
			// Never log the request: its values may hold secrets. A
			// client resetting its connection mid-request is connection
			// noise; a malformed or cut-short request is worth a warning.
			if errors.Is(err, syscall.ECONNRESET) {
				c.log.Debug("policy client reset the connection mid-request", "err", err)
			} else {
				c.log.Warn("bad policy request; closing connection", "err", err)
			}
			s.observe("", 0, err)
			return
		}
		start := time.Now()
		resp, err := c.decide(req)
		if err != nil {
			c.log.Error("policy handler failed; closing connection without a reply, Postfix applies its default_action",
				"state", req.ProtocolState, "err", err)
			s.observe(req.ProtocolState, time.Since(start), err)
			return
		}
		// access(5): PREPEND is not allowed in smtpd_end_of_data_restrictions.
		if req.ProtocolState == StateEndOfMessage && resp.isPrepend() {
			c.log.Warn("handler answered PREPEND at END-OF-MESSAGE, where Postfix does not allow it; answering DUNNO")
			resp = Dunno()
		}
		// The write deadline moves only when less than half of it is left:
		// each write still gets at least WriteTimeout/2, and most requests
		// skip resetting the timer. It counts from the decision, not the
		// request: a slow handler must not cost the reply.
		if decided := time.Now(); writeDeadline.Sub(decided) < writeTimeout/2 {
			writeDeadline = decided.Add(writeTimeout)
			c.rwc.SetWriteDeadline(writeDeadline)
		}
		bw.WriteString("action=")
		bw.WriteString(resp.Action)
		// SMTPD_POLICY_README: the reply "is terminated by an empty line".
		bw.WriteString("\n\n")
		if err := bw.Flush(); err != nil {
			c.log.Warn("writing policy reply failed; closing connection", "state", req.ProtocolState, "err", err)
			s.observe(req.ProtocolState, time.Since(start), err)
			return
		}
		served++
		s.observe(req.ProtocolState, time.Since(start), nil)
	}
}

// decide is check within the server's DecisionTimeout.
func (c *conn) decide(req *Request) (Response, error) {
	d := c.s.DecisionTimeout
	if d <= 0 {
		return c.check(req)
	}
	if c.dec == nil {
		c.dec = &decider{work: make(chan *Request), done: make(chan decision, 1)}
		c.s.deciders.Add(1)
		go c.dec.run(c)
	}
	dec := c.dec
	dec.claim.Store(claimPending)
	req.claim = &dec.claim
	dec.work <- req
	if c.timer == nil {
		c.timer = time.NewTimer(d)
	} else {
		c.timer.Reset(d)
	}
	select {
	case r := <-dec.done:
		c.timer.Stop()
		return r.resp, r.err
	case <-c.timer.C:
		if !dec.claim.CompareAndSwap(claimPending, claimTimedOut) {
			// The handler decided in time and claimed the answer
			// (Request.Claim): it is acting on its decision, and its
			// response is the answer.
			r := <-dec.done
			return r.resp, r.err
		}
		// The decider is left to finish; its late answer is dropped (a
		// handler that claims it learns so) and it exits. The next
		// request gets a new one.
		close(dec.work)
		c.dec = nil
		resp := Dunno()
		if c.s.OnTimeout != nil {
			resp = c.s.OnTimeout(req)
		}
		c.log.Warn("policy request not decided in time; answering the configured error verdict", "state", req.ProtocolState,
			"timeout", d, "action", resp.Action)
		return resp, nil
	}
}

// decider runs a connection's requests through the handler one at a time
// on one goroutine, so that decide can give up on a request that takes too
// long. It lives as long as the connection: a goroutine per request spent
// about 7 % of the daemon's CPU growing each new stack to the handler's
// depth.
type decider struct {
	work  chan *Request
	done  chan decision // buffered: a late answer never blocks
	claim atomic.Int32  // the current request's claim state (Request.Claim)
}

type decision struct {
	resp Response
	err  error
}

func (d *decider) run(c *conn) {
	defer c.s.deciders.Done()
	for req := range d.work {
		r, err := c.check(req)
		d.done <- decision{r, err}
	}
}

// check calls the handler, turning a panic or an invalid response into an
// error.
func (c *conn) check(req *Request) (resp Response, err error) {
	defer func() {
		if v := recover(); v != nil {
			c.log.Error("policy handler panicked", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			resp, err = Response{}, fmt.Errorf("policy handler panicked: %v", v)
		}
	}()
	resp, err = c.s.Handler.Check(c.ctx, req)
	if err != nil {
		return resp, fmt.Errorf("policy handler: %w", err)
	}
	if err := resp.Validate(); err != nil {
		return resp, fmt.Errorf("policy handler returned an invalid response: %w", err)
	}
	return resp, nil
}

// logIdleEnd logs why an idle connection ended.
func (c *conn) logIdleEnd(err error) {
	switch {
	case c.state.Load() == connClosing:
		c.log.Debug("closed idle policy connection for shutdown")
	case errors.Is(err, io.EOF):
		c.log.Debug("policy client closed the connection")
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.log.Debug("policy connection idle too long; closing")
	case errors.Is(err, syscall.ECONNRESET):
		// A client resetting its connection is connection-level noise
		// (100,000 resets made 24 MB of log): debug only.
		c.log.Debug("policy client reset the connection")
	default:
		if n, ok := c.s.noise.allow(time.Now()); ok {
			c.log.Info("reading from policy connection failed", "err", err, "suppressed_before", n)
		}
	}
}

// noiseLimit lets a connection-level message through at most once per
// interval and counts the ones it held back.
type noiseLimit struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

const noiseInterval = 10 * time.Second

func (l *noiseLimit) allow(now time.Time) (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < noiseInterval {
		l.suppressed++
		return 0, false
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return n, true
}

func (s *Server) observe(state string, d time.Duration, err error) {
	if s.Observe != nil {
		s.Observe(state, d, err)
	}
}
