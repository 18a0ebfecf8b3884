package milter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	gomilter "github.com/d--j/go-milter"
)

// ErrServerClosed is returned by Serve after Shutdown. It wraps
// net.ErrClosed, so callers that ignore a closed listener ignore it too.
var ErrServerClosed = fmt.Errorf("milter: server closed: %w", net.ErrClosed)

// Defaults for the Server's zero fields.
const (
	// defaultWriteTimeout is go-milter's default: the MTA reads our
	// replies at once, so a write that takes longer means it is stuck.
	defaultWriteTimeout = 10 * time.Second
	// progressInterval is how often SMFIR_PROGRESS is sent while a
	// handler runs. Postfix restarts its milter_content_timeout (300 s) on
	// each one; once a second keeps a slow store from ever reaching it and
	// notices a dead connection within about two writes.
	progressInterval = time.Second
)

// Server is a milter server. Set the exported fields before calling Serve
// and do not change them afterwards.
type Server struct {
	// Handler decides on each message. It is required.
	Handler Handler
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
	// PreviewLimit is how many body bytes Message.Preview keeps;
	// 0 or less means DefaultPreviewLimit.
	PreviewLimit int
	// SkipBody asks the MTA to stop sending the body once the preview is
	// full (SMFIR_SKIP, when the MTA offers it). It saves copying large
	// bodies to the milter, but BodySize is then only a lower bound and
	// every body chunk needs a reply. By default the whole body is read
	// without replies (SMFIP_NR_BODY) and BodySize is exact.
	SkipBody bool
	// OnError is the decision applied when the handler returns an error,
	// returns a decision without a valid Kind, or panics. The zero value
	// (or any invalid Kind) means TempFail 451 4.3.0; set
	// Decision{Kind: Accept} to fail open.
	OnError Decision
	// ReadTimeout bounds each read from the MTA; 0 means none. Postfix
	// keeps a milter connection open for the whole SMTP session and may
	// leave it idle as long as the SMTP client does, so a timeout must
	// exceed Postfix's smtpd_timeout (300 s). Dead peers are found by TCP
	// keepalive either way.
	ReadTimeout time.Duration
	// WriteTimeout bounds each write to the MTA; 0 means 10 s.
	WriteTimeout time.Duration
	// Observe, when set, is called after each handled message with the
	// handler's run time, the decision applied and the handler's error
	// (nil on success). It must be safe for concurrent use.
	Observe func(took time.Duration, kind DecisionKind, err error)

	// progressEvery overrides progressInterval in tests.
	progressEvery time.Duration

	initOnce   sync.Once
	ctx        context.Context // cancelled by a Shutdown that gives up waiting
	cancel     context.CancelCauseFunc
	inShutdown atomic.Bool
	lastConnID atomic.Uint64

	mu        sync.Mutex
	listeners map[*net.Listener]struct{}
	conns     map[*conn]struct{}
	changed   chan struct{} // closed and replaced whenever a connection ends
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.ctx, s.cancel = context.WithCancelCause(context.Background())
		s.listeners = make(map[*net.Listener]struct{})
		s.conns = make(map[*conn]struct{})
		s.changed = make(chan struct{})
		routeLibraryWarnings()
	})
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) previewLimit() int {
	if s.PreviewLimit > 0 {
		return s.PreviewLimit
	}
	return DefaultPreviewLimit
}

func (s *Server) writeTimeout() time.Duration {
	if s.WriteTimeout > 0 {
		return s.WriteTimeout
	}
	return defaultWriteTimeout
}

func (s *Server) progressInterval() time.Duration {
	if s.progressEvery > 0 {
		return s.progressEvery
	}
	return progressInterval
}

// onError returns the decision for a failed handler.
func (s *Server) onError() Decision {
	if s.OnError.Kind >= Accept && s.OnError.Kind <= Discard {
		return s.OnError
	}
	return Decision{Kind: TempFail, Code: 451, Text: "4.3.0 Temporary failure, try again later"}
}

// Serve accepts milter connections on ln and serves each in its own
// goroutine until Shutdown. It returns ErrServerClosed after Shutdown, or
// the listener's error if ln fails for good. Temporary accept errors (out
// of file descriptors) are logged and retried with backoff.
func (s *Server) Serve(ln net.Listener) error {
	if s.Handler == nil {
		return errors.New("milter: Server.Handler is nil")
	}
	s.init()
	if !s.trackListener(&ln, true) {
		return ErrServerClosed
	}
	defer s.trackListener(&ln, false)

	var backoff time.Duration
	for {
		raw, err := ln.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("milter: accepting connections: %w", err)
			}
			// Like net/http: back off from 5 ms to 1 s on accept errors.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.logger().Warn("milter accept failed; retrying", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return ErrServerClosed
			}
			continue
		}
		backoff = 0
		c := s.newConn(raw)
		if !s.trackConn(c, true) {
			_ = raw.Close()
			return ErrServerClosed
		}
		go c.serve()
	}
}

// Shutdown stops accepting connections and waits for the open ones to end.
// The MTA ends a milter connection with its SMTP session, so this can take
// as long as the slowest SMTP client. When ctx is done first, Shutdown
// cancels the handlers' contexts, closes the remaining connections (the MTA
// then applies its milter_default_action to their messages) and returns
// ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.inShutdown.Store(true)
	s.mu.Lock()
	var errs []error
	for ln := range s.listeners {
		if err := (*ln).Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	s.mu.Unlock()

	for {
		s.mu.Lock()
		n, changed := len(s.conns), s.changed
		s.mu.Unlock()
		if n == 0 {
			return errors.Join(errs...)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			s.cancel(ErrServerClosed)
			s.mu.Lock()
			for c := range s.conns {
				c.guard.abort()
			}
			s.mu.Unlock()
			s.logger().Warn("milter shutdown: closed connections still open", "connections", n)
			return ctx.Err()
		}
	}
}

func (s *Server) trackListener(ln *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.inShutdown.Load() {
			return false
		}
		s.listeners[ln] = struct{}{}
	} else {
		delete(s.listeners, ln)
	}
	return true
}

func (s *Server) trackConn(c *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.inShutdown.Load() {
			return false
		}
		s.conns[c] = struct{}{}
		return true
	}
	delete(s.conns, c)
	close(s.changed)
	s.changed = make(chan struct{})
	return true
}

// libraryWarnings makes go-milter's warnings (it logs through a package
// variable, by default with the standard log package) slog records once
// per process. They are Debug: every condition they report on our
// connections is also logged by this package with the connection id.
var libraryWarnings sync.Once

func routeLibraryWarnings() {
	libraryWarnings.Do(func() {
		gomilter.LogWarning = func(format string, v ...any) {
			slog.Default().Debug(fmt.Sprintf(format, v...), "component", "go-milter")
		}
	})
}
