package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/dovecottest"
	"github.com/mailbrake/mailbrake/internal/ldaptest"
	"github.com/mailbrake/mailbrake/internal/postfixtest"
	"github.com/mailbrake/mailbrake/internal/store"
)

// TestPasswordLeakContainment: a message with the sender's password goes
// through the real Postfix; mailbrake holds it, opens an incident and runs
// the password-leak playbook at once against a real OpenLDAP (lock,
// Password Modify) and a real Dovecot (passwd-file lock and new password,
// doveadm auth cache flush and kick). Afterwards the old password binds
// and authenticates nowhere, the IMAP session logged in before is gone,
// and the lock is lifted only once the password has changed.
func TestPasswordLeakContainment(t *testing.T) {
	const acct, pw = "alice@campus.example", "Al1ce-Secret!"
	ld := ldaptest.Start(t)
	dn := ld.AddUser(t, "alice", acct, ldaptest.SSHA(pw))
	// A password change before the test, so ppolicy keeps pwdChangedTime.
	ld.SetAttr(t, dn, "pwdChangedTime", "20200101000000Z")
	// A second address outside the compromised mailbox, for the user mail.
	ld.SetAttr(t, dn, "mail", acct, "alice.home@home.example")
	dv := dovecottest.Start(t, dovecottest.Options{Users: []dovecottest.User{{Name: acct, Password: pw}}})
	dir := t.TempDir()
	ldapPW := filepath.Join(dir, "ldap.pw")
	if err := os.WriteFile(ldapPW, []byte(ld.AdminPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	imap, err := dv.Login(acct, pw)
	if err != nil {
		t.Fatalf("IMAP login before the leak: %v", err)
	}
	defer imap.Close()

	helpdesk := postfixtest.StartSink(t)
	in, d := startPair(t, true, false, postfixtest.Options{SASL: true, Users: map[string]string{acct: pw}}, fmt.Sprintf(`identity: {trusted_networks: [192.0.2.0/24]}
notify:
  smtp: {addr: %q, from: mailbrake@campus.example, starttls: none}
  helpdesk: [helpdesk@campus.example]
  notify_user: true
directory:
  ldap: {url: %q, bind_dn: %q, bind_password_file: %q, base_dn: %q, filter: "(mail=%%s)", recovery_address_attribute: mail}
  passwd_file: {path: %q}
password_leak: {sources: [ldap]}
response:
  min_lock: 0s
  use_ldap: true
  use_passwd_file: true
  dovecot: {url: %q, api_key_file: %q}
`, helpdesk.Addr, ld.URL, ld.AdminDN, ldapPW, ld.BaseDN, dv.PasswdFile, dv.DoveadmURL, dv.APIKeyFile))

	r := in.Send(t, postfixtest.SendOptions{From: acct, To: []string{"verify@drop.example"}, AuthUser: acct, AuthPassword: pw,
		Headers: map[string]string{"Subject": "Re: mailbox verification"}, Body: "username: alice\npassword: " + pw + "\n"})
	if !r.Accepted {
		t.Fatalf("not accepted: %s", r.Transcript)
	}
	hold := d.waitHold(r.QueueID)
	if !strings.Contains(strings.Join(hold.Reasons, ","), "password-leak") {
		t.Fatalf("hold: %+v", hold)
	}
	var inc store.Incident
	deadline := time.Now().Add(30 * time.Second)
	for {
		var list []store.Incident
		if err := json.Unmarshal([]byte(d.mustCLI("incident", "list", "--state", "all", "--json")), &list); err != nil {
			t.Fatal(err)
		}
		if len(list) == 1 && list[0].State == store.IncidentContained {
			inc = list[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("incident not contained: %+v", list)
		}
		time.Sleep(50 * time.Millisecond)
	}
	last := time.Time{}
	// Neither LDAP nor Dovecot keeps forwarding rules: that step has no
	// connector here.
	noConnector := map[string]bool{"check-persistence": true}
	for _, s := range inc.Steps {
		t.Logf("  %-22s %-8s +%-6s %s", s.Name, s.Status, s.At.Sub(hold.HeldAt).Round(time.Millisecond), s.Detail)
		if s.Status != store.StepDone && !(noConnector[s.Name] && s.Status == store.StepSkipped) {
			t.Errorf("step %s: %s %s", s.Name, s.Status, s.Detail)
		}
		if s.At.After(last) {
			last = s.At
		}
	}
	t.Logf("from hold to the last step done: %s (%d steps: %s)", last.Sub(hold.HeldAt).Round(time.Millisecond), len(inc.Steps), stepNames(inc))
	if inc.Account != acct || inc.Severity != store.SeverityCritical || inc.Playbook != "contain-password-leak" || inc.Evidence[0].HoldID != hold.ID {
		t.Fatalf("incident: %+v", inc)
	}

	// The help desk got the notification: account, reasons, steps.
	notes := helpdesk.WaitMessages(t, 2, 20*time.Second)
	var note, userNote string
	for _, m := range notes {
		switch m.Recipients[0] {
		case "helpdesk@campus.example":
			note = string(m.Data)
		case "alice.home@home.example":
			userNote = string(m.Data)
		default:
			t.Errorf("notification to %v", m.Recipients)
		}
	}
	if userNote == "" || strings.Contains(userNote, pw) {
		t.Errorf("no mail to the user's recovery address, or it holds the password")
	}
	for _, want := range []string{acct, "password-leak", "lock-login", "scramble-password", "end-sessions", "done"} {
		if !strings.Contains(note, want) {
			t.Errorf("help-desk notification lacks %q:\n%s", want, note)
		}
	}
	if strings.Contains(note, pw) || strings.Contains(d.log.String(), pw) {
		t.Error("the leaked password is in the notification or the log")
	}

	// The old password works nowhere; the IMAP session is gone.
	if err := ld.Bind(dn, pw); err == nil {
		t.Error("the old password still binds to LDAP")
	}
	if ok, out, _ := dv.AuthTest(acct, pw); ok {
		t.Errorf("the old password still authenticates to Dovecot: %s", out)
	}
	if err := imap.WaitDisconnected(5 * time.Second); !errors.Is(err, dovecottest.ErrDisconnected) {
		t.Errorf("IMAP session not ended: %v", err)
	}
	if e := ld.Entry(t, dn); len(e["pwdAccountLockedTime"]) == 0 || strings.Join(e["pwdReset"], "") != "TRUE" {
		t.Errorf("LDAP lock attribute or pwdReset not set: %v", e)
	}
	// Unlock is refused: the password is still the scrambled one.
	if _, err := d.cli("account", "unlock", acct); err == nil || !strings.Contains(err.Error(), "has not changed") {
		t.Fatalf("unlock with the scrambled password: %v", err)
	}
	// The help desk sets a new password with the user.
	const newPW = "N3w-Alice-Pw!"
	ld.SetAttr(t, dn, "userPassword", ldaptest.SSHA(newPW))
	ld.SetAttr(t, dn, "pwdChangedTime", time.Now().UTC().Add(time.Second).Format("20060102150405Z"))
	d.mustCLI("account", "unlock", acct, "--reason", "user called the help desk")
	if err := ld.Bind(dn, newPW); err != nil {
		t.Errorf("the new password does not bind after unlock: %v", err)
	}
	if e := ld.Entry(t, dn); len(e["pwdAccountLockedTime"]) != 0 {
		t.Errorf("LDAP lock attribute still set after unlock")
	}
	if show := d.mustCLI("account", "show", acct); !strings.Contains(show, "normal") {
		t.Errorf("account after unlock:\n%s", show)
	}

	// Resolving the incident tells the help desk too, in the same thread
	// (issue 14: nobody heard of the incident again).
	d.mustCLI("incident", "resolve", fmt.Sprint(inc.ID), "--note", "user called, password changed")
	// Stopped at once: the stop waits for the help desk's mail.
	d.stop()
	var resolved string
	for _, m := range helpdesk.WaitMessages(t, 3, 20*time.Second) {
		if m.Recipients[0] == "helpdesk@campus.example" && strings.Contains(string(m.Data), "was resolved") {
			resolved = string(m.Data)
		}
	}
	thread := regexp.MustCompile(`(?m)^In-Reply-To: (<mailbrake-incident-[^>]+>)`)
	first, end := thread.FindStringSubmatch(note), thread.FindStringSubmatch(resolved)
	if resolved == "" || first == nil || end == nil || first[1] != end[1] {
		t.Errorf("no resolution notice in the incident's thread:\nfirst:\n%s\nresolved:\n%s", note, resolved)
	}
}

func stepNames(in store.Incident) string {
	var s []string
	for _, st := range in.Steps {
		s = append(s, st.Name)
	}
	return strings.Join(s, ",")
}
