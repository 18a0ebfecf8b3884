package milter

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	gomilter "github.com/d--j/go-milter"
)

// BenchmarkMilterMessage measures whole milter conversations over
// loopback for a 10 KiB message (8 header fields, 3 recipients) with a
// trivial handler, as Postfix drives them: one milter connection per SMTP
// session, and sessions that carry several messages.
func BenchmarkMilterMessage(b *testing.B) {
	m := testMessage{
		from:  "alice@example.org",
		rcpts: []string{"bob@example.net", "carol@example.net", "dave@example.net"},
		body:  bytes.Repeat([]byte(strings.Repeat("x", 78)+"\r\n"), 10<<10/80),
	}
	for i := range 8 {
		m.headers = append(m.headers, Header{Name: fmt.Sprintf("X-Header-%d", i), Value: strings.Repeat("v", 60)})
	}
	handler := HandlerFunc(func(_ context.Context, msg *Message) (Decision, error) {
		if len(msg.Recipients) == 0 {
			return Decision{Kind: Reject}, nil
		}
		return Decision{Kind: Accept}, nil
	})
	newSession := func(b *testing.B, addr string) *gomilter.ClientSession {
		macros := gomilter.NewMacroBag()
		macros.Set("i", "4XyZ1234")
		macros.Set("{auth_authen}", "alice")
		cs, err := gomilter.NewClient("tcp", addr).Session(macros)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cs.Conn("client.example", gomilter.FamilyInet, 54321, "192.0.2.7"); err != nil {
			b.Fatal(err)
		}
		if _, err := cs.Helo("client.example"); err != nil {
			b.Fatal(err)
		}
		return cs
	}
	one := func(b *testing.B, cs *gomilter.ClientSession) {
		sendEnvelope(b, cs, m)
		_, act, err := sendContent(b, cs, m)
		if err != nil || act.Type != gomilter.ActionAccept {
			b.Fatalf("reply %v, %v", act, err)
		}
	}
	start := func(b *testing.B) string {
		addr, _ := startServer(b, &Server{Handler: handler, Logger: slog.New(slog.DiscardHandler)})
		return addr
	}

	b.Run("connection-per-message", func(b *testing.B) {
		addr := start(b)
		b.ReportAllocs()
		for b.Loop() {
			cs := newSession(b, addr)
			one(b, cs)
			cs.Close()
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("10-messages-per-connection", func(b *testing.B) {
		addr := start(b)
		b.ReportAllocs()
		var cs *gomilter.ClientSession
		i := 0
		for b.Loop() {
			if i%10 == 0 {
				if cs != nil {
					cs.Close()
				}
				cs = newSession(b, addr)
			}
			one(b, cs)
			i++
		}
		cs.Close()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	// The go-milter client writes each packet with two system calls, which
	// dominates the runs above. Postfix buffers its writes; this run sends
	// each message as one pre-encoded write, as an MTA with buffered
	// output does, so it measures the server side.
	b.Run("raw-mta-stream", func(b *testing.B) {
		addr := start(b)
		var stream []byte
		stream = append(stream, frame('D', []byte{'M'}, cstr("i"), cstr("4XyZ1234"), cstr("{auth_authen}"), cstr("alice"))...)
		stream = append(stream, frame('M', cstr("<"+m.from+">"))...)
		for _, r := range m.rcpts {
			stream = append(stream, frame('R', cstr("<"+r+">"))...)
		}
		for _, h := range m.headers {
			stream = append(stream, frame('L', cstr(h.Name), cstr(h.Value))...)
		}
		stream = append(stream, frame('N')...)
		stream = append(stream, frame('B', m.body)...)
		stream = append(stream, frame('E')...)

		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		readFrame := func() byte {
			var hdr [4]byte
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				b.Fatal(err)
			}
			data := make([]byte, binary.BigEndian.Uint32(hdr[:]))
			if _, err := io.ReadFull(c, data); err != nil {
				b.Fatal(err)
			}
			return data[0]
		}
		setup := bytes.Join([][]byte{optneg, frame('C', cstr("client.example"), []byte{'4'}, []byte{0xd4, 0x31}, cstr("192.0.2.7")), frame('H', cstr("client.example"))}, nil)
		if _, err := c.Write(setup); err != nil {
			b.Fatal(err)
		}
		if code := readFrame(); code != 'O' {
			b.Fatalf("negotiation reply %q", code)
		}
		b.ReportAllocs()
		b.SetBytes(int64(len(stream)))
		for b.Loop() {
			if _, err := c.Write(stream); err != nil {
				b.Fatal(err)
			}
			if code := readFrame(); code != 'a' {
				b.Fatalf("reply %q, want accept", code)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("parallel-connections", func(b *testing.B) {
		addr := start(b)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				cs := newSession(b, addr)
				one(b, cs)
				cs.Close()
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}
