package milter

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEnvelopeAddress(t *testing.T) {
	tests := []struct{ in, want string }{
		{"alice@example.org", "alice@example.org"},
		{"<alice@example.org>", "alice@example.org"},
		{" <alice@example.org> ", "alice@example.org"},
		{"< alice@example.org >", "alice@example.org"},
		{"<>", ""},
		{"", ""},
		{"<@relay.example,@hop.example:bob@example.net>", "bob@example.net"},
		{"@relay.example:bob@example.net", "bob@example.net"},
		{"<\"odd name\"@example.org>", "\"odd name\"@example.org"},
		{"<<nested@example.org>>", "<nested@example.org>"}, // one layer per call
		{"<unbalanced@example.org", "<unbalanced@example.org"},
		{"@no-colon.example", "@no-colon.example"},
	}
	for _, tc := range tests {
		if got := envelopeAddress(tc.in); got != tc.want {
			t.Errorf("envelopeAddress(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestQuarantineReason(t *testing.T) {
	tests := []struct{ in, want string }{
		{"bulk-from-scripted-client", "bulk-from-scripted-client"},
		{"", defaultReason},
		{" \r\n\t", defaultReason},
		{"a\nb\x00c\x7fd", "a b c d"},
		{"bad \xff utf8", "bad ? utf8"},
		{strings.Repeat("x", 150), strings.Repeat("x", MaxReasonLen)},
		{strings.Repeat("x", 99) + "é", strings.Repeat("x", 99)}, // é would straddle byte 100
	}
	for _, tc := range tests {
		if got := quarantineReason(tc.in); got != tc.want {
			t.Errorf("quarantineReason(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestValidHeaderName(t *testing.T) {
	for name, want := range map[string]bool{
		"X-Mailbrake": true, "": false, "Bad Name": false, "Colon:": false, "Tab\t": false, "Ümlaut": false, "~!#": true,
	} {
		if got := validHeaderName(name); got != want {
			t.Errorf("validHeaderName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestDecisionKindString(t *testing.T) {
	for k, want := range map[DecisionKind]string{
		Accept: "accept", Quarantine: "quarantine", TempFail: "tempfail", Reject: "reject", Discard: "discard", 0: "invalid(0)",
	} {
		if got := k.String(); got != want {
			t.Errorf("DecisionKind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

func TestPacketReader(t *testing.T) {
	valid := bytes.Join([][]byte{
		optneg,
		frame('D', []byte{'C'}, cstr("j"), cstr("mx")),
		frame('C', cstr("host"), []byte{'4'}, []byte{0, 25}, cstr("192.0.2.1")),
		frame('C', cstr("host"), []byte{'U'}),
		frame('H', cstr("helo")),
		frame('M', cstr("<a@b>"), cstr("SIZE=1")),
		frame('R', cstr("<c@d>")),
		frame('L', cstr("Subject"), cstr("hi")),
		frame('N'),
		frame('B', bytes.Repeat([]byte("b"), 70000)),
		frame('E'),
		frame('A'),
		frame('Q'),
	}, nil)
	t.Run("valid packets pass unchanged", func(t *testing.T) {
		var out bytes.Buffer
		// A 3-byte buffer makes every packet cross several reads.
		n, err := io.CopyBuffer(struct{ io.Writer }{&out}, struct{ io.Reader }{newPacketReader(bytes.NewReader(valid))}, make([]byte, 3))
		if err != nil || n != int64(len(valid)) || !bytes.Equal(out.Bytes(), valid) {
			t.Fatalf("copied %d of %d bytes, err %v", n, len(valid), err)
		}
	})

	tests := []struct {
		name    string
		in      []byte
		wantErr error
	}{
		{"zero length", be32(0), errMalformed},
		{"too long", be32(maxPacket + 1), errMalformed},
		{"unknown command", frame('z'), errMalformed},
		{"connect without NUL", frame('C', []byte("host")), errMalformed},
		{"connect without family", frame('C', cstr("host")), errMalformed},
		{"mail without NUL", frame('M', []byte("<a@b>")), errMalformed},
		{"empty rcpt", frame('R'), errMalformed},
		{"truncated length", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"truncated data", append(be32(10), 'B'), io.ErrUnexpectedEOF},
		{"clean end", nil, io.EOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A valid packet first: it must still come through.
			pr := newPacketReader(bytes.NewReader(append(append([]byte(nil), optneg...), tc.in...)))
			out, err := io.ReadAll(pr)
			if tc.wantErr == io.EOF {
				if err != nil {
					t.Fatalf("err = %v, want clean EOF", err)
				}
			} else if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !bytes.Equal(out, optneg) {
				t.Errorf("passed %q, want only the valid packet", out)
			}
		})
	}
}

// checkReason asserts quarantineReason's guarantees.
func checkReason(t *testing.T, in, got string) {
	t.Helper()
	if got == "" || len(got) > MaxReasonLen || !utf8.ValidString(got) || got != strings.TrimSpace(got) {
		t.Fatalf("quarantineReason(%q) = %q: empty, too long, invalid UTF-8 or untrimmed", in, got)
	}
	for _, c := range got {
		if c < 0x20 || c == 0x7f {
			t.Fatalf("quarantineReason(%q) = %q contains control character %U", in, got, c)
		}
	}
}
