package fingerprint

import (
	"strings"
	"testing"
)

// BenchmarkClassify covers the shapes the milter path sees: the X-Mailer of
// the Zimbra clients, a client User-Agent behind an empty or unrecognised
// X-Mailer, no header, a folded value that must be copied, and a hostile
// one.
func BenchmarkClassify(b *testing.B) {
	cases := []struct {
		name    string
		xMailer string
		ua      string
	}{
		{"zclient", "Zimbra 8.8.15_GA_4545 (zclient/8.8.15_GA_4545)", ""},
		{"zimbra-ajax", "Zimbra 8.8.15_GA_3901 (ZimbraWebClient - FF73 (Linux)/8.8.15_GA_3895)", ""},
		{"zimbra-bare", "Zimbra 8.7.0_GA_1659", ""},
		{"thunderbird-ua", "", "Mozilla Thunderbird"},
		{"thunderbird-gecko-ua", "", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:102.0) Gecko/20100101 Thunderbird/102.15.1"},
		{"phpmailer", "PHPMailer 6.9.3 (https://github.com/PHPMailer/PHPMailer)", ""},
		{"junk-xmailer-then-ua", "0CTxq", "Roundcube Webmail/1.6.0"},
		{"other", "ActiveCampaign Mailer", ""},
		{"none", "", ""},
		{"folded", "Zimbra 8.8.15_GA_4545\r\n (zclient/8.8.15_GA_4545)", ""},
		{"1MiB", strings.Repeat("\xffA ", 1<<18), ""},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = Classify(c.xMailer, c.ua)
			}
		})
	}
}
