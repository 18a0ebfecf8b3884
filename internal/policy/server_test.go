package policy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a log sink shared by connection goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// records returns the JSON log records.
func (s *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(s.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

type observation struct {
	state string
	err   error
}

type testServer struct {
	srv   *Server
	addr  string
	logs  *syncBuffer
	serve chan error

	mu  sync.Mutex
	obs []observation

	stopOnce sync.Once
}

// stop shuts the server down and waits for Serve to return. Afterwards
// every connection has ended, so all logs and observations are in.
func (ts *testServer) stop(t testing.TB) {
	t.Helper()
	ts.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ts.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-ts.serve; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
}

func (ts *testServer) observations() []observation {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return slices.Clone(ts.obs)
}

// startServer serves h on a fresh 127.0.0.1 port and shuts it down when
// the test ends.
func startServer(t testing.TB, h Handler, configure ...func(*Server)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{logs: &syncBuffer{}, serve: make(chan error, 1), addr: ln.Addr().String()}
	ts.srv = &Server{
		Handler: h,
		Logger:  slog.New(slog.NewJSONHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Observe: func(state string, d time.Duration, err error) {
			ts.mu.Lock()
			defer ts.mu.Unlock()
			ts.obs = append(ts.obs, observation{state, err})
		},
	}
	for _, f := range configure {
		f(ts.srv)
	}
	go func() { ts.serve <- ts.srv.Serve(ln) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

func (ts *testServer) dial(t testing.TB) *Client {
	t.Helper()
	c, err := Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// echo answers WARN with the request's state and recipient, and misbehaves
// on the recipients named in the cases.
var echo = HandlerFunc(func(ctx context.Context, r *Request) (Response, error) {
	switch r.Recipient {
	case "error@example.net":
		return Response{}, errors.New("store unavailable")
	case "panic@example.net":
		panic("handler bug")
	case "invalid@example.net":
		return Response{Action: "DUNNO\naction=OK"}, nil
	case "prepend@example.net":
		return Prepend("X-Test", "yes"), nil
	}
	return Warn(r.ProtocolState + " " + r.Recipient), nil
})

func rcpt(to string) *Request {
	return &Request{
		ProtocolState: StateRcpt, ProtocolName: "ESMTP", ClientAddress: "127.0.0.1",
		Sender: "alice@example.com", Recipient: to, SASLMethod: "PLAIN", SASLUsername: "alice@example.com",
		Instance: "a1.b2.c3.0",
	}
}

// mustCheck sends req and requires the echo reply.
func mustCheck(t testing.TB, c *Client, req *Request) {
	t.Helper()
	resp, err := c.Check(context.Background(), req)
	if err != nil {
		t.Fatalf("Check(%s): %v", req.Recipient, err)
	}
	if want := Warn(req.ProtocolState + " " + req.Recipient).Action; resp.Action != want {
		t.Fatalf("Check(%s) = %q, want %q", req.Recipient, resp.Action, want)
	}
}

func TestServerManyRequestsOneConnection(t *testing.T) {
	var mu sync.Mutex
	ids := map[uint64]int{}
	ts := startServer(t, HandlerFunc(func(ctx context.Context, r *Request) (Response, error) {
		id, ok := ConnID(ctx)
		if !ok {
			return Response{}, errors.New("no connection id in context")
		}
		mu.Lock()
		ids[id]++
		mu.Unlock()
		return echo(ctx, r)
	}))
	c := ts.dial(t)
	for i := range 3 {
		mustCheck(t, c, rcpt(fmt.Sprintf("r%d@example.net", i)))
	}
	eom := &Request{ProtocolState: StateEndOfMessage, RecipientCount: 3, Size: 2048, QueueID: "DB9C598416B"}
	mustCheck(t, c, eom)
	ts.stop(t)
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 1 {
		t.Fatalf("requests arrived on %d connections: %v", len(ids), ids)
	}
	for id, n := range ids {
		if n != 4 {
			t.Errorf("connection %d carried %d requests, want 4", id, n)
		}
	}
	obs := ts.observations()
	if len(obs) != 4 || obs[3].state != StateEndOfMessage || obs[0].err != nil {
		t.Errorf("observations = %+v", obs)
	}
}

func TestServerConcurrentConnections(t *testing.T) {
	ts := startServer(t, echo)
	const conns, requests = 16, 50
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		c := ts.dial(t)
		wg.Go(func() {
			for j := range requests {
				r := rcpt(fmt.Sprintf("c%d-r%d@example.net", i, j))
				resp, err := c.Check(context.Background(), r)
				if err != nil {
					errs <- err
					return
				}
				if want := "WARN RCPT " + r.Recipient; resp.Action != want {
					errs <- fmt.Errorf("got %q, want %q", resp.Action, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ts.stop(t)
	if n := len(ts.observations()); n != conns*requests {
		t.Errorf("observed %d requests, want %d", n, conns*requests)
	}
}

// TestServerMalformedInput sends each kind of bad input on its own
// connection: the server must close that connection without a reply, log
// a warning without attribute values, and keep answering a healthy
// connection opened before.
func TestServerMalformedInput(t *testing.T) {
	const secret = "s3cr3t-Passw0rd"
	head := "request=smtpd_access_policy\nprotocol_state=RCPT\nsasl_username=" + secret + "\n"
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := make([]byte, 4096)
	for i := range garbage {
		garbage[i] = byte(rng.UintN(256))
	}
	garbage[0] = 0xff // not "\n", which would end the request early
	var manyAttrs strings.Builder
	manyAttrs.WriteString(head)
	for i := range 10000 {
		fmt.Fprintf(&manyAttrs, "x%d=%s\n", i, secret)
	}
	manyAttrs.WriteString("\n")

	tests := []struct {
		name      string
		in        string
		closeSend bool // half-close after sending, so the server sees EOF
		want      error
	}{
		{"no empty line before EOF", head + "sender=a@example.com\n", true, io.ErrUnexpectedEOF},
		{"1 MB line", head + "sender=" + strings.Repeat(secret, 1<<20/len(secret)) + "\n\n", false, ErrLineTooLong},
		{"binary garbage", head + string(garbage) + "\n\n", false, ErrInvalidText},
		{"10,000 attributes", manyAttrs.String(), false, ErrTooManyAttributes},
		{"oversized request", head + strings.Repeat("sender="+strings.Repeat("a", 8000)+"\n", 20) + "\n", false, ErrRequestTooLarge},
		{"NUL", head + "sender=a\x00" + secret + "\n\n", false, ErrInvalidText},
		{"not a policy request", "request=other\nsasl_username=" + secret + "\nprotocol_state=RCPT\n\n", false, ErrNotPolicyRequest},
		{"bad protocol_state", "request=smtpd_access_policy\nsasl_username=" + secret + "\nprotocol_state=" + secret + "\n\n", false, ErrInvalidProtocolState},
	}
	ts := startServer(t, echo)
	healthy := ts.dial(t)
	mustCheck(t, healthy, rcpt("before@example.net"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			sent := make(chan struct{})
			go func() {
				defer close(sent)
				// The server may close before reading it all; a write
				// error is expected then.
				raw.Write([]byte(tt.in))
				if tt.closeSend {
					raw.(*net.TCPConn).CloseWrite()
				}
			}()
			reply, err := io.ReadAll(raw)
			if len(reply) != 0 {
				t.Errorf("got a reply %q, want the connection closed without one", reply)
			}
			if err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("reading: %v, want EOF or a reset", err)
			}
			raw.Close()
			<-sent
			mustCheck(t, healthy, rcpt("after-"+strings.ReplaceAll(tt.name, " ", "-")+"@example.net"))
		})
	}

	ts.stop(t)
	// One warning per case, each with the connection id and peer, none
	// with a value.
	if strings.Contains(ts.logs.String(), secret) {
		t.Errorf("logs contain an attribute value:\n%s", ts.logs.String())
	}
	var warned []string
	for _, rec := range ts.logs.records(t) {
		if rec["msg"] != "bad policy request; closing connection" {
			continue
		}
		if rec["level"] != "WARN" || rec["conn"] == nil || rec["remote"] == nil {
			t.Errorf("log record %v lacks level WARN, conn or remote", rec)
		}
		warned = append(warned, rec["err"].(string))
	}
	if len(warned) != len(tests) {
		t.Fatalf("got %d warnings, want %d: %q", len(warned), len(tests), warned)
	}
	var errs int
	for _, o := range ts.observations() {
		if o.err != nil {
			errs++
		}
	}
	if errs != len(tests) {
		t.Errorf("Observe saw %d errors, want %d", errs, len(tests))
	}
	for i, tt := range tests {
		// The logged error is the parse error's text.
		if !strings.Contains(warned[i], strings.TrimPrefix(tt.want.Error(), "policy: ")) {
			t.Errorf("%s: logged %q, want it to mention %q", tt.name, warned[i], tt.want)
		}
	}
}

// TestServerHandlerFailure: an error, a panic or an invalid response from
// the handler closes that connection without a reply (Postfix then
// applies its default_action); other connections keep working.
func TestServerHandlerFailure(t *testing.T) {
	tests := []struct {
		recipient, logMsg string
	}{
		{"error@example.net", "policy handler failed; closing connection without a reply, Postfix applies its default_action"},
		{"panic@example.net", "policy handler panicked"},
		{"invalid@example.net", "policy handler failed; closing connection without a reply, Postfix applies its default_action"},
	}
	ts := startServer(t, echo)
	other := ts.dial(t)
	mustCheck(t, other, rcpt("first@example.net"))
	for _, tt := range tests {
		t.Run(tt.recipient, func(t *testing.T) {
			c := ts.dial(t)
			mustCheck(t, c, rcpt("ok@example.net"))
			_, err := c.Check(context.Background(), rcpt(tt.recipient))
			if !errors.Is(err, io.EOF) {
				t.Fatalf("Check = %v, want the connection closed (io.EOF)", err)
			}
			if _, err := c.Check(context.Background(), rcpt("ok@example.net")); err == nil {
				t.Error("the client still works after the server closed its connection")
			}
			mustCheck(t, other, rcpt("still@example.net"))
			mustCheck(t, ts.dial(t), rcpt("new@example.net"))
			found := false
			for _, rec := range ts.logs.records(t) {
				if rec["msg"] == tt.logMsg && rec["level"] == "ERROR" && rec["conn"] != nil {
					found = true
				}
			}
			if !found {
				t.Errorf("no ERROR log %q with a conn id", tt.logMsg)
			}
		})
	}
	var stack bool
	for _, rec := range ts.logs.records(t) {
		if s, _ := rec["stack"].(string); rec["panic"] == "handler bug" && strings.Contains(s, "server_test.go") {
			stack = true
		}
	}
	if !stack {
		t.Error("the panic log has no stack trace of the handler")
	}
}

func TestServerPrependAtEndOfMessage(t *testing.T) {
	ts := startServer(t, echo)
	c := ts.dial(t)
	r := rcpt("prepend@example.net")
	resp, err := c.Check(context.Background(), r)
	if err != nil || resp.Action != "PREPEND X-Test: yes" {
		t.Fatalf("RCPT: %q, %v", resp.Action, err)
	}
	r.ProtocolState = StateEndOfMessage
	resp, err = c.Check(context.Background(), r)
	if err != nil || resp.Action != "DUNNO" {
		t.Fatalf("END-OF-MESSAGE: %q, %v; want DUNNO", resp.Action, err)
	}
}

// TestServerWire talks raw protocol: CRLF input, a request split over
// writes, two requests in one write, and the exact reply bytes.
func TestServerWire(t *testing.T) {
	ts := startServer(t, echo)
	raw, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	br := bufio.NewReader(raw)
	readReply := func() string {
		t.Helper()
		var b strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading reply: %v (so far %q)", err, b.String())
			}
			b.WriteString(line)
			if line == "\n" {
				return b.String()
			}
		}
	}
	io.WriteString(raw, "request=smtpd_access_policy\r\nprotocol_state=RCPT\r\n")
	io.WriteString(raw, "recipient=a@example.net\r\n\r\n")
	if got := readReply(); got != "action=WARN RCPT a@example.net\n\n" {
		t.Errorf("reply %q", got)
	}
	io.WriteString(raw, req("request=smtpd_access_policy", "protocol_state=RCPT", "recipient=b@example.net")+
		req("request=smtpd_access_policy", "protocol_state=DATA", "recipient=c@example.net"))
	if got := readReply() + readReply(); got != "action=WARN RCPT b@example.net\n\naction=WARN DATA c@example.net\n\n" {
		t.Errorf("replies %q", got)
	}
}

func TestServerIdleTimeout(t *testing.T) {
	ts := startServer(t, echo, func(s *Server) { s.ReadTimeout = time.Millisecond })
	raw, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	// The server closes the idle connection; the read ends with EOF.
	if b, err := io.ReadAll(raw); err != nil || len(b) != 0 {
		t.Fatalf("ReadAll = %q, %v; want EOF", b, err)
	}
}

func TestServerLogsCarryConnID(t *testing.T) {
	ts := startServer(t, HandlerFunc(func(ctx context.Context, r *Request) (Response, error) {
		// The handler logs through the connection's own logger.
		ConnLogger(ctx).Info("handler line")
		return echo(ctx, r)
	}))
	c := ts.dial(t)
	mustCheck(t, c, rcpt("a@example.net"))
	c.Close()
	bad, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(bad, "garbage\n\n")
	io.ReadAll(bad)
	bad.Close()
	ts.stop(t)
	recs := ts.logs.records(t)
	if len(recs) < 4 {
		t.Fatalf("only %d log records", len(recs))
	}
	conns := map[float64]bool{}
	handler := false
	for _, rec := range recs {
		handler = handler || rec["msg"] == "handler line"
		id, ok := rec["conn"].(float64)
		if !ok || rec["remote"] == nil {
			t.Errorf("log record without conn or remote: %v", rec)
		}
		conns[id] = true
	}
	if len(conns) != 2 {
		t.Errorf("log lines name %d connections, want 2", len(conns))
	}
	if !handler {
		t.Error("the handler's line through ConnLogger is missing")
	}
	if ConnLogger(context.Background()) != nil {
		t.Error("ConnLogger outside a connection is not nil")
	}
}

// TestShutdownWaitsForInFlight: Shutdown closes the listener and idle
// connections at once, lets a request inside the handler get its reply,
// then closes that connection and returns.
func TestShutdownWaitsForInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	ts := startServer(t, HandlerFunc(func(ctx context.Context, r *Request) (Response, error) {
		if r.Recipient == "slow@example.net" {
			close(entered)
			<-release
		}
		return echo(ctx, r)
	}))
	idle, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	var wire bytes.Buffer
	rcpt("idle@example.net").Encode(&wire)
	idle.Write(wire.Bytes())
	idleReader := bufio.NewReader(idle)
	if reply, err := idleReader.ReadString('\n'); err != nil || reply != "action=WARN RCPT idle@example.net\n" {
		t.Fatalf("idle connection: %q, %v", reply, err)
	}
	busy := ts.dial(t)
	type result struct {
		resp Response
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := busy.Check(context.Background(), rcpt("slow@example.net"))
		got <- result{resp, err}
	}()
	<-entered

	shutdown := make(chan error, 1)
	go func() { shutdown <- ts.srv.Shutdown(context.Background()) }()
	// Serve returns once the listener is closed.
	serveErr := <-ts.serve
	ts.serve <- serveErr // for stop
	if !errors.Is(serveErr, ErrServerClosed) || !errors.Is(serveErr, net.ErrClosed) {
		t.Fatalf("Serve = %v, want ErrServerClosed wrapping net.ErrClosed", serveErr)
	}
	// The idle connection is closed without waiting for the busy one: the
	// read ends (after the reply's empty line) with EOF.
	if rest, err := io.ReadAll(idleReader); err != nil || string(rest) != "\n" {
		t.Errorf("idle connection: read %q, %v; want it closed", rest, err)
	}
	if _, err := net.Dial("tcp", ts.addr); err == nil {
		t.Error("listener still accepts after Shutdown")
	}
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v while a request was in flight", err)
	default:
	}

	close(release)
	r := <-got
	if r.err != nil || r.resp.Action != "WARN RCPT slow@example.net" {
		t.Fatalf("in-flight request: %q, %v; want its reply", r.resp.Action, r.err)
	}
	if err := <-shutdown; err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if _, err := busy.Check(context.Background(), rcpt("late@example.net")); !errors.Is(err, io.EOF) {
		t.Errorf("busy connection after Shutdown: %v, want closed", err)
	}
	if err := ts.srv.Serve(mustListen(t)); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown = %v", err)
	}
}

// TestShutdownGivesUp: when ctx ends first, Shutdown cancels the handler's
// context, closes the connection and reports ctx's error.
func TestShutdownGivesUp(t *testing.T) {
	entered := make(chan struct{})
	ts := startServer(t, HandlerFunc(func(ctx context.Context, r *Request) (Response, error) {
		close(entered)
		<-ctx.Done()
		return Response{}, context.Cause(ctx)
	}))
	c := ts.dial(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.Check(context.Background(), rcpt("stuck@example.net"))
		done <- err
	}()
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ts.srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want context.Canceled", err)
	}
	if err := <-done; err == nil {
		t.Fatal("stuck request got a reply")
	}
}

func TestClientContext(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	ts := startServer(t, HandlerFunc(func(ctx context.Context, r *Request) (Response, error) {
		if r.Recipient == "slow@example.net" {
			close(entered)
			<-release
		}
		return Dunno(), nil
	}))
	t.Cleanup(func() { close(release) }) // runs before the server's cleanup
	c := ts.dial(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Check(ctx, rcpt("a@example.net")); !errors.Is(err, context.Canceled) {
		t.Errorf("Check with a cancelled context = %v", err)
	}

	// Cancelled while the server is still deciding: Check stops waiting.
	c = ts.dial(t)
	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		<-entered
		cancel()
	}()
	if _, err := c.Check(ctx, rcpt("slow@example.net")); !errors.Is(err, context.Canceled) {
		t.Errorf("Check cancelled while waiting = %v", err)
	}
}

func TestClientReplies(t *testing.T) {
	tests := []struct {
		name, reply, want string
		wantErr           error
	}{
		{"plain", "action=OK\n\n", "OK", nil},
		{"extra attributes", "foo=bar\naction=DEFER_IF_PERMIT Try later\n\n", "DEFER_IF_PERMIT Try later", nil},
		{"CRLF", "action=DUNNO\r\n\r\n", "DUNNO", nil},
		{"no action", "foo=bar\n\n", "", ErrNoAction},
		{"closed", "", "", io.EOF},
		{"cut", "action=OK\n", "", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln := mustListen(t)
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				if _, err := ReadRequest(bufio.NewReader(conn), Limits{}); err != nil {
					return
				}
				io.WriteString(conn, tt.reply)
			}()
			c, err := Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			resp, err := c.Check(context.Background(), rcpt("a@example.net"))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || resp.Action != tt.want {
				t.Fatalf("Check = %q, %v; want %q", resp.Action, err, tt.want)
			}
		})
	}
}

func mustListen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// BenchmarkServerRoundTrip measures request/reply over loopback with a
// handler that answers at once, one persistent connection per parallel
// worker, as Postfix's smtpd processes hold theirs. It reports the
// latency percentiles seen by the clients.
func BenchmarkServerRoundTrip(b *testing.B) {
	ts := startServer(b, HandlerFunc(func(context.Context, *Request) (Response, error) { return Dunno(), nil }),
		func(s *Server) { s.Logger = slog.New(slog.DiscardHandler); s.Observe = nil })
	r, err := ReadRequest(bufio.NewReader(strings.NewReader(rcptRequest)), Limits{})
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var lat []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		c, err := Dial("tcp", ts.addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		ctx := context.Background()
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			t0 := time.Now()
			resp, err := c.Check(ctx, r)
			if err != nil || resp.Action != "DUNNO" {
				b.Errorf("Check = %q, %v", resp.Action, err)
				return
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// TestServerDecisionTimeout: a handler slower than DecisionTimeout (a
// locked store) does not cost Postfix its answer: the request gets the
// configured one, the late answer is dropped, and the connection keeps
// serving; a handler slower than WriteTimeout still gets its reply
// written (the write deadline counts from the decision).
func TestServerDecisionTimeout(t *testing.T) {
	release := make(chan struct{})
	slow := HandlerFunc(func(ctx context.Context, r *Request) (Response, error) {
		if r.Recipient == "slow@example.net" {
			<-release
			return Reject("too late"), nil
		}
		if r.Recipient == "slowish@example.net" {
			time.Sleep(300 * time.Millisecond)
		}
		return Warn(r.ProtocolState + " " + r.Recipient), nil
	})
	ts := startServer(t, slow, func(s *Server) {
		s.DecisionTimeout = 150 * time.Millisecond
		s.OnTimeout = func(*Request) Response { return Defer("decision timed out") }
	})
	defer close(release)
	c := ts.dial(t)
	resp, err := c.Check(context.Background(), rcpt("slow@example.net"))
	if err != nil || resp.Action != Defer("decision timed out").Action {
		t.Fatalf("slow request: %q, %v", resp.Action, err)
	}
	mustCheck(t, c, rcpt("next@example.net"))

	ts2 := startServer(t, slow, func(s *Server) {
		s.WriteTimeout = 100 * time.Millisecond
		s.DecisionTimeout = time.Second
	})
	mustCheck(t, ts2.dial(t), rcpt("slowish@example.net"))
}

// TestConnectionNoiseBounded: connection-level failures do not log a line
// each (issue 13: 100,000 resets made 24 MB of log).
func TestConnectionNoiseBounded(t *testing.T) {
	var l noiseLimit
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	logged := 0
	for i := range 1000 {
		if _, ok := l.allow(now.Add(time.Duration(i) * time.Millisecond)); ok {
			logged++
		}
	}
	if logged != 1 {
		t.Errorf("%d lines for 1000 failures within a second", logged)
	}
	n, ok := l.allow(now.Add(noiseInterval + time.Second))
	if !ok || n != 999 {
		t.Errorf("after the interval: ok %v, suppressed %d (want 999)", ok, n)
	}
	// Resets: a client that connects and resets logs nothing at INFO.
	ts := startServer(t, echo)
	for range 50 {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("request=smtpd_access_policy\n"))
		c.(*net.TCPConn).SetLinger(0) // close with RST
		c.Close()
	}
	time.Sleep(200 * time.Millisecond)
	infos := 0
	for _, rec := range ts.logs.records(t) {
		if rec["level"] == "INFO" || rec["level"] == "WARN" {
			infos++
		}
	}
	if infos > 2 {
		t.Errorf("%d INFO/WARN lines for 50 reset connections", infos)
	}
}

// TestDecisionClaim: a handler that decides after the DecisionTimeout
// answered for it learns so from Request.Claim and must not act (the
// message went on as the timeout's answer said); one that claims in time
// is waited for, its response the answer, however long it then takes to
// act; and Shutdown waits for a handler left behind by a timeout.
func TestDecisionClaim(t *testing.T) {
	release := make(chan struct{})
	claimed := make(chan bool, 1)
	h := HandlerFunc(func(ctx context.Context, r *Request) (Response, error) {
		switch r.Recipient {
		case "late@example.net":
			<-release
			claimed <- r.Claim()
			return Hold("held"), nil
		case "acting@example.net":
			if !r.Claim() {
				t.Error("a handler claiming at once was refused")
			}
			time.Sleep(400 * time.Millisecond) // acting on the decision
			return Hold("held"), nil
		}
		return Dunno(), nil
	})
	ts := startServer(t, h, func(s *Server) {
		s.DecisionTimeout = 150 * time.Millisecond
		s.OnTimeout = func(*Request) Response { return Dunno() }
	})
	c := ts.dial(t)
	if resp, err := c.Check(context.Background(), rcpt("acting@example.net")); err != nil || resp.Action != Hold("held").Action {
		t.Fatalf("claimed decision answered %q (%v), want the handler's HOLD", resp.Action, err)
	}
	if resp, err := c.Check(context.Background(), rcpt("late@example.net")); err != nil || resp.Action != "DUNNO" {
		t.Fatalf("late decision answered %q (%v), want the timeout's DUNNO", resp.Action, err)
	}
	c.Close()
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- ts.srv.Shutdown(ctx)
	}()
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned (%v) while a handler left behind by a timeout still ran", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if ok := <-claimed; ok {
		t.Error("a handler deciding after the timeout's answer could claim the request")
	}
	if err := <-stopped; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
