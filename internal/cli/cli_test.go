package cli

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestPostfixConfig(t *testing.T) {
	code, out, _ := run(t, "postfix-config")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"smtpd_milters = inet:127.0.0.1:10042",
		"milter_default_action = tempfail",
		"milter_mail_macros = i {auth_type} {auth_authen}",
		"smtpd_end_of_data_restrictions =\n    check_policy_service { inet:127.0.0.1:10041,",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	// The policy check comes before permit_sasl_authenticated.
	i, j := strings.Index(out, "check_policy_service"), strings.Index(out, "permit_sasl_authenticated")
	if i < 0 || j < 0 || i > j {
		t.Errorf("check_policy_service not before permit_sasl_authenticated:\n%s", out)
	}
	code, out, _ = run(t, "postfix-config", "--on-failure", "accept")
	if code != 0 || !strings.Contains(out, "milter_default_action = accept") || !strings.Contains(out, "default_action=DUNNO") {
		t.Errorf("fail-open config: %d\n%s", code, out)
	}
	if code, _, _ := run(t, "postfix-config", "--on-failure", "maybe"); code != 2 {
		t.Errorf("bad --on-failure exit %d, want 2", code)
	}
}

func TestZimbraConfig(t *testing.T) {
	code, out, _ := run(t, "zimbra-config")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"zimbraSmtpSendAddAuthenticatedUser TRUE", "zimbraMtaSmtpdMilters inet:127.0.0.1:10042", "zimbraMtaMilterDefaultAction tempfail"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

func TestClientWithoutDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	code, _, errOut := run(t, "--socket", sock, "quarantine", "list")
	if code != 1 || !strings.Contains(errOut, "cannot reach the mailbrake daemon") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if code, _, errOut := run(t, "--socket", sock, "quarantine", "release", "abc"); code != 2 || !strings.Contains(errOut, "positive number") {
		t.Fatalf("bad id: exit %d: %s", code, errOut)
	}
}
