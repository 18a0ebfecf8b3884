package pwleak

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/engine"
)

// message20KiB is a realistic 20 KiB multipart/alternative reply (text
// and HTML with a quoted history) without the password: the worst case,
// where every candidate is tested.
func message20KiB() []byte {
	var text, html strings.Builder
	words := strings.Fields("Thanks for the update on the quarterly budget review meeting, I have attached the revised figures and the notes from Tuesday; " +
		"please check section 4.2 before Friday and let me know whether the 2026 forecast (v3) still holds. Regards, Alex — Room B-214, ext. 5521")
	for i := 0; text.Len() < 9<<10; i++ {
		if i%12 == 11 {
			text.WriteString("\r\n> ")
		}
		text.WriteString(words[i%len(words)])
		text.WriteByte(' ')
	}
	html.WriteString("<html><body><div>")
	for i := 0; html.Len() < 10<<10; i++ {
		fmt.Fprintf(&html, "<p>%s <b>%s</b></p>", words[i%len(words)], words[(i+7)%len(words)])
	}
	html.WriteString("</div></body></html>")
	return []byte("From: alex@example.edu\r\nTo: team@example.edu\r\nSubject: Re: budget\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/alternative; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text.String() +
		"\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html.String() + "\r\n--b1--\r\n")
}

// BenchmarkScan20KiBSSHA512 measures the whole inline check of one
// 20 KiB message against a Zimbra-style {SSHA512} hash (candidate
// extraction, every candidate hashed), and reports the p99 of single
// checks.
func BenchmarkScan20KiBSSHA512(b *testing.B) {
	src := &source{hashes: map[string]string{"u@example.edu": ssha512("Not-In-The-Message#1")}}
	d := New(Options{Sources: []HashSource{src}, Action: engine.ActionHold})
	defer d.Close()
	body := message20KiB()
	ctx := context.Background()
	durs := make([]time.Duration, 0, b.N)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s := &engine.Submission{Account: "u@example.edu", Body: body}
		t0 := time.Now()
		if fs := d.Outbound(ctx, s); fs != nil {
			b.Fatal("false match")
		}
		durs = append(durs, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(durs)
	if len(durs) > 0 {
		b.ReportMetric(float64(durs[len(durs)*99/100].Microseconds()), "p99-µs")
		b.ReportMetric(float64(durs[len(durs)/2].Microseconds()), "p50-µs")
	}
}
