package leakscan

import (
	"bytes"
	"html"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// Seeds for both targets live in testdata/fuzz/<target>/.

// checkResult checks the guarantees of a Result under opt.
func checkResult(t *testing.T, res Result, opt Options) {
	t.Helper()
	opt = opt.withDefaults()
	if len(res.Candidates) > opt.MaxCandidates {
		t.Fatalf("%d candidates, cap %d", len(res.Candidates), opt.MaxCandidates)
	}
	if res.TextBytes > opt.MaxBytes || res.Parts > opt.MaxParts {
		t.Fatalf("TextBytes %d (cap %d), Parts %d (cap %d)", res.TextBytes, opt.MaxBytes, res.Parts, opt.MaxParts)
	}
	seen := make(map[string]bool, len(res.Candidates))
	for _, c := range res.Candidates {
		n := utf8.RuneCount(c.Value)
		if n < opt.MinLen || n > opt.MaxLen {
			t.Fatalf("candidate %q has %d runes, want %d..%d", c.Value, n, opt.MinLen, opt.MaxLen)
		}
		if k, _ := classes(string(c.Value)); k < opt.MinClasses {
			t.Fatalf("candidate %q has %d classes, want %d", c.Value, k, opt.MinClasses)
		}
		if c.Source != SourceLabel && c.Source != SourceToken {
			t.Fatalf("candidate %q: source %q", c.Value, c.Source)
		}
		if seen[string(c.Value)] {
			t.Fatalf("duplicate candidate %q", c.Value)
		}
		seen[string(c.Value)] = true
	}
}

// FuzzExtract checks that Extract never fails on a reader that does not,
// that its results keep every bound, under the defaults and under tight
// options, and the round trip: a token written after "password: " in a
// plain message comes back as a label value.
func FuzzExtract(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, opt := range []Options{{}, {
			MaxBytes:      1 + len(data)%512,
			MaxDepth:      1 + len(data)%3,
			MaxParts:      1 + len(data)%5,
			MinLen:        1 + len(data)%8,
			MaxLen:        8 + len(data)%20,
			MinClasses:    1 + len(data)%4,
			MaxCandidates: 1 + len(data)%10,
		}} {
			res, err := Extract(bytes.NewReader(data), opt)
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			checkResult(t, res, opt)
			if txt := Text(bytes.NewReader(data), opt.MaxBytes+1); len(txt) > opt.MaxBytes+1 || !utf8.ValidString(txt) {
				t.Fatalf("Text: %d bytes, valid UTF-8 %v", len(txt), utf8.ValidString(txt))
			}
		}

		tok, _, _ := bytes.Cut(data, []byte("\n"))
		n := utf8.RuneCount(tok)
		if n < DefaultMinLen || n > DefaultMaxLen || bytes.IndexFunc(tok, unicode.IsSpace) >= 0 || bytes.IndexByte(tok, '\r') >= 0 {
			return
		}
		msg := "Subject: x\r\n\r\nHello,\r\npassword: " + string(tok) + "\r\n"
		res, err := Extract(strings.NewReader(msg), Options{})
		if err != nil {
			t.Fatalf("Extract: %v", err)
		}
		for _, c := range res.Candidates {
			if string(c.Value) == string(tok) {
				if c.Source != SourceLabel {
					t.Fatalf("%q found as %s, want label", tok, c.Source)
				}
				return
			}
		}
		t.Fatalf("%q not found after a label: %q", tok, values(res))
	})
}

// FuzzMask checks that no secret survives masking (unless it shares bytes
// with MaskToken, which masking then creates), that masking is
// idempotent, and that no secrets leave the text alone.
func FuzzMask(f *testing.F) {
	f.Fuzz(func(t *testing.T, text, secret string) {
		if got := Mask(text, nil); got != text {
			t.Fatalf("Mask without secrets changed %q to %q", text, got)
		}
		secrets := [][]byte{[]byte(secret)}
		out := Mask(text, secrets)
		if secret == "" {
			if out != text {
				t.Fatalf("Mask with an empty secret changed %q to %q", text, out)
			}
			return
		}
		for i := 0; i < len(MaskToken); i++ {
			if strings.IndexByte(secret, MaskToken[i]) >= 0 {
				return
			}
		}
		if strings.Contains(out, secret) {
			t.Fatalf("Mask(%q, %q) = %q still contains the secret", text, secret, out)
		}
		if again := Mask(out, secrets); again != out {
			t.Fatalf("Mask not idempotent: %q -> %q -> %q", text, out, again)
		}
		// Without any form of the secret in text, and forms too short for
		// partial matches at the edges, the text stays as it is.
		untouched := true
		for _, form := range []string{secret, html.EscapeString(secret), qpForm(secret)} {
			untouched = untouched && !strings.Contains(text, form) && len(form) <= minPartial
		}
		if untouched && out != text {
			t.Fatalf("Mask(%q, %q) = %q changed text without the secret", text, secret, out)
		}
	})
}
