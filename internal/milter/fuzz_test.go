package milter

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
)

// Seeds for all targets live in testdata/fuzz/<target>/.

// FuzzEnvelopeAddress checks that envelopeAddress only ever shortens and
// trims, and the round trip: an address it leaves alone comes back from
// its bracketed form.
func FuzzEnvelopeAddress(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		got := envelopeAddress(s)
		if len(got) > len(s) || got != strings.TrimSpace(got) {
			t.Fatalf("envelopeAddress(%q) = %q: longer or untrimmed", s, got)
		}
		if envelopeAddress(got) == got {
			for _, wrapped := range []string{"<" + got + ">", " <" + got + "> "} {
				if back := envelopeAddress(wrapped); back != got {
					t.Fatalf("envelopeAddress(%q) = %q, want %q", wrapped, back, got)
				}
			}
		}
	})
}

// FuzzQuarantineReason checks the reason's guarantees and that cleaning
// is idempotent.
func FuzzQuarantineReason(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		got := quarantineReason(s)
		checkReason(t, s, got)
		if again := quarantineReason(got); again != got {
			t.Fatalf("quarantineReason not idempotent: %q -> %q -> %q", s, got, again)
		}
	})
}

// FuzzPacketReader checks that the guard passes a prefix of its input
// unchanged, made only of whole packets that pass checkPacket, and all of
// the input when it reports no error.
func FuzzPacketReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := io.ReadAll(newPacketReader(bytes.NewReader(data)))
		if !bytes.HasPrefix(data, out) {
			t.Fatalf("output is not a prefix of the input")
		}
		if err == nil && len(out) != len(data) {
			t.Fatalf("no error but passed %d of %d bytes", len(out), len(data))
		}
		for rest := out; len(rest) > 0; {
			if len(rest) < 5 {
				t.Fatalf("partial packet header passed: %q", rest)
			}
			n := binary.BigEndian.Uint32(rest)
			if n == 0 || n > maxPacket || uint64(len(rest)) < 4+uint64(n) {
				t.Fatalf("bad packet length %d passed", n)
			}
			if err := checkPacket(rest[4], rest[5:4+n]); err != nil {
				t.Fatalf("packet failing checkPacket passed: %v", err)
			}
			rest = rest[4+n:]
		}
	})
}

// FuzzServeConn feeds arbitrary bytes as an MTA's side of a milter
// connection to a real server (go-milter included) and checks that the
// session ends without crashing the process, whatever it is sent. Before
// the packet guard, a 4-byte zero packet was enough to crash it.
func FuzzServeConn(f *testing.F) {
	logger := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &Server{
			Logger:       logger,
			PreviewLimit: 16,
			SkipBody:     len(data)%2 == 0,
			Handler: HandlerFunc(func(_ context.Context, msg *Message) (Decision, error) {
				// Touch everything collected.
				_ = msg.Header("Subject")
				kinds := []DecisionKind{Accept, Quarantine, TempFail, Reject, Discard}
				return Decision{
					Kind:       kinds[(len(msg.Recipients)+len(msg.Headers)+len(msg.Preview))%len(kinds)],
					Reason:     msg.Sender,
					Text:       msg.Header("Subject"),
					AddHeaders: []Header{{Name: "X-Test", Value: msg.QueueID}},
				}, nil
			}),
		}
		s.init()
		srvSide, mta := net.Pipe()
		c := s.newConn(srvSide)
		s.trackConn(c, true)
		done := make(chan struct{})
		go func() {
			c.serve()
			close(done)
		}()
		go func() { _, _ = io.Copy(io.Discard, mta) }()
		_, _ = mta.Write(data)
		_ = mta.Close()
		<-done
	})
}
