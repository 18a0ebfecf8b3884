package leakscan

import (
	"fmt"
	"mime/quotedprintable"
	"strings"
	"testing"
)

// benchMessage builds a realistic multipart/alternative reply of about
// size bytes: a quoted-printable text part with a quoted history and its
// HTML alternative, the password in a label near the end of the new text.
func benchMessage(size int) string {
	sentences := []string{
		"Thanks for getting back to me so quickly about the quarterly report.",
		"I have attached the figures from the Lyon office; the totals for Q3 are 12,480 and 9,311.",
		"Could you check whether the VPN client (version 5.2.1) works on the new laptops?",
		"Meeting moved to Thursday at 14:30 in room B-204, see https://intranet.example.org/rooms?id=204.",
		"Best regards, and have a good weekend — Marie-Claire Dupont, Finance.",
		"The invoice INV-2025-00917 was paid on 2025-06-02; please confirm with accounts@example.org.",
	}
	var text, htm strings.Builder
	htm.WriteString("<html><head><style>p{margin:0}</style></head><body>\n")
	for i := 0; text.Len()*21/20+htm.Len()+700 < size; i++ {
		s := sentences[i%len(sentences)]
		prefix := ""
		if i > 20 {
			prefix = "> "
		}
		fmt.Fprintf(&text, "%s%s (ref %d)\n", prefix, s, i)
		if i == 18 {
			text.WriteString("My new password: Sp1ng!2025x so you can log in.\n")
			htm.WriteString("<p>My new <b>password</b>: Sp1ng!2025x so you can log in.</p>\n")
		}
		if i > 20 {
			fmt.Fprintf(&htm, "<blockquote><div dir=\"ltr\">%s (ref&nbsp;%d)</div></blockquote>\n", s, i)
		} else {
			fmt.Fprintf(&htm, "<p style=\"font-family:Calibri,sans-serif\">%s (ref&nbsp;%d)</p>\n", s, i)
		}
	}
	htm.WriteString("</body></html>\n")
	var qp strings.Builder
	w := quotedprintable.NewWriter(&qp)
	w.Write([]byte(text.String()))
	w.Close()
	return crlf(hdr + "Subject: Re: quarterly report\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"=_alt_7f3a\"\n\n" +
		"--=_alt_7f3a\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n" + qp.String() +
		"\n--=_alt_7f3a\nContent-Type: text/html; charset=utf-8\n\n" + htm.String() +
		"--=_alt_7f3a--\n")
}

func BenchmarkExtract20KiB(b *testing.B) {
	msg := benchMessage(20 << 10)
	res, err := Extract(strings.NewReader(msg), Options{})
	if err != nil || find(res, "Sp1ng!2025x") != 0 {
		b.Fatalf("bench message: err %v, candidates %q", err, values(res))
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Extract(strings.NewReader(msg), Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestBenchMessage(t *testing.T) {
	msg := benchMessage(20 << 10)
	if n := len(msg); n < 18<<10 || n > 23<<10 {
		t.Fatalf("bench message is %d bytes, want about 20 KiB", n)
	}
	res := extract(t, msg, Options{})
	if find(res, "Sp1ng!2025x") != 0 {
		t.Fatalf("candidates %q", values(res))
	}
}
