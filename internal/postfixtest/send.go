package postfixtest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SendOptions describes one SMTP transaction for Send.
type SendOptions struct {
	// Server is the host:port to connect to. Default: SubmissionAddr when
	// AuthUser is set, else SMTPAddr.
	Server string
	// Helo is the EHLO name; default "client.postfixtest.example".
	Helo string
	// From is the envelope sender; default "sender@example.com".
	// NullSender ("<>") is the null sender.
	From string
	// To are the envelope recipients (one RCPT each); at least one.
	To []string
	// Headers set message header fields, replacing the defaults of the
	// same name (Date, From, To, Subject, Message-Id, X-Mailer); an empty
	// value removes a default. Ignored with Data.
	Headers map[string]string
	// Body is the message body; "\n" line ends are sent as CRLF. Ignored
	// with Data.
	Body string
	// Data is the whole message (header, blank line, body); it replaces
	// Headers and Body. Line ends are normalised to CRLF and leading dots
	// stuffed.
	Data string
	// AuthUser and AuthPassword make swaks authenticate before MAIL.
	AuthUser, AuthPassword string
	// AuthMechanism is the SASL mechanism; default PLAIN.
	AuthMechanism string
	// Timeout is swaks' per-reply timeout; default 30s.
	Timeout time.Duration
	// LocalAddr is the loopback address to connect from (swaks
	// --local-interface), e.g. "127.0.0.5" for a client that a test's
	// mailbrake does not trust while Postfix still relays for it; empty:
	// the system's choice (127.0.0.1).
	LocalAddr string
}

// NullSender as SendOptions.From sends MAIL FROM:<> (swaks' own spelling).
const NullSender = "<>"

// Stage is the SMTP command a reply answers.
type Stage string

// The stages of a transaction, in order.
const (
	StageConnect   Stage = "connect"     // the greeting
	StageEHLO      Stage = "ehlo"        // EHLO/HELO
	StageStartTLS  Stage = "starttls"    // STARTTLS
	StageAuth      Stage = "auth"        // AUTH, the final reply after any 334 rounds
	StageMail      Stage = "mail"        // MAIL FROM
	StageRcpt      Stage = "rcpt"        // RCPT TO, once per recipient
	StageData      Stage = "data"        // DATA (354 to go on)
	StageEndOfData Stage = "end-of-data" // the reply after the final "."
	StageQuit      Stage = "quit"        // QUIT
)

// Reply is one complete server reply; Text joins the lines of a multi-line
// reply with "\n", without the codes.
type Reply struct {
	Stage Stage
	Code  int
	Text  string
}

// SendResult is what Send saw.
type SendResult struct {
	// Transcript is swaks' output.
	Transcript string
	// ExitCode is swaks' exit status (0 success, 23 MAIL, 24 all RCPT,
	// 25 DATA, 26 end of data, 28 AUTH failed: swaks(1) EXIT CODES).
	ExitCode int
	// Replies are the server's replies in order. After a rejected command
	// swaks sends QUIT, so the QUIT reply is usually the last one.
	Replies []Reply
	// Codes holds the last reply code per stage; for StageRcpt the last
	// recipient's (see RcptCodes). A stage that was not reached is absent.
	Codes map[Stage]int
	// RcptCodes holds the RCPT reply codes in recipient order.
	RcptCodes []int
	// Accepted reports a 250 after the end of DATA.
	Accepted bool
	// QueueID is the id from the end-of-data "250 ... queued as ID".
	QueueID string
}

// Code returns the last reply code of stage, 0 if it was not reached.
func (r SendResult) Code(stage Stage) int { return r.Codes[stage] }

// Send runs one SMTP transaction with swaks and returns what happened. An
// SMTP rejection is a result, not a test failure; Send fails the test only
// when swaks cannot run, and skips it when swaks is not installed.
func (in *Instance) Send(t testing.TB, o SendOptions) SendResult {
	t.Helper()
	if _, err := os.Stat(swaksBin); err != nil {
		t.Skipf("postfixtest: %s not installed; run scripts/install-test-deps.sh", swaksBin)
	}
	if len(o.To) == 0 {
		t.Fatal("postfixtest: Send needs at least one recipient")
	}
	server := o.Server
	if server == "" {
		server = in.SMTPAddr
		if o.AuthUser != "" {
			if in.SubmissionAddr == "" {
				t.Fatal("postfixtest: Send with AuthUser needs Options.SASL")
			}
			server = in.SubmissionAddr
		}
	}
	args, data := swaksArgs(server, o)
	cmd := exec.Command(swaksBin, args...)
	cmd.Stdin = strings.NewReader(data)
	out, err := cmd.CombinedOutput()
	exit := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("postfixtest: running swaks: %v", err)
		}
		exit = ee.ExitCode()
	}
	r := ParseTranscript(string(out))
	r.ExitCode = exit
	if exit == 1 || exit == 10 {
		t.Fatalf("postfixtest: swaks usage error (exit %d):\n%s", exit, out)
	}
	return r
}

// swaksArgs returns the swaks command line and the DATA it reads on stdin.
// The message is built here and sent with --no-data-fixup: swaks' default
// message needs the local host's name, which it looks up (DNS), and its
// token and "\n" substitutions would alter test messages.
func swaksArgs(server string, o SendOptions) ([]string, string) {
	helo := o.Helo
	if helo == "" {
		helo = "client.postfixtest.example"
	}
	from := o.From
	if from == "" {
		from = "sender@example.com"
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	args := []string{
		"--server", server,
		"--helo", helo,
		"--from", from,
		"--to", strings.Join(o.To, ","),
		"--timeout", strconv.Itoa(max(1, int(timeout.Seconds()+0.5))) + "s",
		"--data", "-",
		"--no-data-fixup",
	}
	if o.LocalAddr != "" {
		args = append(args, "--local-interface", o.LocalAddr)
	}
	if o.AuthUser != "" {
		mech := o.AuthMechanism
		if mech == "" {
			mech = "PLAIN"
		}
		args = append(args, "--auth", mech, "--auth-user", o.AuthUser, "--auth-password", o.AuthPassword)
	}
	msg := o.Data
	if msg == "" {
		msg = buildMessage(from, o)
	}
	return args, smtpData(msg)
}

// buildMessage returns a small RFC 5322 message from the defaults and
// o.Headers, with o.Body.
func buildMessage(from string, o SendOptions) string {
	if from == NullSender {
		from = "mailer-daemon@example.com"
	}
	h := map[string]string{
		"Date":       time.Now().Format(time.RFC1123Z),
		"From":       from,
		"To":         strings.Join(o.To, ", "),
		"Subject":    "postfixtest",
		"Message-Id": fmt.Sprintf("<%d.postfixtest@client.postfixtest.example>", time.Now().UnixNano()),
		"X-Mailer":   "postfixtest",
	}
	names := map[string]string{} // canonical → as given
	for k := range h {
		names[strings.ToLower(k)] = k
	}
	for k, v := range o.Headers {
		if old, ok := names[strings.ToLower(k)]; ok {
			delete(h, old)
		}
		names[strings.ToLower(k)] = k
		if v != "" {
			h[k] = v
		}
	}
	order := []string{"Date", "From", "To", "Subject", "Message-Id"}
	seen := map[string]bool{}
	var b strings.Builder
	write := func(k string) {
		if v, ok := h[k]; ok && !seen[k] {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
			seen[k] = true
		}
	}
	for _, k := range order {
		write(names[strings.ToLower(k)])
	}
	rest := make([]string, 0, len(h))
	for k := range h {
		rest = append(rest, k)
	}
	sort.Strings(rest)
	for _, k := range rest {
		write(k)
	}
	body := o.Body
	if body == "" {
		body = "postfixtest message\n"
	}
	return b.String() + "\n" + body
}

// smtpData returns msg as the DATA stream for swaks --no-data-fixup: CRLF
// line ends, leading dots doubled (RFC 5321 4.5.2) and the final ".".
// swaks adds the CRLF after the dot itself.
func smtpData(msg string) string {
	msg = strings.ReplaceAll(msg, "\r\n", "\n")
	msg = strings.TrimSuffix(msg, "\n")
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") {
			lines[i] = "." + l
		}
	}
	return strings.Join(lines, "\r\n") + "\r\n."
}

var queuedAs = regexp.MustCompile(`queued as ([0-9A-Za-z]+)`)

// ParseTranscript reads a swaks transcript: client lines start " -> "
// (" ~> " under TLS), server lines "<-  " or "<** " for an error reply
// ("<~  ", "<~* " under TLS), swaks' own lines "===" or "***".
func ParseTranscript(transcript string) SendResult {
	r := SendResult{Transcript: transcript, Codes: map[Stage]int{}}
	stage := StageConnect
	inData := false
	var text []string
	sc := bufio.NewScanner(strings.NewReader(transcript))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if cmd, ok := cutAny(line, " -> ", " ~> "); ok {
			if inData {
				if cmd == "." {
					inData = false
					stage = StageEndOfData
				}
				continue
			}
			verb, _, _ := strings.Cut(cmd, " ")
			switch strings.ToUpper(verb) {
			case "EHLO", "HELO", "LHLO":
				stage = StageEHLO
			case "STARTTLS":
				stage = StageStartTLS
			case "AUTH":
				stage = StageAuth
			case "MAIL":
				stage = StageMail
			case "RCPT":
				stage = StageRcpt
			case "DATA":
				stage = StageData
			case "QUIT":
				stage = StageQuit
			}
			// Anything else is an AUTH continuation (base64), which
			// stays in StageAuth.
			continue
		}
		resp, ok := cutAny(line, "<-  ", "<** ", "<~  ", "<~* ")
		if !ok || len(resp) < 3 {
			continue
		}
		code, err := strconv.Atoi(resp[:3])
		if err != nil {
			continue
		}
		more := len(resp) > 3 && resp[3] == '-'
		if len(resp) > 4 {
			text = append(text, resp[4:])
		}
		if more {
			continue
		}
		reply := Reply{Stage: stage, Code: code, Text: strings.Join(text, "\n")}
		text = nil
		if stage == StageAuth && code == 334 {
			continue // a challenge, not the outcome
		}
		r.Replies = append(r.Replies, reply)
		r.Codes[stage] = code
		switch stage {
		case StageRcpt:
			r.RcptCodes = append(r.RcptCodes, code)
		case StageData:
			inData = code == 354
		case StageEndOfData:
			r.Accepted = code == 250
			if m := queuedAs.FindStringSubmatch(reply.Text); m != nil {
				r.QueueID = m[1]
			}
		}
	}
	return r
}

func cutAny(s string, prefixes ...string) (string, bool) {
	for _, p := range prefixes {
		if rest, ok := strings.CutPrefix(s, p); ok {
			return rest, true
		}
	}
	return "", false
}
