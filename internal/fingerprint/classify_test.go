package fingerprint

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// Unless a comment says otherwise, the values are real: from
// shared/data/mua-header-fingerprints/headers.csv (kinds observed and
// phishing), the code-index excerpts it cites, or the brief.
func TestClassify(t *testing.T) {
	tests := []struct {
		name     string
		xMailer  string
		ua       string
		family   Family
		version  string
		client   string // expected Client when it differs from the input
		noClient bool   // expected Client is empty
	}{
		// Zimbra Standard HTML client / ZMailbox scripts: every zclient value.
		{name: "zclient brief", xMailer: "Zimbra 8.8.15_GA_4545 (zclient/8.8.15_GA_4545)", family: FamilyZimbraHTML, version: "8.8.15_GA_4545"},
		{name: "zclient wika.co.id spam", xMailer: "Zimbra 8.8.12_GA_3866 (zclient/8.8.12_GA_3866)", family: FamilyZimbraHTML, version: "8.8.12_GA_3866"},
		{name: "zclient dsns.gov.ua spam", xMailer: "Zimbra 8.8.15_GA_3918 (zclient/8.8.15_GA_3918)", family: FamilyZimbraHTML, version: "8.8.15_GA_3918"},
		{name: "zclient git list 419", xMailer: "Zimbra 8.6.0_GA_1169 (zclient/8.6.0_GA_1169)", family: FamilyZimbraHTML, version: "8.6.0_GA_1169"},
		{name: "zclient phishing 8.5.1", xMailer: "Zimbra 8.5.1_GA_3056 (zclient/8.5.1_GA_3056)", family: FamilyZimbraHTML, version: "8.5.1_GA_3056"},
		{name: "zclient phishing 8.8.15", xMailer: "Zimbra 8.8.15_GA_3829 (zclient/8.8.15_GA_3829)", family: FamilyZimbraHTML, version: "8.8.15_GA_3829"},
		{name: "zclient loadgen", xMailer: "Zimbra 9.0.0_GA_4718 (zclient/9.0.0_GA_4718)", family: FamilyZimbraHTML, version: "9.0.0_GA_4718"},
		{name: "zclient upper case", xMailer: "ZIMBRA 8.8.15_GA_4545 (ZCLIENT/8.8.15_GA_4545)", family: FamilyZimbraHTML, version: "8.8.15_GA_4545"},
		{name: "zclient extra white space", xMailer: "  Zimbra   8.8.15_GA_4545 \t (zclient/8.8.15_GA_4545)  ", family: FamilyZimbraHTML, version: "8.8.15_GA_4545",
			client: "Zimbra 8.8.15_GA_4545 (zclient/8.8.15_GA_4545)"},
		{name: "zclient folded", xMailer: "Zimbra 8.8.15_GA_4545\r\n (zclient/8.8.15_GA_4545)", family: FamilyZimbraHTML, version: "8.8.15_GA_4545",
			client: "Zimbra 8.8.15_GA_4545 (zclient/8.8.15_GA_4545)"},
		{name: "zclient without space before parenthesis (constructed)", xMailer: "Zimbra 8.8.15_GA_4545(zclient/8.8.15_GA_4545)", family: FamilyZimbraHTML, version: "8.8.15_GA_4545"},

		// Zimbra without a user agent.
		{name: "bare 8.7.0", xMailer: "Zimbra 8.7.0_GA_1659", family: FamilyZimbraBare, version: "8.7.0_GA_1659"},
		{name: "bare 8.7.9", xMailer: "Zimbra 8.7.9_GA_1794", family: FamilyZimbraBare, version: "8.7.9_GA_1794"},
		{name: "bare trailing white space", xMailer: "Zimbra 8.7.0_GA_1659 \r\n", family: FamilyZimbraBare, version: "8.7.0_GA_1659", client: "Zimbra 8.7.0_GA_1659"},

		// Zimbra Modern UI.
		{name: "modern yandex", xMailer: "Zimbra 9.0.0_GA_4258 (ZimbraXWebClient - yandexbrowser22 (Linux)/9.0.0_GA_4258)", family: FamilyZimbraModern, version: "9.0.0_GA_4258"},
		// Constructed from fetchUserAgentName() (code-index excerpt 48243674108).
		{name: "modern desktop (constructed)", xMailer: "Zimbra 10.0.0_GA_4518 (ZimbraXDesktopClient - (Windows)/10.0.0_GA_4518)", family: FamilyZimbraModern, version: "10.0.0_GA_4518"},

		// Zimbra AJAX web client.
		{name: "ajax FF27", xMailer: "Zimbra 8.0.6_GA_5922 (ZimbraWebClient - FF27 (Linux)/8.0.6_GA_5922)", family: FamilyZimbraAjax, version: "8.0.6_GA_5922"},
		{name: "ajax GC45", xMailer: "Zimbra 8.0.6_GA_5922 (ZimbraWebClient - GC45 (Linux)/8.0.6_GA_5922)", family: FamilyZimbraAjax, version: "8.0.6_GA_5922"},
		{name: "ajax two builds", xMailer: "Zimbra 8.8.15_GA_3901 (ZimbraWebClient - FF73 (Linux)/8.8.15_GA_3895)", family: FamilyZimbraAjax, version: "8.8.15_GA_3901"},
		{name: "ajax FF139", xMailer: "Zimbra 9.0.0_GA_4718 (ZimbraWebClient - FF139 (Linux)/9.0.0_GA_4737)", family: FamilyZimbraAjax, version: "9.0.0_GA_4718"},
		{name: "ajax Win phishing", xMailer: "Zimbra 8.6.0_GA_1242 (ZimbraWebClient - FF128 (Win)/8.6.0_GA_1242)", family: FamilyZimbraAjax, version: "8.6.0_GA_1242"},
		{name: "ajax GC131 phishing", xMailer: "Zimbra 8.8.12_GA_3866 (ZimbraWebClient - GC131 (Win)/8.8.12_GA_3844)", family: FamilyZimbraAjax, version: "8.8.12_GA_3866"},
		{name: "ajax Mac (code-index 68426426602)", xMailer: "Zimbra 8.0.6_GA_5922 (ZimbraWebClient - GC43 (Mac)/8.0.6_GA_5922)", family: FamilyZimbraAjax, version: "8.0.6_GA_5922"},
		{name: "ajax lower case", xMailer: "zimbra 8.8.15_ga_4652 (zimbrawebclient - gc131 (win)/8.8.15_ga_4652)", family: FamilyZimbraAjax, version: "8.8.15_ga_4652"},

		// Other Zimbra user agents.
		{name: "ZCO (format inferred)", xMailer: "Zimbra 9.0.0_GA_4258 (ZimbraConnectorForOutlook/9.0.0.1941)", family: FamilyZimbraOther, version: "9.0.0_GA_4258"},
		{name: "zclient-like name", xMailer: "Zimbra 8.8.15_GA_4545 (zclientx/1.0)", family: FamilyZimbraOther, version: "8.8.15_GA_4545"},
		{name: "Zimbra word without build", xMailer: "Zimbra Collaboration Suite 8.0", family: FamilyZimbraOther},
		{name: "Zimbra build then text", xMailer: "Zimbra 8.8.15_GA_4545 custom", family: FamilyZimbraOther, version: "8.8.15_GA_4545"},
		{name: "web client name alone", xMailer: "ZimbraWebClient - FF96 (Linux)/8.8.12_GA_3809", family: FamilyOther},

		// Webmail.
		{name: "roundcube 1.4.11", ua: "Roundcube Webmail/1.4.11", family: FamilyRoundcube, version: "1.4.11"},
		{name: "roundcube 0.7.2", ua: "Roundcube Webmail/0.7.2", family: FamilyRoundcube, version: "0.7.2"},
		{name: "roundcube no version", ua: "RoundCube WebMail", family: FamilyRoundcube},
		{name: "sogo 5.11.1", ua: "SOGoMail 5.11.1", family: FamilySOGo, version: "5.11.1"},
		{name: "sogo 4.3.0", ua: "SOGoMail 4.3.0", family: FamilySOGo, version: "4.3.0"},
		{name: "open-xchange 7", xMailer: "Open-Xchange Mailer v7.10.6-Rev45", family: FamilyOpenXchange, version: "7.10.6-Rev45"},
		{name: "open-xchange 8", xMailer: "Open-Xchange Mailer v8.18.48", family: FamilyOpenXchange, version: "8.18.48"},
		{name: "squirrelmail", ua: "SquirrelMail/1.4.22", family: FamilySquirrelMail, version: "1.4.22"},

		// Outlook.
		{name: "outlook 16", xMailer: "Microsoft Outlook 16.0", family: FamilyOutlook, version: "16.0"},
		{name: "outlook 16 build", xMailer: "Microsoft Outlook 16.0 (Build 13980)", family: FamilyOutlook, version: "16.0"},
		{name: "outlook 15", xMailer: "Microsoft Outlook 15.0", family: FamilyOutlook, version: "15.0"},
		{name: "office outlook build", xMailer: "Microsoft Office Outlook, Build 10.0.5610", family: FamilyOutlook, version: "10.0.5610"},
		{name: "office outlook 12 (code-index 3420999433)", xMailer: "Microsoft Office Outlook 12.0", family: FamilyOutlook, version: "12.0"},
		{name: "mac outlook 16", ua: "Microsoft-MacOutlook/16.39.20071300", family: FamilyOutlook, version: "16.39.20071300"},
		{name: "mac outlook 10", ua: "Microsoft-MacOutlook/10.22.0.200209", family: FamilyOutlook, version: "10.22.0.200209"},
		{name: "outlook express is not outlook", xMailer: "Microsoft Outlook Express 6.00.2600.0000", family: FamilyOther},
		{name: "forged Outlook/ with a Thunderbird version", xMailer: "Outlook/91.8.0", family: FamilyOther},
		{name: "office 365 tool", xMailer: "Microsoft Office 365", family: FamilyOther},

		// Thunderbird.
		{name: "thunderbird 115+", ua: "Mozilla Thunderbird", family: FamilyThunderbird},
		{name: "thunderbird 1.0", ua: "Mozilla Thunderbird 1.0.2 (X11/20050322)", family: FamilyThunderbird, version: "1.0.2"},
		{name: "thunderbird gecko", ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:102.0) Gecko/20100101 Thunderbird/102.15.1", family: FamilyThunderbird, version: "102.15.1"},
		// As folded in shared/data/phishing-pot-eml/eml/sample-2289.eml.
		{name: "thunderbird gecko folded", ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:102.0) Gecko/20100101\r\n Thunderbird/102.15.1", family: FamilyThunderbird, version: "102.15.1",
			client: "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:102.0) Gecko/20100101 Thunderbird/102.15.1"},
		{name: "thunderbird 2 (code-index 48888240500)", ua: "Thunderbird 2.0.0.6 (Macintosh/20070728)", family: FamilyThunderbird, version: "2.0.0.6"},
		{name: "icedove (code-index 38499827898)", ua: "Mozilla/5.0 (X11; Linux x86_64; rv:31.0) Gecko/20100101 Icedove/31.8.0", family: FamilyThunderbird, version: "31.8.0"},
		{name: "thunderbird string in X-Mailer (loadgen)", xMailer: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.5.0", family: FamilyThunderbird, version: "128.5.0"},
		{name: "browser user agent", ua: "Mozilla/5.0 (Windows NT 11.0; Win64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/94.0.4606.85 Safari/537.36", family: FamilyOther},

		// Apple.
		{name: "apple mail 2.1078", xMailer: "Apple Mail (2.1078)", family: FamilyAppleMail, version: "2.1078"},
		{name: "apple mail long build", xMailer: "Apple Mail (2.3774.300.61.1.2)", family: FamilyAppleMail, version: "2.3774.300.61.1.2"},
		{name: "iphone", xMailer: "iPhone Mail (17A5831c)", family: FamilyAppleMail, version: "17A5831c"},
		{name: "iphone 23A355", xMailer: "iPhone Mail (23A355)", family: FamilyAppleMail, version: "23A355"},
		{name: "ipad", xMailer: "iPad Mail (13E238)", family: FamilyAppleMail, version: "13E238"},

		// Evolution, K-9.
		{name: "evolution ubuntu", xMailer: "Evolution 3.28.5-0ubuntu0.18.04.2 ", family: FamilyEvolution, version: "3.28.5-0ubuntu0.18.04.2", client: "Evolution 3.28.5-0ubuntu0.18.04.2"},
		{name: "evolution 2", xMailer: "Evolution 2.0.2 (2.0.2-3) ", family: FamilyEvolution, version: "2.0.2", client: "Evolution 2.0.2 (2.0.2-3)"},
		{name: "evolution word alone", xMailer: "Evolution", family: FamilyOther},
		{name: "k9", ua: "K-9 Mail for Android", family: FamilyK9Mail},
		{name: "thunderbird for android (code-index 19145194316)", ua: "Thunderbird for Android", family: FamilyK9Mail},

		// PHPMailer.
		{name: "phpmailer 1.73", xMailer: "PHPMailer [version 1.73]", family: FamilyPHPMailer, version: "1.73"},
		{name: "phpmailer 6.9.3", xMailer: "PHPMailer 6.9.3 (https://github.com/PHPMailer/PHPMailer)", family: FamilyPHPMailer, version: "6.9.3"},
		{name: "phpmailer bare", xMailer: "PHPMailer 6.0.7", family: FamilyPHPMailer, version: "6.0.7"},
		{name: "leaf phpmailer", xMailer: "Leaf PHPMailer 2.7 (leafmailer.pw)", family: FamilyPHPMailer, version: "2.7"},

		// Present but unrecognised.
		{name: "digit", xMailer: "2", family: FamilyOther},
		{name: "random", xMailer: "0CTxq", family: FamilyOther},
		{name: "gmail word", xMailer: "Gmail", family: FamilyOther},
		{name: "php", xMailer: "PHP/8.3.23", family: FamilyOther},
		{name: "workmail", xMailer: "BLUELAGOON WorkMail", family: FamilyOther},

		// Absent.
		{name: "none", family: FamilyNone, noClient: true},
		{name: "white space only", xMailer: " \t", ua: "\r\n ", family: FamilyNone, noClient: true},
		{name: "control only", xMailer: "\x00\x1b", family: FamilyNone, noClient: true},

		// Odd input.
		{name: "control inside", xMailer: "Zim\x00bra 8.7.0_GA_1659", family: FamilyZimbraBare, version: "8.7.0_GA_1659", client: "Zimbra 8.7.0_GA_1659"},
		{name: "zero-width space", xMailer: "Zimbra\u200b 8.7.0_GA_1659", family: FamilyZimbraBare, version: "8.7.0_GA_1659", client: "Zimbra 8.7.0_GA_1659"},
		{name: "bidi override", xMailer: "\u202eZimbra 8.7.0_GA_1659", family: FamilyZimbraBare, version: "8.7.0_GA_1659", client: "Zimbra 8.7.0_GA_1659"},
		{name: "no-break space", xMailer: "Zimbra\u00a08.7.0_GA_1659", family: FamilyZimbraBare, version: "8.7.0_GA_1659", client: "Zimbra 8.7.0_GA_1659"},
		{name: "invalid UTF-8", xMailer: "\xff\xfe\x80Zimbra", family: FamilyOther, client: "\uFFFDZimbra"},
		{name: "Latin-1 byte inside", ua: "SOGoMail 5.11.1 \xe9", family: FamilySOGo, version: "5.11.1", client: "SOGoMail 5.11.1 \uFFFD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.xMailer, tt.ua)
			wantClient := tt.client
			if wantClient == "" && !tt.noClient {
				wantClient = tt.xMailer
				if wantClient == "" {
					wantClient = tt.ua
				}
			}
			want := Result{Family: tt.family, Client: wantClient, Version: tt.version}
			if got != want {
				t.Errorf("Classify(%q, %q)\n got %+v\nwant %+v", tt.xMailer, tt.ua, got, want)
			}
			// Every rule applies to either header.
			if tt.xMailer != "" && tt.ua == "" {
				if other := Classify("", tt.xMailer); other != got {
					t.Errorf("as User-Agent: got %+v, as X-Mailer %+v", other, got)
				}
			}
		})
	}
}

func TestClassifyPrecedence(t *testing.T) {
	const (
		zclient = "Zimbra 8.8.15_GA_4545 (zclient/8.8.15_GA_4545)"
		tb      = "Mozilla Thunderbird"
	)
	tests := []struct {
		name    string
		xMailer string
		ua      string
		want    Result
	}{
		{"Zimbra X-Mailer over a client User-Agent", zclient, tb,
			Result{FamilyZimbraHTML, zclient, "8.8.15_GA_4545"}},
		{"recognised X-Mailer over recognised User-Agent", "Microsoft Outlook 16.0", zclient,
			Result{FamilyOutlook, "Microsoft Outlook 16.0", "16.0"}},
		{"recognised User-Agent over junk X-Mailer", "2", tb,
			Result{FamilyThunderbird, tb, ""}},
		{"User-Agent when X-Mailer is only white space", " \r\n ", "Roundcube Webmail/1.6.0",
			Result{FamilyRoundcube, "Roundcube Webmail/1.6.0", "1.6.0"}},
		{"junk both: X-Mailer is the client", "0CTxq", "Custom Mailer v1.0",
			Result{FamilyOther, "0CTxq", ""}},
		{"junk User-Agent alone", "", "Custom Mailer v1.0",
			Result{FamilyOther, "Custom Mailer v1.0", ""}},
		{"junk User-Agent, control-only X-Mailer", "\x00", "Custom Mailer v1.0",
			Result{FamilyOther, "Custom Mailer v1.0", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.xMailer, tt.ua); got != tt.want {
				t.Errorf("Classify(%q, %q) = %+v, want %+v", tt.xMailer, tt.ua, got, tt.want)
			}
		})
	}
}

func TestClassifyBounds(t *testing.T) {
	const zclient = "Zimbra 8.8.15_GA_4545 (zclient/8.8.15_GA_4545)"
	tests := []struct {
		name    string
		in      string
		family  Family
		wantLen int
	}{
		{"1 MiB after a zclient value", zclient + " " + strings.Repeat("A", 1<<20), FamilyZimbraHTML, maxClient},
		{"1 MiB of white space around", strings.Repeat(" \r\n", 1<<18) + zclient + strings.Repeat("\t", 1<<18), FamilyZimbraHTML, len(zclient)},
		{"two-byte characters", strings.Repeat("é", 200), FamilyOther, 256},
		{"three-byte characters do not split", strings.Repeat("€", 100), FamilyOther, 255},
		{"space at the cut is dropped", strings.Repeat("x", 255) + " y", FamilyOther, 255},
		{"invalid bytes", strings.Repeat("\xff", 1000), FamilyOther, 3},
		{"alternating invalid bytes", strings.Repeat("\xffa", 1000), FamilyOther, 256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Classify(tt.in, "")
			if r.Family != tt.family || len(r.Client) != tt.wantLen || !utf8.ValidString(r.Client) {
				t.Errorf("got family %s, %d bytes (valid UTF-8 %v); want %s, %d bytes",
					r.Family, len(r.Client), utf8.ValidString(r.Client), tt.family, tt.wantLen)
			}
			if strings.HasSuffix(r.Client, " ") {
				t.Errorf("Client ends in a space: %q", r.Client)
			}
		})
	}
}

// TestClassifyAllocs checks the allocation budget the milter path relies on:
// none for a value that needs no cleaning, one otherwise.
func TestClassifyAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts: skipped in -short mode")
	}
	tests := []struct {
		name    string
		xMailer string
		ua      string
		want    float64
	}{
		{"clean Zimbra", "Zimbra 8.8.15_GA_4545 (zclient/8.8.15_GA_4545)", "", 0},
		{"clean User-Agent after junk X-Mailer", "2", "Roundcube Webmail/1.6.0", 0},
		{"clean other", "ActiveCampaign Mailer", "", 0},
		{"none", "", "", 0},
		{"folded", "Zimbra 8.8.15_GA_4545\r\n (zclient/8.8.15_GA_4545)", "", 1},
		{"dirty junk X-Mailer, dirty User-Agent", "a\x00b", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101\r\n Thunderbird/128.5.0", 1},
		{"dirty both unrecognised", "a\x00b", "c\x00d", 1},
		{"long", strings.Repeat("x", 4096), "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := testing.AllocsPerRun(100, func() { _ = Classify(tt.xMailer, tt.ua) })
			if got != tt.want {
				t.Errorf("Classify allocates %v times, want %v", got, tt.want)
			}
		})
	}
}

func TestFamilies(t *testing.T) {
	fams := Families()
	if len(fams) != len(families) {
		t.Fatalf("Families() has %d entries, want %d", len(fams), len(families))
	}
	seen := map[Family]bool{}
	for _, f := range fams {
		if seen[f] {
			t.Errorf("duplicate family %q", f)
		}
		seen[f] = true
		for _, c := range string(f) {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				t.Errorf("family %q is not kebab-case", f)
				break
			}
		}
		got, err := ParseFamily(string(f))
		if err != nil || got != f {
			t.Errorf("ParseFamily(%q) = %q, %v", f, got, err)
		}
	}
	for _, f := range []Family{FamilyZimbraHTML, FamilyZimbraAjax, FamilyZimbraModern, FamilyZimbraBare, FamilyZimbraOther,
		FamilyRoundcube, FamilySOGo, FamilyOutlook, FamilyThunderbird, FamilyAppleMail, FamilyOther, FamilyNone, FamilyUnknown} {
		if !seen[f] {
			t.Errorf("Families() lacks %q", f)
		}
	}
	// The caller owns the returned slice.
	fams[0] = "changed"
	if Families()[0] != FamilyZimbraHTML {
		t.Error("modifying the result of Families changed the next result")
	}
	for _, s := range []string{"", "Zimbra-HTML", " zimbra-html", "zclient", "zimbra"} {
		if f, err := ParseFamily(s); err == nil {
			t.Errorf("ParseFamily(%q) = %q, want an error", s, f)
		}
	}
	// Every rule's family is listed.
	for _, r := range rules {
		if r.refine == plain && !seen[r.family] {
			t.Errorf("rule %q has unlisted family %q", r.prefix, r.family)
		}
	}
	for _, c := range zimbraClients {
		if !seen[c.family] {
			t.Errorf("Zimbra client %q has unlisted family %q", c.prefix, c.family)
		}
	}
}

// TestSystem: a bare Zimbra X-Mailer is the mailbox server's own mail
// (out-of-office, reminders, send-later) when the relay added no
// X-Originating-IP, which it adds for every SOAP request with a client
// address (zm-mailbox MailSender.updateHeaders, commit 2b7f9787c69e).
func TestSystem(t *testing.T) {
	bare := Classify("Zimbra 10.0.6_GA_4638", "")
	if got := System(bare, false).Family; got != FamilyZimbraSystem {
		t.Errorf("bare without X-Originating-IP = %q, want zimbra-system", got)
	}
	if got := System(bare, true).Family; got != FamilyZimbraBare {
		t.Errorf("bare with X-Originating-IP = %q, want zimbra-bare", got)
	}
	html := Classify("Zimbra 10.0.6_GA_4638 (zclient/10.0.6_GA_4638)", "")
	if got := System(html, false).Family; got != FamilyZimbraHTML {
		t.Errorf("zclient without X-Originating-IP = %q, want zimbra-html", got)
	}
	if FamilyZimbraSystem.Scripted() {
		t.Error("zimbra-system is scripted")
	}
}

func TestScripted(t *testing.T) {
	for _, f := range Families() {
		want := f == FamilyZimbraHTML || f == FamilyZimbraBare
		if got := f.Scripted(); got != want {
			t.Errorf("%s.Scripted() = %v, want %v", f, got, want)
		}
	}
}

func TestRulePrefixes(t *testing.T) {
	// A rule whose prefix is not lower-case ASCII could never match, and a
	// rule shadowed by an earlier, shorter prefix would never run.
	for i, r := range rules {
		if r.prefix == "" || r.prefix != strings.ToLower(r.prefix) || !isASCII(r.prefix) {
			t.Errorf("rule %d: prefix %q must be non-empty lower-case ASCII", i, r.prefix)
		}
		for _, earlier := range rules[:i] {
			if strings.HasPrefix(r.prefix, earlier.prefix) && !boundaryStops(earlier.prefix, r.prefix) {
				t.Errorf("rule %q is shadowed by the earlier rule %q", r.prefix, earlier.prefix)
			}
		}
	}
}

// boundaryStops reports whether the word-boundary check keeps the shorter
// prefix from matching values that start with the longer one.
func boundaryStops(short, long string) bool {
	return isAlnum(short[len(short)-1]) && len(long) > len(short) && isAlnum(long[len(short)])
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
