package milter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
)

func TestMessageCollected(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 200<<10/16) // 200 KiB: four 64 KiB chunks
	tests := []struct {
		name         string
		skipBody     bool
		clientOpts   []gomilter.Option
		family       gomilter.ProtoFamily
		wantAddr     string
		wantPort     uint16
		wantSize     int64
		wantSkipped  bool
		wantNoMacros bool
	}{
		{name: "whole body counted", wantAddr: "192.0.2.7", wantPort: 54321, wantSize: int64(len(body))},
		{name: "body skipped after preview", skipBody: true, wantAddr: "192.0.2.7", wantPort: 54321,
			wantSize: int64(gomilter.DataSize64K), wantSkipped: true},
		{name: "ipv6 client", family: gomilter.FamilyInet6, wantAddr: "2001:db8::7", wantPort: 54321, wantSize: int64(len(body))},
		{name: "unix socket client", family: gomilter.FamilyUnix, wantSize: int64(len(body))},
		// A v2 MTA offers neither no-reply flags nor skip: every event is
		// answered and the whole body is read even with SkipBody.
		{name: "protocol v2 MTA", skipBody: true, clientOpts: []gomilter.Option{gomilter.WithMaximumVersion(2), gomilter.WithProtocols(0)},
			wantAddr: "192.0.2.7", wantPort: 54321, wantSize: int64(len(body))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			addr, _ := startServer(t, &Server{Handler: rec, PreviewLimit: 100, SkipBody: tc.skipBody})

			macros := gomilter.NewMacroBag()
			macros.Set("j", "mx.example")
			macros.Set("{daemon_name}", "smtpd")
			macros.Set("{tls_version}", "TLSv1.3")
			macros.Set("{auth_authen}", "alice@example.org")
			macros.Set("{auth_type}", "PLAIN")
			macros.Set("i", "MAILQID") // Postfix with smtpd_delay_open_until_valid_rcpt=no
			cs, err := gomilter.NewClient("tcp", addr, tc.clientOpts...).Session(macros)
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			clientAddr := map[gomilter.ProtoFamily]string{
				0: "192.0.2.7", gomilter.FamilyInet6: "2001:db8::7", gomilter.FamilyUnix: "/run/client.sock",
			}[tc.family]
			family := tc.family
			if family == 0 {
				family = gomilter.FamilyInet
			}
			if _, err := cs.Conn("client.example", family, 54321, clientAddr); err != nil {
				t.Fatal(err)
			}
			if _, err := cs.Helo("helo.example"); err != nil {
				t.Fatal(err)
			}
			m := testMessage{
				from: "alice@example.org",
				// The client adds <>; go-milter strips one pair and we
				// strip the rest and a source route.
				rcpts: []string{"bob@example.net", "<carol@example.net>", " <@relay.example:dave@example.net>"},
				headers: []Header{
					{"From", "Alice <alice@example.org>"},
					{"To", "bob@example.net"},
					{"Subject", "  Hello there  "},
					{"X-Folded", "one\r\n\ttwo"},
				},
				body: body,
			}
			sendEnvelope(t, cs, m)
			macros.Set("i", "EOMQID") // re-read at end of message
			acts, act, err := sendContent(t, cs, m)
			if err != nil {
				t.Fatal(err)
			}
			if act.Type != gomilter.ActionAccept || len(acts) != 0 {
				t.Fatalf("reply = %v %v, want accept without modifications", act, acts)
			}

			msgs := rec.messages()
			if len(msgs) != 1 {
				t.Fatalf("handler saw %d messages, want 1", len(msgs))
			}
			got := msgs[0]
			want := &Message{
				ConnID:         got.ConnID,
				ClientHost:     "client.example",
				ClientAddr:     tc.wantAddr,
				ClientPort:     tc.wantPort,
				Helo:           "helo.example",
				QueueID:        "EOMQID",
				AuthAuthen:     "alice@example.org",
				AuthType:       "PLAIN",
				Sender:         "alice@example.org",
				Recipients:     []string{"bob@example.net", "carol@example.net", "dave@example.net"},
				RecipientCount: 3,
				Headers: []Header{
					{"From", "Alice <alice@example.org>"},
					{"To", "bob@example.net"},
					{"Subject", "Hello there"},
					{"X-Folded", "one\r\n\ttwo"},
				},
				HeaderCount: 4,
				Preview:     body[:100],
				BodySize:    tc.wantSize,
				BodySkipped: tc.wantSkipped,
				Macros: map[string]string{
					"j": "mx.example", "{daemon_name}": "smtpd", "{tls_version}": "TLSv1.3",
					"{auth_authen}": "alice@example.org", "{auth_type}": "PLAIN", "i": "EOMQID",
				},
			}
			if got.ConnID == 0 {
				t.Error("ConnID = 0")
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("message:\n got %+v\nwant %+v", *got, *want)
			}
			if got.Header("subject") != "Hello there" || got.Header("X-Missing") != "" {
				t.Errorf("Header lookup: subject=%q missing=%q", got.Header("subject"), got.Header("X-Missing"))
			}
		})
	}
}

func TestMessagesOnOneConnectionAreIndependent(t *testing.T) {
	rec := &recorder{}
	addr, _ := startServer(t, &Server{Handler: rec, PreviewLimit: 8})
	macros := gomilter.NewMacroBag()
	macros.Set("{tls_version}", "TLSv1.3")
	cs := session(t, addr, macros)

	first := testMessage{
		from:    "alice@example.org",
		rcpts:   []string{"a1@example.net", "a2@example.net"},
		headers: []Header{{"Subject", "first"}, {"X-First", "1"}},
		body:    []byte("first body, long enough to be cut"),
	}
	macros.Set("{auth_authen}", "alice")
	macros.Set("i", "QID1")
	if _, act := send(t, cs, first); act.Type != gomilter.ActionAccept {
		t.Fatalf("first message: %v", act)
	}

	// A transaction aborted after RCPT (RSET) leaves nothing behind.
	macros.Set("{auth_authen}", "mallory")
	sendEnvelope(t, cs, testMessage{from: "mallory@example.org", rcpts: []string{"victim@example.net"}})
	if err := cs.Abort(nil); err != nil {
		t.Fatal(err)
	}

	// The queue ID is known from MAIL only; the empty value at EOM keeps it.
	second := testMessage{
		from:    "",
		rcpts:   []string{"b1@example.net"},
		headers: []Header{{"Subject", "second"}},
		body:    []byte("2nd"),
	}
	macros.Set("{auth_authen}", "")
	macros.Set("i", "QID3")
	sendEnvelope(t, cs, second)
	macros.Set("i", "")
	if _, _, err := sendContent(t, cs, second); err != nil {
		t.Fatal(err)
	}

	msgs := rec.messages()
	if len(msgs) != 2 {
		t.Fatalf("handler saw %d messages, want 2 (the aborted one is not handed over)", len(msgs))
	}
	m1, m2 := msgs[0], msgs[1]
	if m1.ConnID != m2.ConnID {
		t.Errorf("ConnID changed within a connection: %d, %d", m1.ConnID, m2.ConnID)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"m1 recipients", m1.Recipients, []string{"a1@example.net", "a2@example.net"}},
		{"m1 queue id", m1.QueueID, "QID1"},
		{"m1 auth", m1.AuthAuthen, "alice"},
		{"m1 preview", string(m1.Preview), "first bo"},
		{"m1 size", m1.BodySize, int64(len(first.body))},
		{"m2 sender", m2.Sender, ""},
		{"m2 recipients", m2.Recipients, []string{"b1@example.net"}},
		{"m2 count", m2.RecipientCount, 1},
		{"m2 headers", m2.Headers, []Header{{"Subject", "second"}}},
		{"m2 header count", m2.HeaderCount, 1},
		{"m2 queue id", m2.QueueID, "QID3"},
		{"m2 auth", m2.AuthAuthen, ""},
		{"m2 preview", string(m2.Preview), "2nd"},
		{"m2 size", m2.BodySize, int64(3)},
		// Connection state survives the messages and the Abort (which
		// makes go-milter forget the HELO-stage macros).
		{"m2 helo", m2.Helo, "helo.example"},
		{"m2 client", m2.ClientAddr, "192.0.2.7"},
		{"m2 tls macro", m2.Macros["{tls_version}"], "TLSv1.3"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestMessageBounds(t *testing.T) {
	rec := &recorder{}
	addr, _ := startServer(t, &Server{Handler: rec})
	cs := session(t, addr, nil)

	m := testMessage{from: "bulk@example.org", body: []byte("x")}
	for i := range MaxRecipients + 1 {
		m.rcpts = append(m.rcpts, fmt.Sprintf("r%d@example.net", i))
	}
	for i := range MaxHeaders + 5 {
		m.headers = append(m.headers, Header{"X-N", fmt.Sprint(i)})
	}
	send(t, cs, m)

	// Three 100 KiB fields: the third would pass MaxHeaderBytes.
	big := strings.Repeat("v", 100<<10)
	m2 := testMessage{from: "big@example.org", rcpts: []string{"r@example.net"}, body: []byte("x"),
		headers: []Header{{"X-A", big}, {"X-B", big}, {"X-C", big}, {"X-D", "small"}}}
	send(t, cs, m2)

	msgs := rec.messages()
	got := msgs[0]
	if len(got.Recipients) != MaxRecipients || got.RecipientCount != MaxRecipients+1 {
		t.Errorf("recipients kept %d of count %d, want %d of %d", len(got.Recipients), got.RecipientCount, MaxRecipients, MaxRecipients+1)
	}
	if got.Recipients[MaxRecipients-1] != fmt.Sprintf("r%d@example.net", MaxRecipients-1) {
		t.Errorf("last kept recipient = %q", got.Recipients[MaxRecipients-1])
	}
	if len(got.Headers) != MaxHeaders || got.HeaderCount != MaxHeaders+5 {
		t.Errorf("headers kept %d of count %d, want %d of %d", len(got.Headers), got.HeaderCount, MaxHeaders, MaxHeaders+5)
	}
	var names []string
	for _, h := range msgs[1].Headers {
		names = append(names, h.Name)
	}
	if want := []string{"X-A", "X-B", "X-D"}; !reflect.DeepEqual(names, want) || msgs[1].HeaderCount != 4 {
		t.Errorf("kept header fields %v (count %d), want %v (count 4)", names, msgs[1].HeaderCount, want)
	}
}

// observation is one call of Server.Observe.
type observation struct {
	kind DecisionKind
	err  bool
}

func TestDecisionsReachTheMTA(t *testing.T) {
	longReason := "bulk-from-scripted-client\n" + strings.Repeat("é", 80) // newline and a multi-byte rune at the cut
	tests := []struct {
		name     string
		decide   func(context.Context, *Message) (Decision, error)
		onError  Decision
		wantActs []gomilter.ModifyAction
		want     gomilter.Action
		wantObs  observation
	}{
		{
			name:    "accept",
			decide:  func(context.Context, *Message) (Decision, error) { return Decision{Kind: Accept}, nil },
			want:    gomilter.Action{Type: gomilter.ActionAccept, SMTPCode: 250, SMTPReply: "250 accept"},
			wantObs: observation{kind: Accept},
		},
		{
			name: "quarantine with headers",
			decide: func(context.Context, *Message) (Decision, error) {
				return Decision{Kind: Quarantine, Reason: longReason, AddHeaders: []Header{
					{"X-Mailbrake", "held"}, {"Bad Name", "skipped"}, {"X-Huge", strings.Repeat("x", 17<<10)}, {"X-Second", "a\nb"},
				}}, nil
			},
			wantActs: []gomilter.ModifyAction{
				{Type: gomilter.ActionAddHeader, HeaderName: "X-Mailbrake", HeaderValue: "held"},
				{Type: gomilter.ActionAddHeader, HeaderName: "X-Second", HeaderValue: "a\nb"},
				{Type: gomilter.ActionQuarantine, Reason: quarantineReason(longReason)},
			},
			want:    gomilter.Action{Type: gomilter.ActionAccept, SMTPCode: 250, SMTPReply: "250 accept"},
			wantObs: observation{kind: Quarantine},
		},
		{
			name:     "quarantine without reason",
			decide:   func(context.Context, *Message) (Decision, error) { return Decision{Kind: Quarantine}, nil },
			wantActs: []gomilter.ModifyAction{{Type: gomilter.ActionQuarantine, Reason: defaultReason}},
			want:     gomilter.Action{Type: gomilter.ActionAccept, SMTPCode: 250, SMTPReply: "250 accept"},
			wantObs:  observation{kind: Quarantine},
		},
		{
			name:    "tempfail default reply",
			decide:  func(context.Context, *Message) (Decision, error) { return Decision{Kind: TempFail}, nil },
			want:    gomilter.Action{Type: gomilter.ActionRejectWithCode, SMTPCode: 451, SMTPReply: "451 4.7.1 Try again later"},
			wantObs: observation{kind: TempFail},
		},
		{
			name: "tempfail custom reply",
			decide: func(context.Context, *Message) (Decision, error) {
				return Decision{Kind: TempFail, Code: 452, Text: "4.5.3 Too many recipients"}, nil
			},
			want:    gomilter.Action{Type: gomilter.ActionRejectWithCode, SMTPCode: 452, SMTPReply: "452 4.5.3 Too many recipients"},
			wantObs: observation{kind: TempFail},
		},
		{
			name: "reject custom reply",
			decide: func(context.Context, *Message) (Decision, error) {
				return Decision{Kind: Reject, Code: 554, Text: "5.7.0 Sending suspended"}, nil
			},
			want:    gomilter.Action{Type: gomilter.ActionRejectWithCode, SMTPCode: 554, SMTPReply: "554 5.7.0 Sending suspended"},
			wantObs: observation{kind: Reject},
		},
		{
			name: "reject with a 4xx code gets the default",
			decide: func(context.Context, *Message) (Decision, error) {
				return Decision{Kind: Reject, Code: 451}, nil
			},
			want:    gomilter.Action{Type: gomilter.ActionRejectWithCode, SMTPCode: 550, SMTPReply: "550 5.7.1 Message rejected"},
			wantObs: observation{kind: Reject},
		},
		{
			name:    "discard",
			decide:  func(context.Context, *Message) (Decision, error) { return Decision{Kind: Discard}, nil },
			want:    gomilter.Action{Type: gomilter.ActionDiscard, SMTPCode: 250, SMTPReply: "250 accept"},
			wantObs: observation{kind: Discard},
		},
		{
			name: "handler error tempfails",
			decide: func(context.Context, *Message) (Decision, error) {
				return Decision{Kind: Accept}, errors.New("store down")
			},
			want:    gomilter.Action{Type: gomilter.ActionRejectWithCode, SMTPCode: 451, SMTPReply: "451 4.3.0 Temporary failure, try again later"},
			wantObs: observation{kind: TempFail, err: true},
		},
		{
			name: "handler error with fail-open OnError",
			decide: func(context.Context, *Message) (Decision, error) {
				return Decision{}, errors.New("store down")
			},
			onError: Decision{Kind: Accept},
			want:    gomilter.Action{Type: gomilter.ActionAccept, SMTPCode: 250, SMTPReply: "250 accept"},
			wantObs: observation{kind: Accept, err: true},
		},
		{
			name:    "decision without kind is an error",
			decide:  func(context.Context, *Message) (Decision, error) { return Decision{}, nil },
			want:    gomilter.Action{Type: gomilter.ActionRejectWithCode, SMTPCode: 451, SMTPReply: "451 4.3.0 Temporary failure, try again later"},
			wantObs: observation{kind: TempFail, err: true},
		},
		{
			name:    "handler panic tempfails",
			decide:  func(context.Context, *Message) (Decision, error) { panic("boom") },
			want:    gomilter.Action{Type: gomilter.ActionRejectWithCode, SMTPCode: 451, SMTPReply: "451 4.3.0 Temporary failure, try again later"},
			wantObs: observation{kind: TempFail, err: true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var obs []observation
			s := &Server{
				Handler: HandlerFunc(tc.decide),
				OnError: tc.onError,
				Observe: func(_ time.Duration, kind DecisionKind, err error) {
					mu.Lock()
					obs = append(obs, observation{kind, err != nil})
					mu.Unlock()
				},
			}
			addr, _ := startServer(t, s)
			cs := session(t, addr, nil)
			acts, act := send(t, cs, simpleMessage)
			if !reflect.DeepEqual(acts, tc.wantActs) {
				t.Errorf("modifications:\n got %+v\nwant %+v", acts, tc.wantActs)
			}
			if *act != tc.want {
				t.Errorf("reply = %+v, want %+v", *act, tc.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if want := []observation{tc.wantObs}; !reflect.DeepEqual(obs, want) {
				t.Errorf("observed %+v, want %+v", obs, want)
			}
		})
	}
}

func TestServerKeepsServingAfterHandlerPanic(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	addr, _ := startServer(t, &Server{Handler: HandlerFunc(func(context.Context, *Message) (Decision, error) {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			var m map[string]int
			m["nil map"]++ // a real runtime panic
		}
		return Decision{Kind: Accept}, nil
	})})

	cs := session(t, addr, nil)
	if _, act := send(t, cs, simpleMessage); act.SMTPCode != 451 {
		t.Fatalf("reply to the panicking message = %+v, want 451", act)
	}
	// The same connection and a new one both keep working.
	if _, act := send(t, cs, simpleMessage); act.Type != gomilter.ActionAccept {
		t.Fatalf("next message on the connection: %+v", act)
	}
	if _, act := send(t, session(t, addr, nil), simpleMessage); act.Type != gomilter.ActionAccept {
		t.Fatalf("message on a new connection: %+v", act)
	}
}

func TestBrokenConversationDropsOnlyThatConnection(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		// negotiate sends a valid SMFIC_OPTNEG first.
		negotiate bool
		halfClose bool
	}{
		{name: "http request", payload: []byte("GET / HTTP/1.1\r\nHost: milter\r\n\r\n")},
		{name: "zero length packet", payload: []byte{0, 0, 0, 0}}, // crashes bare go-milter v0.10.2
		{name: "oversized packet", payload: be32(512 << 20)},      // go-milter would allocate 512 MiB
		{name: "truncated packet", payload: append(be32(100), "O\x00\x00"...), halfClose: true},
		{name: "connect without NUL", negotiate: true, payload: frame('C', []byte("host"))}, // crashes bare go-milter
		{name: "connect without family", negotiate: true, payload: frame('C', cstr("host"))},
		{name: "mail without NUL", negotiate: true, payload: frame('M', []byte("<a@b>"))},
		{name: "unknown command", negotiate: true, payload: frame('Z', cstr("x"))},
		{name: "second negotiation", negotiate: true, payload: optneg},
	}
	rec := &recorder{}
	addr, _ := startServer(t, &Server{Handler: rec})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A real session is in the middle of a message ...
			good := session(t, addr, nil)
			sendEnvelope(t, good, simpleMessage)

			// ... while another connection talks nonsense.
			raw, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			if tc.negotiate {
				if _, err := raw.Write(optneg); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := raw.Write(tc.payload); err != nil {
				t.Fatal(err)
			}
			if tc.halfClose {
				_ = raw.(*net.TCPConn).CloseWrite()
			}
			if dropped, err := isDropped(raw); !dropped {
				t.Fatalf("connection not dropped: %v", err)
			}

			if _, _, err := sendContent(t, good, simpleMessage); err != nil {
				t.Fatalf("concurrent session failed: %v", err)
			}
		})
	}
	if got := len(rec.messages()); got != len(tests) {
		t.Errorf("handler saw %d messages, want %d", got, len(tests))
	}
}

func TestHandlerContextCancelledWhenMTAHangsUp(t *testing.T) {
	started := make(chan struct{})
	cause := make(chan error, 1)
	addr, _ := startServer(t, &Server{Handler: HandlerFunc(func(ctx context.Context, _ *Message) (Decision, error) {
		close(started)
		select {
		case <-ctx.Done():
			cause <- context.Cause(ctx)
		case <-time.After(10 * time.Second):
			cause <- errors.New("context not cancelled within 10 s")
		}
		return Decision{Kind: Accept}, ctx.Err()
	})})

	conns := make(chan net.Conn, 1)
	dial := dialerFunc(func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		if err == nil {
			conns <- c
		}
		return c, err
	})
	cs := session(t, addr, nil, gomilter.WithDialer(dial))
	raw := <-conns
	sendEnvelope(t, cs, simpleMessage)
	ended := make(chan error, 1)
	go func() {
		_, _, err := sendContent(t, cs, simpleMessage)
		ended <- err
	}()
	<-started
	_ = raw.Close() // the MTA gives up on us

	err := <-cause
	if err == nil || !strings.Contains(err.Error(), "MTA connection lost") {
		t.Fatalf("handler context cause = %v, want MTA connection lost", err)
	}
	if err := <-ended; err == nil {
		t.Error("client saw a reply on a closed connection")
	}
}

func TestProgressWhileHandlerRuns(t *testing.T) {
	progressed := make(chan struct{})
	fc := &frameCounter{onCode: func(code byte, n int) {
		if code == 'p' && n == 2 {
			close(progressed)
		}
	}}
	s := &Server{
		Handler: HandlerFunc(func(ctx context.Context, _ *Message) (Decision, error) {
			select {
			case <-progressed: // the MTA has seen two SMFIR_PROGRESS
				return Decision{Kind: Quarantine, Reason: "slow"}, nil
			case <-time.After(10 * time.Second):
				return Decision{}, errors.New("no progress packets within 10 s")
			}
		}),
		progressEvery: time.Millisecond,
	}
	addr, _ := startServer(t, s)
	dial := dialerFunc(func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		return &sniffConn{Conn: c, fc: fc}, err
	})
	cs := session(t, addr, nil, gomilter.WithDialer(dial))
	acts, act := send(t, cs, simpleMessage)
	if act.Type != gomilter.ActionAccept || len(acts) != 1 || acts[0].Type != gomilter.ActionQuarantine {
		t.Fatalf("reply = %+v %+v, want quarantine and accept", acts, act)
	}
}

func TestShutdownWaitsForOpenConnections(t *testing.T) {
	s := &Server{Handler: &recorder{}}
	addr, served := startServer(t, s)
	cs := session(t, addr, nil)
	send(t, cs, simpleMessage) // the connection stays open between messages

	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()

	if err := <-served; !errors.Is(err, ErrServerClosed) || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve = %v, want ErrServerClosed wrapping net.ErrClosed", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a connection open", err)
	default:
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("listener still accepts after Shutdown")
	}
	// The open connection may still finish a message.
	if _, act := send(t, cs, simpleMessage); act.Type != gomilter.ActionAccept {
		t.Errorf("message during shutdown: %+v", act)
	}
	cs.Close()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if err := s.Serve(nil); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown = %v", err)
	}
}

func TestShutdownGivesUpAndCancelsHandlers(t *testing.T) {
	started := make(chan struct{})
	cause := make(chan error, 1)
	s := &Server{Handler: HandlerFunc(func(ctx context.Context, _ *Message) (Decision, error) {
		close(started)
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return Decision{}, ctx.Err()
	})}
	addr, _ := startServer(t, s)
	cs := session(t, addr, nil)
	sendEnvelope(t, cs, simpleMessage)
	ended := make(chan error, 1)
	go func() {
		_, _, err := sendContent(t, cs, simpleMessage)
		ended <- err
	}()
	<-started

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want context.Canceled", err)
	}
	if err := <-cause; !errors.Is(err, ErrServerClosed) {
		t.Errorf("handler context cause = %v, want ErrServerClosed", err)
	}
	if err := <-ended; err == nil {
		t.Error("client got a reply from a connection closed by Shutdown")
	}
}

func TestNegotiation(t *testing.T) {
	addr, _ := startServer(t, &Server{Handler: &recorder{}})
	t.Run("MTA without quarantine is refused", func(t *testing.T) {
		cl := gomilter.NewClient("tcp", addr, gomilter.WithActions(gomilter.OptAddHeader|gomilter.OptSetMacros))
		if cs, err := cl.Session(nil); err == nil {
			cs.Close()
			t.Fatal("session negotiated without SMFIF_QUARANTINE")
		}
	})
	t.Run("no-reply flags and macro requests", func(t *testing.T) {
		cs, err := gomilter.NewClient("tcp", addr).Session(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		for _, opt := range []gomilter.OptProtocol{gomilter.OptNoConnReply, gomilter.OptNoHeloReply, gomilter.OptNoMailReply,
			gomilter.OptNoRcptReply, gomilter.OptNoHeaderReply, gomilter.OptNoEOHReply, gomilter.OptNoBodyReply,
			gomilter.OptNoUnknown, gomilter.OptNoData} {
			if !cs.ProtocolOption(opt) {
				t.Errorf("protocol option %v not negotiated", opt)
			}
		}
		if cs.ProtocolOption(gomilter.OptSkip) || cs.ProtocolOption(gomilter.OptNoConnect) {
			t.Error("negotiated skip or no-connect")
		}
		if !cs.ActionOption(gomilter.OptQuarantine) || !cs.ActionOption(gomilter.OptAddHeader) || cs.ActionOption(gomilter.OptChangeBody) {
			t.Error("wrong actions negotiated")
		}
	})
}

func TestServeWithoutHandler(t *testing.T) {
	if err := (&Server{}).Serve(nil); err == nil {
		t.Fatal("Serve without Handler succeeded")
	}
}

// flakyListener fails its first Accept calls, like a listener out of file
// descriptors.
type flakyListener struct {
	net.Listener
	failures atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.failures.Add(-1) >= 0 {
		return nil, errors.New("accept4: too many open files")
	}
	return l.Listener.Accept()
}

func TestServeRetriesAcceptErrorsAndReportsAClosedListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &flakyListener{Listener: inner}
	ln.failures.Store(2)
	s := &Server{Handler: &recorder{}, Logger: testLogger(t)}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()

	cs := session(t, inner.Addr().String(), nil)
	if _, act := send(t, cs, simpleMessage); act.Type != gomilter.ActionAccept {
		t.Fatalf("reply after accept errors: %+v", act)
	}
	cs.Close()

	// Closed behind the server's back: an error, but not ErrServerClosed.
	inner.Close()
	if err := <-served; !errors.Is(err, net.ErrClosed) || errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v, want a net.ErrClosed error other than ErrServerClosed", err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
}

// TestRemoveHeaders: every copy of a field the decision removes goes,
// the last first (Postfix renumbers the rest after a removal), before the
// fields it adds; a name the message lacks costs nothing.
func TestRemoveHeaders(t *testing.T) {
	s := &Server{Handler: HandlerFunc(func(context.Context, *Message) (Decision, error) {
		return Decision{Kind: Quarantine, Reason: "held", RemoveHeaders: []string{"X-Mailbrake-Hold", "X-Absent"},
			AddHeaders: []Header{{"X-Mailbrake-Hold", "4ABC account=a@example.org reasons=x"}}}, nil
	})}
	addr, _ := startServer(t, s)
	cs := session(t, addr, nil, gomilter.WithActions(gomilter.OptAddHeader|gomilter.OptChangeHeader|gomilter.OptQuarantine))
	m := simpleMessage
	m.headers = []Header{{"From", "alice@example.org"}, {"x-mailbrake-hold", "4FORGED account=victim@example.org reasons=bulk"},
		{"Subject", "hi"}, {"X-Mailbrake-Hold", "4FORGED2 account=victim@example.org reasons=bulk"}}
	acts, act := send(t, cs, m)
	want := []gomilter.ModifyAction{
		{Type: gomilter.ActionChangeHeader, HeaderIndex: 2, HeaderName: "X-Mailbrake-Hold"},
		{Type: gomilter.ActionChangeHeader, HeaderIndex: 1, HeaderName: "X-Mailbrake-Hold"},
		{Type: gomilter.ActionAddHeader, HeaderName: "X-Mailbrake-Hold", HeaderValue: "4ABC account=a@example.org reasons=x"},
		{Type: gomilter.ActionQuarantine, Reason: "held"},
	}
	if !reflect.DeepEqual(acts, want) || act.Type != gomilter.ActionAccept {
		t.Fatalf("modifications:\n got %+v\nwant %+v\nreply %+v", acts, want, act)
	}
}
