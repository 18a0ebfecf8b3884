package response

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/playbook"
	"github.com/mailbrake/mailbrake/internal/verdict"
)

// Families is every reason a finding can have and its evidence family:
// the built-in ones (detectors, the password-leak scan, an admin's mark)
// and each rule's (volume unless the rule names another).
func Families(builtin map[string]verdict.Family, rules []config.Rule) map[string]verdict.Family {
	out := maps.Clone(builtin)
	if out == nil {
		out = map[string]verdict.Family{}
	}
	for _, r := range rules {
		fam := r.Family
		if fam == "" {
			fam = verdict.Volume
		}
		out[r.ReasonOrName()] = fam
	}
	return out
}

// Playbooks makes the configured playbooks, refusing (with the key path
// path(i) of playbook i) a trigger nothing reports, and a playbook a
// volume finding opens that would restrict the account before an admin
// confirms: one rule for every route to a restriction — a count of
// recipients or messages, which a legitimate sender's one big message
// (a class announcement) has too, never restricts an account by itself.
func Playbooks(pcs []config.PlaybookConfig, path func(int) string, family map[string]verdict.Family) ([]*playbook.Playbook, config.Errors) {
	var errs config.Errors
	add := func(p string, err error) { errs = append(errs, config.FieldError{Path: p, Msg: err.Error()}) }
	var out []*playbook.Playbook
	for i, pc := range pcs {
		for j, tr := range pc.Triggers {
			if _, ok := family[tr]; !ok {
				add(fmt.Sprintf("%s.triggers[%d]", path(i), j), fmt.Errorf("no rule or detector reports %q%s, so this would never open an incident", tr, config.DidYouMean(tr, maps.Keys(family), 3)))
			}
		}
		pb := &playbook.Playbook{Name: pc.Name, Triggers: pc.Triggers, Severity: pc.Severity, Steps: pc.Steps, ConfirmFrom: len(pc.Steps)}
		if i := slices.Index(pc.Steps, pc.ConfirmFrom); i >= 0 {
			pb.ConfirmFrom = i
		}
		var volume []string
		for _, tr := range pc.Triggers {
			if family[tr] == verdict.Volume {
				volume = append(volume, strconv.Quote(tr))
			}
		}
		if len(volume) > 0 {
			for k, st := range pc.Steps[:pb.ConfirmFrom] {
				if playbook.Restricts(st) {
					add(fmt.Sprintf("%s.steps[%d]", path(i), k), fmt.Errorf("%s would run at once on %s: counts of recipients or messages, which a legitimate sender's one big message has too; set confirm_from to %s or earlier, or move those triggers to a playbook that waits for an admin", st, strings.Join(volume, ", "), st))
					break
				}
			}
		}
		out = append(out, pb)
	}
	return out, errs
}
