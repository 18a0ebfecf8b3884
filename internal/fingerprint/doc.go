// Package fingerprint names the mail client that submitted a message from
// its X-Mailer and User-Agent header values: Classify returns a Family (a
// stable kebab-case value used in rules, logs and metric labels), the header
// value it used, cleaned and bounded, and the client version when one can be
// read. It does not read messages or decide anything: the milter adapter
// hands it the two header values, and the engine's rules test the family.
//
// # Zimbra
//
// Zimbra's mailbox server, not the client, writes the X-Mailer of every
// message sent through it with SOAP SendMsg (Zimbra/zm-mailbox commit
// 2b7f9787c69ed6b95ce37a415ba27c50f1091c72, MailSender.updateHeaders, while
// zimbraSmtpSendAddMailer is TRUE): "Zimbra <server build>", followed by
// " (<SOAP user agent name>/<version>)" when the request named a user agent.
// That parenthesis tells the clients apart:
//
//   - "(zclient/<build>)", FamilyZimbraHTML: the Standard HTML client and the
//     old mobile HTML client. Their JSP tag library (Zimbra/zm-taglib commit
//     e927f2e36eaed7e1dbaa1efed0fc68ec07feb6d6, ZJspSession) builds a
//     ZMailbox without a user agent, so ZMailbox falls back to "zclient"
//     (zm-mailbox client/src/java/com/zimbra/client/ZMailbox.java); every
//     ZMailbox-based script writes the same. Spam runs from phished
//     accounts are scripted through this client.
//   - "(ZimbraWebClient - FF96 (Linux)/<build>)", FamilyZimbraAjax: the AJAX
//     ("Advanced") web client (Zimbra/zm-ajax commit
//     abe1d2fc08a4140ae7e57033a322b44481395f32, ZmCsfeCommand.js).
//   - "(ZimbraXWebClient - GC120 (Win)/<build>)" and
//     "(ZimbraXDesktopClient - (<OS>)/<build>)", FamilyZimbraModern: the
//     Modern UI of 9.x and later and its desktop build.
//   - no parenthesis, FamilyZimbraBare: a SOAP request without a user agent,
//     as raw SOAP scripts send (seen only in phishing mail); with no
//     X-Originating-IP beside it, FamilyZimbraSystem: the server's own mail
//     (out-of-office, reminders, send-later).
//   - any other name, FamilyZimbraOther: the Zimbra Connector for Outlook
//     ("ZimbraConnectorForOutlook/…"), migration tools, custom scripts.
//
// Mail submitted to Zimbra by SMTP (Thunderbird, Outlook, phones) or
// ActiveSync gets no Zimbra X-Mailer; the client's own header is kept and
// classified as that client. Result.Version of a Zimbra family is the server
// build (the first version), not the web client's build after the slash.
// These facts, and the real header values the tests use, are summarised in
// shared/data/mua-header-fingerprints/SOURCE.md.
//
// # Which header wins
//
// Zimbra, Outlook for Windows, Apple Mail, Evolution and PHPMailer write
// X-Mailer; Thunderbird, Roundcube, SOGo, Outlook for Mac and K-9 Mail write
// User-Agent (shared/data/mua-header-fingerprints/headers.csv); none of the
// 3,927 phishing_pot messages indexed in shared/data/phishing-pot-eml carries
// both. Every rule applies to either header, so a client's string is
// recognised whichever header carries it. When both are present the first
// one whose value is recognised wins, X-Mailer first, because a Zimbra
// X-Mailer is written by the server after the client composed the message
// and so says more about the submission path than anything the client
// wrote. When neither is recognised the family is FamilyOther and Client is
// the X-Mailer value (the User-Agent value when there is no X-Mailer).
//
// # Which copy
//
// MailSender writes its X-Mailer with addHeader, which ZInternetHeaders
// places right after the last copy already in the message (zm-mailbox
// common/src/java/com/zimbra/common/zmime/ZInternetHeaders.java, commit
// 2b7f9787c69e), and a SOAP client can upload a raw message with copies of
// its own (SendMsg <m aid=…>): a scripted run can carry a forged
// "Zimbra … (ZimbraWebClient …)" first and the relay's "(zclient/…)" last.
// The caller passes the last copy, the relay's, which decides the family;
// an earlier copy that names another family is evidence that a client wrote
// it (engine reason client-header-mismatch), never the decision. A bare
// "Zimbra <ver>" without the relay's X-Originating-IP is the server's own
// mail (System, FamilyZimbraSystem).
//
// # Robustness
//
// Values are unfolded (CR, LF and tabs count as spaces), runs of white space
// collapse to one space, control and invisible formatting characters are
// dropped, invalid UTF-8 becomes U+FFFD, and the result is cut at 256 bytes:
// reading stops there, so a long header costs no more than a short one
// (only a long run of characters that are dropped is read through), and the
// value is safe to log and display. Matching is ASCII case-insensitive.
// Classify does not allocate when the value needs no cleaning (Client is
// then a substring of the argument) and allocates once otherwise.
package fingerprint
