package e2e

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/ldaptest"
	"github.com/mailbrake/mailbrake/internal/postfixtest"
)

// Passwords of the test users; each is also the user's SASL password.
const (
	alicePW = "Al1ce-Secret!"
	bobPW   = "B0b#Passw0rd"
	carolPW = "Tr0ub4dor&3x"
	davePW  = "D4ve.Quiet9"
)

// carolCrypt is `openssl passwd -6 -salt saltsalt 'Tr0ub4dor&3x'`.
const carolCrypt = "{CRYPT}$6$saltsalt$HLKn1GMPph2DkPVDaALTgK/hvl.ivQs1Ht8fmR2/qPnPSdWS8ggtFOXOIkNWD6gLwsNW0QJ/2RpMx8CpGkNmi1"

func mime(headers, body string) string {
	return "From: <x@campus.example>\nTo: <verify@drop.example>\nMIME-Version: 1.0\n" + headers + "\n" + body
}

func qp(s string) string {
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.String()
}

// TestPasswordLeak: messages through the real Postfix that contain the
// sender's own password, checked against a real OpenLDAP's {SSHA},
// {SSHA512} and {CRYPT}$6$ hashes, are held with password-leak; the
// password is in no log line, stored row or API answer; near misses are
// delivered.
func TestPasswordLeak(t *testing.T) {
	ld := ldaptest.Start(t)
	ld.AddUser(t, "alice", "alice@campus.example", ldaptest.SSHA(alicePW))
	ld.AddUser(t, "bob", "bob@campus.example", ldaptest.SSHA512(bobPW))
	ld.AddUser(t, "carol", "carol@campus.example", carolCrypt)
	ld.AddUser(t, "dave", "dave@campus.example", ldaptest.SSHA512(davePW))
	pwFile := filepath.Join(t.TempDir(), "ldap.pw")
	if err := os.WriteFile(pwFile, []byte(ld.AdminPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	users := map[string]string{"alice@campus.example": alicePW, "bob@campus.example": bobPW, "carol@campus.example": carolPW, "dave@campus.example": davePW}
	// Findings only hold here: no playbook and no automatic escalation, so
	// each case is judged on its own.
	in, d := startPair(t, true, false, postfixtest.Options{SASL: true, Users: users}, fmt.Sprintf(
		"identity: {trusted_networks: [192.0.2.0/24]}\naccounts: {watch_score: 0, restrict_score: 0}\nplaybooks: []\n"+
			"directory: {ldap: {url: %q, bind_dn: %q, bind_password_file: %q, base_dn: %q, filter: \"(mail=%%s)\"}}\n",
		ld.URL, ld.AdminDN, pwFile, ld.BaseDN))

	attach := mime("Subject: the file\nContent-Type: multipart/mixed; boundary=XX\n",
		"--XX\nContent-Type: text/plain\n\nSee attached.\n--XX\nContent-Type: text/plain; name=notes.txt\nContent-Disposition: attachment; filename=notes.txt\n"+
			"Content-Transfer-Encoding: base64\n\n"+base64.StdEncoding.EncodeToString([]byte("webmail login\nuser bob\npass "+bobPW+"\n"))+"\n--XX--\n")
	cases := []struct {
		name, user, data string
		leak             bool
	}{
		{"plain text", "alice", mime("Subject: Re: verify\nContent-Type: text/plain\n", "Hello, my password is "+alicePW+"\nthanks\n"), true},
		{"base64 body", "alice", mime("Subject: Re: verify\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n",
			base64.StdEncoding.EncodeToString([]byte("Here it is: "+alicePW+"\n"))+"\n"), true},
		{"quoted-printable", "alice", mime("Subject: Re: verify\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n",
			qp(strings.Repeat("Déjà vu ", 9)+"password= "+alicePW+"\n")), true},
		{"followed by punctuation", "alice", mime("Subject: Re\nContent-Type: text/plain\n", "it is \""+alicePW+"\".\n"), true},
		{"html", "bob", mime("Subject: Re: verify\nContent-Type: text/html; charset=utf-8\n", "<html><body><p>password: <b>"+strings.ReplaceAll(bobPW, "#", "&#35;")+"</b></p></body></html>\n"), true},
		{"quoted reply", "bob", mime("Subject: Re: account\nContent-Type: text/plain\n", "done\n\nOn Monday IT wrote:\n> pw= "+bobPW+"\n> Please confirm.\n"), true},
		{"text attachment", "bob", attach, true},
		{"sha512-crypt", "carol", mime("Subject: Re\nContent-Type: text/plain\n", "mine: "+carolPW+"\n"), true},
		{"one character changed", "dave", mime("Subject: Re\nContent-Type: text/plain\n", "my password is "+davePW[:len(davePW)-1]+"8\n"), false},
		{"another user's password", "dave", mime("Subject: Re\nContent-Type: text/plain\n", "alice's is "+alicePW+"\n"), false},
		{"no text", "dave", mime("Subject: photo\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n", base64.StdEncoding.EncodeToString([]byte("\x89PNG\r\n\x1a\n"+davePW))+"\n"), false},
	}
	delivered := 0
	for _, c := range cases {
		acct := c.user + "@campus.example"
		r := in.Send(t, postfixtest.SendOptions{From: acct, To: []string{"verify@drop.example"}, AuthUser: acct, AuthPassword: users[acct], Data: c.data})
		if !r.Accepted {
			t.Fatalf("%s: not accepted: %s", c.name, r.Transcript)
		}
		if c.leak {
			in.WaitQueue(t, 10*time.Second, func(q []postfixtest.QueueEntry) bool { return inQueue(q, r.QueueID) == "hold" })
			h := d.waitHold(r.QueueID)
			if !strings.Contains(strings.Join(h.Reasons, ","), "password-leak") || h.Account != acct {
				t.Errorf("%s: hold %+v", c.name, h)
			}
		} else {
			delivered++
			in.Sink.WaitMessages(t, delivered, 20*time.Second)
			if inQueue(in.Queue(t), r.QueueID) == "hold" {
				t.Errorf("%s: held", c.name)
			}
		}
	}

	// The passwords are nowhere: logs, API answers, the database.
	var api strings.Builder
	api.WriteString(d.mustCLI("quarantine", "list", "--json"))
	for _, h := range d.holds() {
		api.WriteString(d.mustCLI("quarantine", "show", fmt.Sprint(h.ID), "--json"))
	}
	api.WriteString(d.mustCLI("account", "show", "alice@campus.example", "--json"))
	api.WriteString(d.mustCLI("quarantine", "audit", "--json"))
	var db []byte
	for _, f := range []string{"mailbrake.db", "mailbrake.db-wal"} {
		b, _ := os.ReadFile(filepath.Join(d.dataDir, f))
		db = append(db, b...)
	}
	for _, pw := range []string{alicePW, bobPW, carolPW} {
		if strings.Contains(d.log.String(), pw) {
			t.Errorf("password %q… in the daemon log", pw[:3])
		}
		if strings.Contains(api.String(), pw) {
			t.Errorf("password %q… in an API answer", pw[:3])
		}
		if bytes.Contains(db, []byte(pw)) {
			t.Errorf("password %q… in the database", pw[:3])
		}
	}
	if !strings.Contains(api.String(), "••••••••") {
		t.Error("no masked preview in the API answers")
	}
}
