package daemon

import (
	"strings"
	"testing"

	"github.com/mailbrake/mailbrake/internal/milter"
)

func TestXMailerPrefersZimbra(t *testing.T) {
	for _, c := range []struct {
		hs   []milter.Header
		want string
	}{
		{[]milter.Header{{Name: "X-Mailer", Value: "PHPMailer 6.0"}, {Name: "x-mailer", Value: "Zimbra 8.8.15_GA_4545 (zclient/8.8.15_GA_4545)"}}, "Zimbra 8.8.15_GA_4545 (zclient/8.8.15_GA_4545)"},
		{[]milter.Header{{Name: "X-Mailer", Value: " Microsoft Outlook 16.0"}}, "Microsoft Outlook 16.0"},
		{nil, ""},
	} {
		if got := xMailer(&milter.Message{Headers: c.hs}); got != c.want {
			t.Errorf("%v: %q, want %q", c.hs, got, c.want)
		}
	}
}

func TestTextPreview(t *testing.T) {
	msg := &milter.Message{
		Headers: []milter.Header{{Name: "Content-Type", Value: `multipart/alternative; boundary="b"`}},
		Preview: []byte("--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=C3=A9 click\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>Hello <b>there</b></p><script>x()</script>\r\n--b--\r\n"),
	}
	got := textPreview(msg, 1000)
	for _, want := range []string{"Café click", "Hello there"} {
		if !strings.Contains(got, want) {
			t.Errorf("preview %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "x()") || strings.Contains(got, "<b>") {
		t.Errorf("preview keeps markup or script: %q", got)
	}
	if p := textPreview(msg, 5); len(p) > 5 {
		t.Errorf("preview longer than its limit: %q", p)
	}
}
