package fingerprint

import (
	"fmt"
	"strings"
)

// Family is a mail client family. Its values are stable kebab-case strings:
// they appear in configuration, logs, metric labels and the API.
type Family string

// The families, in the order Families returns them.
const (
	// FamilyZimbraHTML is "Zimbra <ver> (zclient/<ver>)": Zimbra's Standard
	// HTML client, the old mobile HTML client and any ZMailbox-based script.
	FamilyZimbraHTML Family = "zimbra-html"
	// FamilyZimbraAjax is "Zimbra <ver> (ZimbraWebClient - …)", the AJAX
	// ("Advanced") web client.
	FamilyZimbraAjax Family = "zimbra-ajax"
	// FamilyZimbraModern is "Zimbra <ver> (ZimbraXWebClient - …)", the Modern
	// UI of Zimbra 9 and later, and its ZimbraXDesktopClient build.
	FamilyZimbraModern Family = "zimbra-modern"
	// FamilyZimbraBare is "Zimbra <ver>" with no client part on a message
	// that carries the relay's X-Originating-IP: a SOAP request that named
	// no user agent, as raw SOAP scripts send.
	FamilyZimbraBare Family = "zimbra-bare"
	// FamilyZimbraSystem is "Zimbra <ver>" with no client part and no
	// X-Originating-IP: mail the mailbox server sends on its own, outside
	// any client request — out-of-office and sieve replies, calendar
	// reminders, resource auto-replies, scheduled ("send later") messages.
	// MailSender adds X-Originating-IP only when the request has a client
	// address (zm-mailbox store/src/java/com/zimbra/cs/mailbox/
	// MailSender.java updateHeaders, commit 2b7f9787c69e), and a SOAP
	// request always has one. Not scripted. See System.
	FamilyZimbraSystem Family = "zimbra-system"
	// FamilyZimbraOther is any other Zimbra X-Mailer, such as
	// "Zimbra <ver> (ZimbraConnectorForOutlook/…)".
	FamilyZimbraOther Family = "zimbra-other"
	// FamilyRoundcube is Roundcube Webmail ("Roundcube Webmail/<ver>").
	FamilyRoundcube Family = "roundcube"
	// FamilySOGo is SOGo's webmail ("SOGoMail <ver>").
	FamilySOGo Family = "sogo"
	// FamilyOpenXchange is the Open-Xchange webmail
	// ("Open-Xchange Mailer v<ver>").
	FamilyOpenXchange Family = "open-xchange"
	// FamilySquirrelMail is SquirrelMail ("SquirrelMail/<ver>").
	FamilySquirrelMail Family = "squirrelmail"
	// FamilyOutlook is desktop Outlook for Windows ("Microsoft Outlook 16.0",
	// "Microsoft Office Outlook 12.0") and for Mac
	// ("Microsoft-MacOutlook/<ver>"); not Outlook Express.
	FamilyOutlook Family = "outlook"
	// FamilyThunderbird is Mozilla Thunderbird on the desktop ("Mozilla
	// Thunderbird", or a Gecko user agent string naming Thunderbird/<ver>).
	FamilyThunderbird Family = "thunderbird"
	// FamilyAppleMail is Mail on macOS ("Apple Mail (2.<build>)") and on
	// iPhone and iPad ("iPhone Mail (<build>)", "iPad Mail (<build>)").
	FamilyAppleMail Family = "apple-mail"
	// FamilyEvolution is GNOME Evolution ("Evolution <ver>").
	FamilyEvolution Family = "evolution"
	// FamilyK9Mail is K-9 Mail for Android and its successor, Thunderbird
	// for Android.
	FamilyK9Mail Family = "k9-mail"
	// FamilyPHPMailer is the PHPMailer library ("PHPMailer <ver> (…)",
	// "PHPMailer [version <ver>]") and mass-mailers built on it: a script,
	// not a person at a mail client.
	FamilyPHPMailer Family = "phpmailer"
	// FamilyOther is a header that is present but not recognised.
	FamilyOther Family = "other"
	// FamilyNone is a message with neither header (or only empty ones).
	FamilyNone Family = "none"
	// FamilyUnknown means the headers could not be seen on this path: the
	// Postfix policy protocol carries no headers. Classify never returns it;
	// callers that cannot see the headers set it themselves.
	FamilyUnknown Family = "unknown"
)

// families is every Family in a stable order: Zimbra first, then the other
// webmails, desktop and mobile clients, scripts, and the catch-alls.
var families = [...]Family{
	FamilyZimbraHTML,
	FamilyZimbraAjax,
	FamilyZimbraModern,
	FamilyZimbraBare,
	FamilyZimbraSystem,
	FamilyZimbraOther,
	FamilyRoundcube,
	FamilySOGo,
	FamilyOpenXchange,
	FamilySquirrelMail,
	FamilyOutlook,
	FamilyThunderbird,
	FamilyAppleMail,
	FamilyEvolution,
	FamilyK9Mail,
	FamilyPHPMailer,
	FamilyOther,
	FamilyNone,
	FamilyUnknown,
}

// Families returns every Family in a stable order, for configuration
// validation and metric labels. The caller may modify the slice.
func Families() []Family {
	out := make([]Family, len(families))
	copy(out, families[:])
	return out
}

// ParseFamily returns the Family whose value is s exactly.
func ParseFamily(s string) (Family, error) {
	for _, f := range families {
		if string(f) == s {
			return f, nil
		}
	}
	names := make([]string, len(families))
	for i, f := range families {
		names[i] = string(f)
	}
	return "", fmt.Errorf("unknown client family %q (known: %s)", s, strings.Join(names, ", "))
}

// Scripted reports whether f is one of the families the default hold rule
// targets: zimbra-html (the Standard HTML client, through which spam runs
// from phished Zimbra accounts are scripted, and ZMailbox scripts) and
// zimbra-bare (SOAP requests that name no client at all). Zimbra's own
// mail (zimbra-system) is not scripted.
func (f Family) Scripted() bool {
	return f == FamilyZimbraHTML || f == FamilyZimbraBare
}

// System refines a Classify result with what the relay added beside its
// X-Mailer: a bare "Zimbra <ver>" X-Mailer on a message without
// X-Originating-IP is the mailbox server's own mail (FamilyZimbraSystem),
// not a SOAP script. originatingIP says whether the message carries an
// X-Originating-IP header. Sites that turned zimbraSmtpSendAddOriginatingIP
// off (default TRUE) lose the distinction: every bare X-Mailer is then
// system mail.
func System(r Result, originatingIP bool) Result {
	if r.Family == FamilyZimbraBare && !originatingIP {
		r.Family = FamilyZimbraSystem
	}
	return r
}
