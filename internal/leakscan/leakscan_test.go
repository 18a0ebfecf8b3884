package leakscan

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// crlf turns the "\n" line ends of a test message into "\r\n", as on the
// wire.
func crlf(s string) string {
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// b64lines encodes s as base64 in 76-character lines.
func b64lines(s string) string {
	enc := base64.StdEncoding.EncodeToString([]byte(s))
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\n")
	return b.String()
}

const hdr = "From: Bob <bob@example.org>\nTo: help@example.org\nDate: Mon, 2 Jun 2025 10:00:00 +0200\nMessage-ID: <1@example.org>\n"

func extract(t *testing.T, msg string, opt Options) Result {
	t.Helper()
	res, err := Extract(strings.NewReader(msg), opt)
	if err != nil {
		t.Fatalf("Extract: %v", err)
	}
	return res
}

// find returns the index of want among the candidates, or -1.
func find(res Result, want string) int {
	for i, c := range res.Candidates {
		if string(c.Value) == want {
			return i
		}
	}
	return -1
}

func values(res Result) []string {
	var vs []string
	for _, c := range res.Candidates {
		vs = append(vs, string(c.Value))
	}
	return vs
}

func TestExtract(t *testing.T) {
	img := b64lines(strings.Repeat("\x89PNG\r\n\x1a\n\x00\x00binary", 40))
	tests := []struct {
		name  string
		msg   string
		want  string
		label bool // want comes first and from a label
	}{
		{
			name:  "plain text, password is",
			msg:   hdr + "Subject: access\n\nHi,\nmy password is Hunter2!x\nthanks, Bob\n",
			want:  "Hunter2!x",
			label: true,
		},
		{
			name: "base64 body",
			msg: hdr + "Subject: hi\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n" +
				b64lines("Hello,\nhere it is. Password: B4se64Secret!\nRegards\n"),
			want:  "B4se64Secret!",
			label: true,
		},
		{
			name: "quoted-printable soft line break inside the password",
			msg: hdr + "Subject: hi\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: quoted-printable\n\n" +
				"Hello, this is a long line that the encoder had to wrap somewhere, pwd: Soft=3D=\nBr3ak!\nBye\n",
			want:  "Soft=Br3ak!",
			label: true,
		},
		{
			name: "html body",
			msg: hdr + "Subject: hi\nMIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n" +
				"<html><head><style>p { color: red; } .Styl3Secret!x {}</style></head><body>\n<p>Hello,</p><p>password: <b>S3cret!pw</b></p>\n<script>var notme = 'Scr1pt!Secret';</script></body></html>\n",
			want:  "S3cret!pw",
			label: true,
		},
		{
			name: "html entities",
			msg: hdr + "Subject: hi\nContent-Type: text/html\n\n" +
				"<div>pw&nbsp;=&nbsp;Amp&amp;Ent1ty</div>\n",
			want:  "Amp&Ent1ty",
			label: true,
		},
		{
			name:  "quoted reply",
			msg:   hdr + "Subject: Re: verify your account\n\nDone, see below.\n\nOn Mon, 2 Jun 2025, IT Desk wrote:\n> Reply with your credentials.\n> pw=Qu0t3d!Pw\n>> older text\n",
			want:  "Qu0t3d!Pw",
			label: true,
		},
		{
			name: "text/plain attachment",
			msg: hdr + "Subject: files\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n" +
				"This is a multi-part message in MIME format.\n--b1\nContent-Type: text/plain; charset=utf-8\n\nSee the attached notes.\n" +
				"--b1\nContent-Type: text/plain; name=\"notes.txt\"\nContent-Disposition: attachment; filename=\"notes.txt\"\nContent-Transfer-Encoding: base64\n\n" +
				b64lines("vpn\npass: Att4ched#1\n") + "--b1--\n",
			want:  "Att4ched#1",
			label: true,
		},
		{
			name: "followed by punctuation",
			msg:  hdr + "Subject: new\n\nI changed it, the new one is Tr0ub4dor&3.\n",
			want: "Tr0ub4dor&3",
		},
		{
			name: "exclamation kept before a full stop",
			msg:  hdr + "Subject: new\n\nI changed it, the new one is Hunter22!.\n",
			want: "Hunter22!",
		},
		{
			name: "iso-8859-1 quoted-printable",
			msg: hdr + "Subject: hallo\nMIME-Version: 1.0\nContent-Type: text/plain; charset=ISO-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n" +
				"Hallo,\nmein Passwort ist Gr=FC=DFe2024!\nDanke\n",
			want:  "Grüße2024!",
			label: true,
		},
		{
			name: "utf-8 8bit spanish",
			msg: hdr + "Subject: hola\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\n" +
				"Hola,\nmi CONTRASEÑA: Año2024ñ!\n",
			want:  "Año2024ñ!",
			label: true,
		},
		{
			name:  "french label with spaces",
			msg:   hdr + "Subject: bonjour\nContent-Type: text/plain; charset=utf-8\n\nVoici mon mot de passe : Été2024!\n",
			want:  "Été2024!",
			label: true,
		},
		{
			name:  "label value on the next line",
			msg:   hdr + "Subject: x\n\nUsername: bob\nPassword:\n\n  N3xtLine!\n",
			want:  "N3xtLine!",
			label: true,
		},
		{
			name:  "dash separator",
			msg:   hdr + "Subject: x\n\nlogin bob, passwd - D4sh3d!x\n",
			want:  "D4sh3d!x",
			label: true,
		},
		{
			name:  "subject rfc 2047",
			msg:   hdr + "Subject: =?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte("pw: Subj3ct!x")) + "?=\n\nsee subject\n",
			want:  "Subj3ct!x",
			label: true,
		},
		{
			name: "nested mixed > alternative",
			msg: hdr + "Subject: nested\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=outer\n\n" +
				"--outer\nContent-Type: multipart/alternative; boundary=\"inner\"\n\n" +
				"--inner\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\nHi,=20the password: N3sted=3DOk!\n" +
				"--inner\nContent-Type: text/html; charset=utf-8\n\n<p>Hi, the <i>password</i>: N3sted=Ok!</p>\n" +
				"--inner--\n" +
				"--outer\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\n" + img +
				"--outer--\n",
			want:  "N3sted=Ok!",
			label: true,
		},
		{
			name: "forwarded message/rfc822",
			msg: hdr + "Subject: Fwd\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=f\n\n" +
				"--f\nContent-Type: text/plain\n\nforwarding\n" +
				"--f\nContent-Type: message/rfc822\n\nFrom: a@example.org\nSubject: creds\n\nKennwort: F0rward3d!\n" +
				"--f--\n",
			want:  "F0rward3d!",
			label: true,
		},
		{
			name:  "broken base64 falls back to raw bytes",
			msg:   hdr + "Subject: x\nContent-Transfer-Encoding: base64\n\npassword: R4wFallback!\n",
			want:  "R4wFallback!",
			label: true,
		},
		{
			name:  "unknown charset falls back to raw bytes",
			msg:   hdr + "Subject: x\nContent-Type: text/plain; charset=x-no-such-charset\n\npassword: Unkn0wnCs!\n",
			want:  "Unkn0wnCs!",
			label: true,
		},
		{
			name:  "unknown transfer encoding falls back to raw bytes",
			msg:   hdr + "Subject: x\nContent-Transfer-Encoding: x-uuencode\n\npassword: Unkn0wnCte!\n",
			want:  "Unkn0wnCte!",
			label: true,
		},
		{
			name:  "malformed content type is text/plain",
			msg:   hdr + "Subject: x\nContent-Type: ;;;\n\npassword: BadCtype1!\n",
			want:  "BadCtype1!",
			label: true,
		},
		{
			name:  "malformed header line is skipped",
			msg:   hdr + "Subject: x\nthis is not a header\nContent-Type: text/plain\n\npassword: BadHdr1!x\n",
			want:  "BadHdr1!x",
			label: true,
		},
		{
			name:  "mbox From_ line",
			msg:   "From bob@example.org Mon Jun  2 10:00:00 2025\n" + hdr + "Subject: x\n\npassword: Mb0xLine!\n",
			want:  "Mb0xLine!",
			label: true,
		},
		{
			name: "plain token without label",
			msg:  hdr + "Subject: x\n\nHi, it is\nzq9Xv!e2\nthanks\n",
			want: "zq9Xv!e2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, msg := range []string{crlf(tt.msg), tt.msg} {
				res := extract(t, msg, Options{})
				i := find(res, tt.want)
				if i < 0 {
					t.Fatalf("%q not found in %q", tt.want, values(res))
				}
				if tt.label {
					if i != 0 || res.Candidates[0].Source != SourceLabel {
						t.Fatalf("%q at %d (%s), want first from a label; got %q", tt.want, i, res.Candidates[i].Source, values(res))
					}
				}
				if res.Truncated {
					t.Errorf("Truncated set on a small message")
				}
			}
		})
	}
}

func TestExtractNoText(t *testing.T) {
	img := b64lines(strings.Repeat("\x89PNG\r\n\x1a\n\x00\x00Hunter2!x binary", 100))
	msgs := map[string]string{
		"image only": hdr + "MIME-Version: 1.0\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\n" + img,
		"multipart image and pdf": hdr + "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=x\n\n" +
			"--x\nContent-Type: image/jpeg\nContent-Transfer-Encoding: base64\n\n" + img +
			"--x\nContent-Type: application/pdf\n\n%PDF-1.4 password: N0tText!\n--x--\n",
		"empty":       "",
		"header only": hdr,
	}
	for name, msg := range msgs {
		t.Run(name, func(t *testing.T) {
			res := extract(t, crlf(msg), Options{})
			if len(res.Candidates) != 0 {
				t.Fatalf("candidates %q, want none", values(res))
			}
			if res.TextBytes != 0 {
				t.Errorf("TextBytes = %d, want 0", res.TextBytes)
			}
		})
	}
}

func TestExtractLimits(t *testing.T) {
	long := hdr + "Subject: x\n\n" + strings.Repeat("lorem ipsum dolor sit amet\n", 2000) + "password: L4te!Secret\n"
	res := extract(t, crlf(long), Options{MaxBytes: 4096})
	if !res.Truncated {
		t.Errorf("MaxBytes: Truncated not set")
	}
	if res.TextBytes > 4096 {
		t.Errorf("TextBytes = %d, over MaxBytes", res.TextBytes)
	}
	if find(res, "L4te!Secret") >= 0 {
		t.Errorf("found text past MaxBytes")
	}

	var many strings.Builder
	many.WriteString(hdr + "Content-Type: multipart/mixed; boundary=m\n\n")
	for i := range 150 {
		fmt.Fprintf(&many, "--m\nContent-Type: text/plain\n\npart%d Pa55word%d!\n", i, i)
	}
	many.WriteString("--m--\n")
	res = extract(t, crlf(many.String()), Options{})
	if !res.Truncated || res.Parts != DefaultMaxParts {
		t.Errorf("MaxParts: Truncated %v, Parts %d", res.Truncated, res.Parts)
	}
	if find(res, "Pa55word5!") < 0 || find(res, "Pa55word120!") >= 0 {
		t.Errorf("MaxParts: wrong parts scanned: %q", values(res))
	}

	var deep strings.Builder
	deep.WriteString(hdr)
	const levels = 30
	for i := range levels {
		fmt.Fprintf(&deep, "Content-Type: multipart/mixed; boundary=d%d\n\n--d%d\n", i, i)
	}
	deep.WriteString("Content-Type: text/plain\n\npassword: D33p!Secret\n")
	for i := levels - 1; i >= 0; i-- {
		fmt.Fprintf(&deep, "--d%d--\n", i)
	}
	res = extract(t, crlf(deep.String()), Options{})
	if !res.Truncated || find(res, "D33p!Secret") >= 0 {
		t.Errorf("MaxDepth: Truncated %v, candidates %q", res.Truncated, values(res))
	}
	res = extract(t, crlf(deep.String()), Options{MaxDepth: levels + 1})
	if res.Truncated || find(res, "D33p!Secret") != 0 {
		t.Errorf("MaxDepth %d: Truncated %v, candidates %q", levels+1, res.Truncated, values(res))
	}

	words := hdr + "Subject: x\n\n"
	for i := range 50 {
		words += fmt.Sprintf("Tok%03d!x ", i)
	}
	res = extract(t, crlf(words+"\npassword: Cap!Secret1\n"), Options{MaxCandidates: 10})
	if !res.Truncated || len(res.Candidates) != 10 {
		t.Errorf("MaxCandidates: Truncated %v, %d candidates", res.Truncated, len(res.Candidates))
	}
	if find(res, "Cap!Secret1") != 0 {
		t.Errorf("MaxCandidates: label value not kept first: %q", values(res))
	}

	huge := hdr + "X-Big: " + strings.Repeat("a", maxHeaderBytes) + "\n\npassword: AfterB1gHeader\n"
	res = extract(t, huge, Options{})
	if !res.Truncated || len(res.Candidates) != 0 {
		t.Errorf("oversized header: Truncated %v, candidates %q", res.Truncated, values(res))
	}
}

func TestExtractFilters(t *testing.T) {
	msg := hdr + "Subject: x\n\n" +
		"See https://login.example.com/reset?token=Ab1! and mailto:Help1@example.org\n" +
		"Write to Alice.Smith@example.com or visit www.Example1.com today.\n" +
		"short Ab1! 12345 P@ssw0rd " + strings.Repeat("Z9!", 30) + "\n"
	res := extract(t, crlf(msg), Options{})
	for _, unwanted := range []string{
		"https://login.example.com/reset?token=Ab1!", "mailto:Help1@example.org",
		"Alice.Smith@example.com", "www.Example1.com", "Ab1!", "12345", "short", strings.Repeat("Z9!", 30),
	} {
		if i := find(res, unwanted); i >= 0 {
			t.Errorf("%q kept", unwanted)
		}
	}
	if find(res, "P@ssw0rd") < 0 {
		t.Errorf("P@ssw0rd dropped")
	}
	for _, c := range res.Candidates {
		if c.Source != SourceToken {
			t.Errorf("%q from %s, no label in the message", c.Value, c.Source)
		}
	}

	// MinClasses 2 drops single-class words; labels still bypass the
	// URL and address filters.
	res = extract(t, crlf(hdr+"Subject: x\n\nplease password: bob@example.com\nsomething Mixed1\n"), Options{MinClasses: 2})
	if find(res, "please") >= 0 || find(res, "something") >= 0 {
		t.Errorf("MinClasses 2 kept a single-class word: %q", values(res))
	}
	if find(res, "bob@example.com") != 0 || find(res, "Mixed1") < 0 {
		t.Errorf("want labelled address first and Mixed1: %q", values(res))
	}
}

func TestExtractOrder(t *testing.T) {
	msg := hdr + "Subject: order\n\n" +
		"Hello colleagues, iphone22 Tr1ple!x and later\n" +
		"> Quoted1!x from before\n" +
		"the code pw: Lab3l!late\n"
	res := extract(t, crlf(msg), Options{})
	order := []string{"Lab3l!late", "Tr1ple!x", "Quoted1!x", "iphone22", "colleagues"}
	last := -1
	for _, v := range order {
		i := find(res, v)
		if i < 0 {
			t.Fatalf("%q missing from %q", v, values(res))
		}
		if i <= last {
			t.Fatalf("%q at %d, not after the previous; order %q", v, i, values(res))
		}
		last = i
	}
	if find(res, "colleagues,") < 0 {
		t.Errorf("untrimmed form missing: %q", values(res))
	}
	seen := map[string]bool{}
	for _, c := range res.Candidates {
		if seen[string(c.Value)] {
			t.Errorf("duplicate %q", c.Value)
		}
		seen[string(c.Value)] = true
	}
}

func TestExtractReadError(t *testing.T) {
	msg := crlf(hdr + "Subject: x\n\npassword: Bef0reErr!\n" + strings.Repeat("more text here\n", 1000))
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader(msg[:len(msg)/2]), iotest.ErrReader(boom))
	res, err := Extract(r, Options{})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if find(res, "Bef0reErr!") != 0 {
		t.Errorf("candidates before the error lost: %q", values(res))
	}
}

func TestExtractValuesAreCopies(t *testing.T) {
	res := extract(t, crlf(hdr+"Subject: x\n\npassword: C0py!Value and Other1!x\n"), Options{})
	if len(res.Candidates) < 2 {
		t.Fatalf("candidates %q", values(res))
	}
	v0 := string(res.Candidates[0].Value)
	res.Candidates[0].Value = append(res.Candidates[0].Value, "XXXXXXXX"...)
	clear(res.Candidates[0].Value)
	if string(res.Candidates[1].Value) == "" || bytes.Contains(res.Candidates[1].Value, []byte("XXX")) {
		t.Errorf("values share memory: %q after changing %q", res.Candidates[1].Value, v0)
	}
}

func TestHTMLText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"<p>a</p><p>b</p>", "\na\n\nb\n"},
		{"x<script type=text/javascript>if (a<b) {}</script>y", "xy"},
		{"x<STYLE>p{}</Style >y", "xy"},
		{"x<!-- <p>c</p> -->y", "xy"},
		{"a &lt; b &amp;&amp; c&gt;d &#65;&#x42;", "a < b && c>d AB"},
		{"1 < 2 <3", "1 < 2 <3"},
		{"a<b>b</b>c", "abc"},
		{"<blockquote>q<br>r</blockquote>s", "\n> q\n> r\ns"},
		{"line\nbreak", "line break"},
		{"unterminated <a href=", "unterminated "},
		{"<script>never closed", ""},
	}
	for _, tt := range tests {
		if got := htmlText([]byte(tt.in)); got != tt.want {
			t.Errorf("htmlText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDecode(t *testing.T) {
	tests := []struct{ enc, in, want string }{
		{"base64", "aGVs\r\n bG8=", "hello"},
		{"base64", "aGk=aGk=", "hihi"},
		{"base64", "aGk", "hi"},
		{"base64", "not base64!", "not base64!"},
		{"quoted-printable", "a=3Db=\r\nc= \r\nd=\ne", "a=bcde"},
		{"quoted-printable", "100% =zz =4", "100% =zz =4"},
		{"quoted-printable", "caf=c3=a9=", "café"},
		{"x-unknown", "raw", "raw"},
	}
	for _, tt := range tests {
		if got := string(decodeTransfer(tt.enc, []byte(tt.in))); got != tt.want {
			t.Errorf("decodeTransfer(%q, %q) = %q, want %q", tt.enc, tt.in, got, tt.want)
		}
	}
	if got := string(decodeCharset("windows-1252", []byte("\x80uro"))); got != "€uro" {
		t.Errorf("windows-1252: %q", got)
	}
	if got := string(cutText([]byte("aé"), 2)); got != "a" {
		t.Errorf("cutText split a rune: %q", got)
	}
}

func TestLabels(t *testing.T) {
	tests := []struct {
		line string
		want string // "" for no label value
	}{
		{"password: Abc123!", "Abc123!"},
		{"PASSWORD:Abc123!", "Abc123!"},
		{"pw=Abc123!", "Abc123!"},
		{"PWD : Abc123!", "Abc123!"},
		{"passwd -Abc123!", "Abc123!"},
		{"pass:Abc123!", "Abc123!"},
		{"Passwort: Abc123!", "Abc123!"},
		{"mot  de\tpasse: Abc123!", "Abc123!"},
		{"contraseña = Abc123!", "Abc123!"},
		{"new_password := Abc123!", "Abc123!"},
		{"your password is: Abc123!", "Abc123!"},
		{"le mot de passe est Abc123!", "Abc123!"},
		{"(password: \"Abc123!\")", "Abc123!"},
		{"pass-through Abc123!", ""},
		{"the pass is Abc123!", ""},
		{"passport: Abc123!", ""},
		{"bypass: Abc123!", ""},
		{"password reset Abc123!", ""},
	}
	for _, tt := range tests {
		res := extract(t, crlf(hdr+"Subject: x\n\n"+tt.line+"\n"), Options{})
		got := ""
		if len(res.Candidates) > 0 && res.Candidates[0].Source == SourceLabel {
			got = string(res.Candidates[0].Value)
		}
		if got != tt.want {
			t.Errorf("%q: first label value %q, want %q (all %q)", tt.line, got, tt.want, values(res))
		}
	}
}

func TestClasses(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		word bool
	}{
		{"hello", 1, true},
		{"Hello", 2, true},
		{"HELLO", 1, true},
		{"iPhone", 2, false},
		{"HeLLo", 2, false},
		{"Marie-Claire", 3, true},
		{"don't", 2, true},
		{"l’été", 2, true},
		{"-dash", 2, false},
		{"dash-", 2, false},
		{"a--b", 2, false},
		{"Hunter2!x", 4, false},
		{"hunter22", 2, false},
		{"12345678", 1, false},
		{"日本語です", 1, true},
		{"Straße-Nord", 3, true},
		{"Ab-cD", 3, false},
	}
	for _, tt := range tests {
		if n, word := classes(tt.s); n != tt.n || word != tt.word {
			t.Errorf("classes(%q) = %d, %v, want %d, %v", tt.s, n, word, tt.n, tt.word)
		}
	}
}

func TestReadHeaderManyBadLines(t *testing.T) {
	// Past maxBadHeaderLines the fields are no longer parsed, only the
	// end of the header is looked for.
	msg := "Subject: x\n" + strings.Repeat("bad\n", 100000) + "X-Lost: yes\n\npassword: B0dy!Found\n"
	res := extract(t, msg, Options{})
	if find(res, "B0dy!Found") != 0 {
		t.Fatalf("body after many bad header lines: %q", values(res))
	}
}

func TestExtractHTMLHidden(t *testing.T) {
	msg := hdr + "Subject: hi\nContent-Type: text/html; charset=utf-8\n\n" +
		"<html><head><style>.Styl3!Secret {}</style><script>var s = 'Scr1pt!Secret';</script></head>" +
		"<body><!-- Comm3nt!Secret --><p>Visible1!x</p><blockquote>Qu0ted!Html</blockquote><p>After1!x</p></body></html>\n"
	res := extract(t, crlf(msg), Options{})
	for _, hidden := range []string{"Styl3!Secret", "Scr1pt!Secret", "Comm3nt!Secret", "'Scr1pt!Secret';"} {
		if find(res, hidden) >= 0 {
			t.Errorf("hidden HTML content %q extracted", hidden)
		}
	}
	vis, after, quoted := find(res, "Visible1!x"), find(res, "After1!x"), find(res, "Qu0ted!Html")
	if vis < 0 || after < 0 || quoted < 0 || quoted < after {
		t.Errorf("want Visible1!x, After1!x, then the blockquote's Qu0ted!Html: %q", values(res))
	}
}
