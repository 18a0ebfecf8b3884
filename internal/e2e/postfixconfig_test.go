package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/postfixtest"
)

// TestPostfixConfigOnRealPostfix applies `mailbrake postfix-config` to a
// real Postfix the way its output says (run the script as root), on a site
// that already has a milter of its own (dead, with the site's
// milter_default_action = accept), recipient restrictions, and a content
// filter whose re-injection service turns milters off (FILTER_README's
// receive_override_options). Then: `postfix check` passes, smtpd serves,
// a scripted bulk message is held and an ordinary one delivered, the
// policy service is asked at RCPT and END-OF-MESSAGE, the re-injected pass
// reaches mailbrake's milter and is only learned from, and a second run of
// the script changes nothing. With mailbrake stopped, --on-failure
// tempfail answers 4xx and --on-failure accept lets mail through.
func TestPostfixConfigOnRealPostfix(t *testing.T) {
	for _, mode := range []string{"tempfail", "accept"} {
		t.Run(mode, func(t *testing.T) { postfixConfigOnRealPostfix(t, mode) })
	}
}

func postfixConfigOnRealPostfix(t *testing.T, onFailure string) {
	siteMilter := freeAddr(t) // nothing listens there
	in := postfixtest.Start(t, postfixtest.Options{
		ContentFilter: true,
		ReinjectOptions: []string{"-o content_filter=", "-o smtpd_recipient_restrictions=permit_mynetworks,reject",
			"-o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,no_milters"},
		ExtraMainCF: map[string]string{
			"smtpd_milters":                "inet:" + siteMilter,
			"milter_default_action":        "accept",
			"smtpd_recipient_restrictions": "permit_mynetworks, reject_unauth_destination",
		},
	})
	mAddr, pAddr := freeAddr(t), freeAddr(t)
	d := startDaemon(t, daemonOptions{Milter: mAddr, Policy: pAddr, PostfixConfigDir: in.ConfigDir, ReinjectionListeners: []string{in.ReinjectAddr}})

	script, err := exec.Command(binary, "postfix-config", "--config", d.config, "--postfix-dir", in.ConfigDir, "--on-failure", onFailure).Output()
	if err != nil {
		t.Fatalf("postfix-config: %v", err)
	}
	path := filepath.Join(t.TempDir(), "wire-mailbrake.sh")
	if err := os.WriteFile(path, script, 0o600); err != nil {
		t.Fatal(err)
	}
	runScript := func() {
		t.Helper()
		before := strings.Count(in.MailLog(), "]: reload -- version")
		out, err := exec.Command("sh", path).CombinedOutput()
		if err != nil {
			t.Fatalf("running the postfix-config script: %v\n%s\nscript:\n%s", err, out, script)
		}
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(in.MailLog(), "]: reload -- version") <= before {
			if time.Now().After(deadline) {
				t.Fatalf("no reload after the script:\n%s", tailLines(in.MailLog(), 20))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	runScript()
	mainCF, _ := os.ReadFile(filepath.Join(in.ConfigDir, "main.cf"))
	masterCF, _ := os.ReadFile(filepath.Join(in.ConfigDir, "master.cf"))
	if !strings.Contains(string(mainCF), "inet:"+siteMilter) || !strings.Contains(string(mainCF), "permit_mynetworks, reject_unauth_destination") {
		t.Fatalf("the site's own milter or restrictions are gone:\n%s", mainCF)
	}
	if strings.Contains(string(masterCF), "no_milters") || !strings.Contains(string(masterCF), "smtpd_milters=inet:"+mAddr) {
		t.Fatalf("the re-injection service was not given mailbrake's milter:\n%s", masterCF)
	}
	in.Run(t, "postfix", "check")

	// smtpd serves, with both paths.
	bulk := in.Send(t, postfixtest.SendOptions{From: "alice@campus.example", To: recipients(60, "dest.example"),
		Headers: map[string]string{"X-Mailer": zclient, "Subject": "wired bulk"}, Body: "Dear friend.\n"})
	if !bulk.Accepted {
		t.Fatalf("bulk not accepted: %s\n%s", bulk.Transcript, tailLines(in.MailLog(), 20))
	}
	d.waitHold(bulk.QueueID)
	ok := in.Send(t, postfixtest.SendOptions{From: "bob@campus.example", To: recipients(2, "dest.example"),
		Headers: map[string]string{"X-Mailer": ajax, "Subject": "wired ordinary"}, Body: "Lunch?\n"})
	if !ok.Accepted {
		t.Fatalf("ordinary message not accepted: %s", ok.Transcript)
	}
	in.Sink.WaitRecipients(t, 2, 30*time.Second)
	if n := len(bySubject(t, in.Sink, "wired bulk")); n != 0 {
		t.Fatalf("the held message was delivered %d times", n)
	}
	if ready := d.httpGet("/readyz"); !strings.Contains(ready, "rcpt+eom") {
		t.Errorf("/readyz does not show the policy service asked at RCPT and END-OF-MESSAGE:\n%s", ready)
	}
	if !strings.Contains(d.log.String(), "re-injected message") {
		t.Errorf("the re-injected pass did not reach mailbrake's milter")
	}

	// A second run changes nothing.
	runScript()
	mainCF2, _ := os.ReadFile(filepath.Join(in.ConfigDir, "main.cf"))
	masterCF2, _ := os.ReadFile(filepath.Join(in.ConfigDir, "master.cf"))
	if string(mainCF2) != string(mainCF) || string(masterCF2) != string(masterCF) {
		t.Errorf("a second run changed the configuration:\nmain.cf before:\n%s\nafter:\n%s\nmaster.cf before:\n%s\nafter:\n%s", mainCF, mainCF2, masterCF, masterCF2)
	}

	// mailbrake down.
	d.stop()
	down := in.Send(t, postfixtest.SendOptions{From: "carol@campus.example", To: recipients(1, "dest.example"),
		Headers: map[string]string{"Subject": "while down"}, Body: "Hi.\n"})
	switch onFailure {
	case "tempfail":
		if down.Accepted || (down.Code(postfixtest.StageMail)/100 != 4 && down.Code(postfixtest.StageRcpt)/100 != 4 && down.Code(postfixtest.StageEndOfData)/100 != 4) {
			t.Fatalf("tempfail with mailbrake down: %+v\n%s", down.Codes, down.Transcript)
		}
	case "accept":
		if !down.Accepted {
			t.Fatalf("accept with mailbrake down: not accepted: %s", down.Transcript)
		}
		in.Sink.WaitRecipients(t, 3, 30*time.Second)
	}
}

// TestPostfixSubmissionWiringOnRealPostfix: `postfix-config --wiring
// submission` wires only the service clients log in to (issue 14: a 451
// default in front of all inbound mail defers the whole site's inbound
// mail while mailbrake is down). On a real Postfix: postfix check passes,
// a bulk message submitted with SMTP AUTH is held, a second run changes
// nothing, and with mailbrake stopped the submission service answers 4xx
// while port 25 still accepts mail.
func TestPostfixSubmissionWiringOnRealPostfix(t *testing.T) {
	in := postfixtest.Start(t, postfixtest.Options{SASL: true, Users: map[string]string{"alice@campus.example": "wonderland-7"}})
	mAddr, pAddr := freeAddr(t), freeAddr(t)
	d := startDaemon(t, daemonOptions{Milter: mAddr, Policy: pAddr, PostfixConfigDir: in.ConfigDir})
	service := in.SubmissionAddr + "/inet"
	script, err := exec.Command(binary, "postfix-config", "--config", d.config, "--postfix-dir", in.ConfigDir,
		"--wiring", "submission", "--services", service).Output()
	if err != nil {
		t.Fatalf("postfix-config: %v", err)
	}
	if !strings.Contains(string(script), "Port 25, inbound mail") {
		t.Errorf("the script does not say what --on-failure means for this wiring:\n%s", script)
	}
	path := filepath.Join(t.TempDir(), "wire-mailbrake.sh")
	if err := os.WriteFile(path, script, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() {
		t.Helper()
		before := strings.Count(in.MailLog(), "]: reload -- version")
		if out, err := exec.Command("sh", path).CombinedOutput(); err != nil {
			t.Fatalf("running the script: %v\n%s", err, out)
		}
		for deadline := time.Now().Add(10 * time.Second); strings.Count(in.MailLog(), "]: reload -- version") <= before; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no reload after the script:\n%s", tailLines(in.MailLog(), 20))
			}
		}
	}
	run()
	in.Run(t, "postfix", "check")
	mainCF, _ := os.ReadFile(filepath.Join(in.ConfigDir, "main.cf"))
	masterCF, _ := os.ReadFile(filepath.Join(in.ConfigDir, "master.cf"))
	for _, param := range []string{"smtpd_milters", "smtpd_recipient_restrictions", "smtpd_end_of_data_restrictions"} {
		out, err := exec.Command("postconf", "-c", in.ConfigDir, "-h", param).Output()
		if err != nil || strings.Contains(string(out), mAddr) || strings.Contains(string(out), pAddr) {
			t.Fatalf("main.cf's %s, which port 25 uses, was wired: %q %v", param, out, err)
		}
	}
	if !strings.Contains(string(masterCF), "smtpd_milters=$mailbrake_") {
		t.Fatalf("the submission service was not wired:\n%s", masterCF)
	}

	bulk := in.Send(t, postfixtest.SendOptions{From: "alice@campus.example", AuthUser: "alice@campus.example", AuthPassword: "wonderland-7",
		To: recipients(60, "dest.example"), Headers: map[string]string{"X-Mailer": zclient, "Subject": "submitted bulk"}, Body: "Dear friend.\n"})
	if !bulk.Accepted {
		t.Fatalf("submitted bulk not accepted: %s\n%s", bulk.Transcript, tailLines(in.MailLog(), 20))
	}
	if h := d.waitHold(bulk.QueueID); h.Account != "alice@campus.example" {
		t.Errorf("hold account %q", h.Account)
	}
	run()
	mainCF2, _ := os.ReadFile(filepath.Join(in.ConfigDir, "main.cf"))
	masterCF2, _ := os.ReadFile(filepath.Join(in.ConfigDir, "master.cf"))
	if string(mainCF2) != string(mainCF) || string(masterCF2) != string(masterCF) {
		t.Errorf("a second run changed the configuration:\n%s\n%s", mainCF2, masterCF2)
	}

	d.stop()
	sub := in.Send(t, postfixtest.SendOptions{From: "alice@campus.example", AuthUser: "alice@campus.example", AuthPassword: "wonderland-7",
		To: recipients(1, "dest.example"), Headers: map[string]string{"Subject": "submitted while down"}, Body: "Hi.\n"})
	if sub.Accepted {
		t.Fatalf("submission accepted with mailbrake down and --on-failure tempfail:\n%s", sub.Transcript)
	}
	in25 := in.Send(t, postfixtest.SendOptions{From: "friend@elsewhere.example", To: recipients(1, "dest.example"),
		Headers: map[string]string{"Subject": "port 25 while down"}, Body: "Hi.\n"})
	if !in25.Accepted {
		t.Fatalf("port 25 refused mail with mailbrake down: the wiring reaches beyond submission:\n%s", in25.Transcript)
	}
}
