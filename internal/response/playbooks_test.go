package response

import (
	"strings"
	"testing"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/playbook"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/verdict"
)

// TestPlaybooksVolumeWaits: a playbook that a count of recipients or
// messages opens must wait for an admin before it restricts the account
// (a class announcement has such a count); one that scripted-client or
// secret evidence opens may act at once; a rule is volume unless it says
// otherwise; a trigger nothing reports is refused with a suggestion.
func TestPlaybooksVolumeWaits(t *testing.T) {
	fam := Families(map[string]verdict.Family{"bulk-from-scripted-client": verdict.Scripted, "password-leak": verdict.Secret},
		[]config.Rule{{Name: "rate-recipients-hour"}, {Name: "forged-header", Family: verdict.Identity}})
	steps := []playbook.Step{playbook.StepNotify, playbook.StepRestrictSending, playbook.StepLockLogin}
	path := func(i int) string { return "playbooks[" + string(rune('0'+i)) + "]" }
	for _, c := range []struct {
		name     string
		triggers []string
		confirm  playbook.Step
		want     string // "" or the error's start
	}{
		{"volume at once", []string{"rate-recipients-hour"}, "", `playbooks[0].steps[1]: restrict-sending would run at once on "rate-recipients-hour"`},
		{"volume confirmed before lock only", []string{"bulk-from-scripted-client", "rate-recipients-hour"}, playbook.StepLockLogin, `playbooks[0].steps[1]: restrict-sending would run at once`},
		{"volume waits", []string{"rate-recipients-hour"}, playbook.StepRestrictSending, ""},
		{"scripted at once", []string{"bulk-from-scripted-client"}, "", ""},
		{"identity rule at once", []string{"forged-header"}, "", ""},
		{"secret at once", []string{"password-leak"}, "", ""},
		{"misspelt", []string{"password-leek"}, "", `playbooks[0].triggers[0]: no rule or detector reports "password-leek" (did you mean "password-leak"?)`},
	} {
		pbs, errs := Playbooks([]config.PlaybookConfig{{Name: "p", Triggers: c.triggers, Severity: store.SeverityHigh, Steps: steps, ConfirmFrom: c.confirm}}, path, fam)
		switch {
		case c.want == "" && len(errs) != 0:
			t.Errorf("%s: %v", c.name, errs)
		case c.want != "" && (len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.name, errs, c.want)
		case len(pbs) != 1:
			t.Errorf("%s: %d playbooks", c.name, len(pbs))
		}
	}
}
