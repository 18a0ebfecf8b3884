package engine

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/fingerprint"
	"github.com/mailbrake/mailbrake/internal/store"
	"github.com/mailbrake/mailbrake/internal/verdict"
)

// facts is what conditions are evaluated against.
type facts struct {
	sub    *Submission
	totals store.Totals
}

type factKind int

const (
	kindString factKind = iota
	kindNumber
	kindBool
)

type factDef struct {
	kind factKind
	str  func(*facts) string
	num  func(*facts) float64
	// values, when set, is the closed set a string fact may take.
	values []string
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(addr[i+1:])
	}
	return ""
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func familyNames() []string {
	var out []string
	for _, f := range fingerprint.Families() {
		out = append(out, string(f))
	}
	return out
}

// factTable lists every fact a condition may test. Keep it in step with the
// doc tag of config.Condition.Fact.
var factTable = map[string]factDef{
	"account":        {kind: kindString, str: func(f *facts) string { return f.sub.Account }},
	"account_source": {kind: kindString, str: func(f *facts) string { return string(f.sub.AccountSource) }, values: []string{"sasl", "header", "sender", "unauthenticated"}},
	"authenticated": {kind: kindBool, str: func(f *facts) string {
		return boolStr(f.sub.AccountSource == SourceSASL || f.sub.AccountSource == SourceHeader)
	}},
	"client":         {kind: kindString, str: func(f *facts) string { return f.sub.Client.Client }},
	"client_family":  {kind: kindString, str: func(f *facts) string { return string(f.sub.Client.Family) }, values: familyNames()},
	"client_address": {kind: kindString, str: func(f *facts) string { return f.sub.ClientAddress.String() }},
	"trusted_client": {kind: kindBool, str: func(f *facts) string { return boolStr(f.sub.TrustedClient) }},
	"sender":         {kind: kindString, str: func(f *facts) string { return f.sub.Sender }},
	"sender_domain":  {kind: kindString, str: func(f *facts) string { return domainOf(f.sub.Sender) }},
	"recipient":      {kind: kindString, str: func(f *facts) string { return f.sub.Recipient }},
	"recipient_domain": {kind: kindString, str: func(f *facts) string {
		return domainOf(f.sub.Recipient)
	}},
	"recipient_count": {kind: kindNumber, num: func(f *facts) float64 { return float64(f.sub.RecipientCount) }},
	"size":            {kind: kindNumber, num: func(f *facts) float64 { return float64(f.sub.Size) }},
	"stage":           {kind: kindString, str: func(f *facts) string { return string(f.sub.Stage) }, values: []string{"rcpt", "eom"}},
	"path":            {kind: kindString, str: func(f *facts) string { return string(f.sub.Path) }, values: []string{"policy", "milter"}},
	"messages_1h":     {kind: kindNumber, num: func(f *facts) float64 { return float64(f.totals.Messages1h) }},
	"recipients_1h":   {kind: kindNumber, num: func(f *facts) float64 { return float64(f.totals.Recipients1h) }},
	"messages_24h":    {kind: kindNumber, num: func(f *facts) float64 { return float64(f.totals.Messages24h) }},
	"recipients_24h":  {kind: kindNumber, num: func(f *facts) float64 { return float64(f.totals.Recipients24h) }},
	// Recipient novelty (end of message, outbound; 0 when the novelty
	// detector is off).
	"new_recipients":            {kind: kindNumber, num: noveltyFact(func(n *Novelty) int { return n.New })},
	"first_time_recipients_1h":  {kind: kindNumber, num: noveltyFact(func(n *Novelty) int { return n.FirstTime1h })},
	"first_time_recipients_24h": {kind: kindNumber, num: noveltyFact(func(n *Novelty) int { return n.FirstTime24h })},
	"distinct_recipients_1h":    {kind: kindNumber, num: noveltyFact(func(n *Novelty) int { return n.Distinct1h })},
	"distinct_recipients_24h":   {kind: kindNumber, num: noveltyFact(func(n *Novelty) int { return n.Distinct24h })},
	"recipient_domains":         {kind: kindNumber, num: noveltyFact(func(n *Novelty) int { return n.Domains })},
	"external_recipients":       {kind: kindNumber, num: noveltyFact(func(n *Novelty) int { return n.External })},
	"external_share": {kind: kindNumber, num: func(f *facts) float64 {
		if n := f.sub.Novelty; n != nil && n.Distinct > 0 {
			return float64(n.External) / float64(n.Distinct)
		}
		return 0
	}},
}

func noveltyFact(get func(*Novelty) int) func(*facts) float64 {
	return func(f *facts) float64 {
		if f.sub.Novelty == nil {
			return 0
		}
		return float64(get(f.sub.Novelty))
	}
}

func isNovelty(fact string) bool {
	switch fact {
	case "new_recipients", "first_time_recipients_1h", "first_time_recipients_24h", "distinct_recipients_1h",
		"distinct_recipients_24h", "recipient_domains", "external_recipients", "external_share":
		return true
	}
	return false
}

// FactNames returns the facts a condition may test, sorted.
func FactNames() []string {
	var out []string
	for k := range factTable {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

type condition struct {
	fact string
	test func(*facts) bool
	// describe renders the fact's value for the finding's evidence.
	describe func(*facts) string
}

type rule struct {
	family  verdict.Family
	name    string
	reason  Reason
	stage   Stage
	dir     config.RuleDirection // outbound, inbound or any (never unset)
	conds   []condition
	action  Action
	dryRun  bool
	score   int
	text    string
	usesCnt bool // tests a counter fact
	day     bool // tests a day window and no hour window (Finding.Day)
}

// on reports whether the rule is tested on mail of direction d.
func (r *rule) on(d Direction) bool {
	switch r.dir {
	case config.DirectionAny:
		return true
	case config.DirectionInbound:
		return d == Inbound
	}
	return d == Outbound
}

func isCounter(fact string) bool {
	switch fact {
	case "messages_1h", "recipients_1h", "messages_24h", "recipients_24h":
		return true
	}
	return false
}

// Compile checks the rules against the fact table and compiles them. Every
// problem is returned, with the rule's key path.
func Compile(rules []config.Rule) ([]rule, config.Errors) {
	var errs config.Errors
	add := func(path, format string, args ...any) {
		errs = append(errs, config.FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	out := make([]rule, 0, len(rules))
	for i, r := range rules {
		p := fmt.Sprintf("rules[%d]", i)
		var act Action
		if r.Verdict == nil {
			add(p+".verdict", "must be set: one of allow, tag, hold, defer, reject")
		} else {
			act = *r.Verdict
		}
		fam := r.Family
		if fam == "" {
			fam = verdict.Volume
		}
		stage := StageEOM
		if r.StageOrDefault() == config.StageRcpt {
			stage = StageRcpt
		}
		cr := rule{
			name:   r.Name,
			family: fam,
			reason: Reason(r.ReasonOrName()),
			stage:  stage,
			dir:    r.DirectionOrDefault(),
			action: act,
			dryRun: r.DryRun,
			score:  r.Score,
			text:   r.Text,
		}
		hourFact := false
		for j, c := range r.When {
			cp := fmt.Sprintf("%s.when[%d]", p, j)
			cc, err := compileCondition(c)
			if err != nil {
				add(cp, "%v", err)
				continue
			}
			if isCounter(c.Fact) {
				cr.usesCnt = true
			}
			if strings.HasSuffix(c.Fact, "_24h") && !hourFact {
				cr.day = true
			}
			if strings.HasSuffix(c.Fact, "_1h") {
				hourFact, cr.day = true, false
			}
			if cr.stage == StageRcpt && c.Fact == "recipient_count" {
				add(cp+".fact", "recipient_count is only known at end of message (Postfix sends 0 at RCPT); use stage eom")
			}
			if cr.stage == StageRcpt && isNovelty(c.Fact) {
				add(cp+".fact", "%s is known at end of message, once all recipients are; use stage eom", c.Fact)
			}
			cr.conds = append(cr.conds, cc)
		}
		out = append(out, cr)
	}
	return out, errs
}

func compileCondition(c config.Condition) (condition, error) {
	def, ok := factTable[c.Fact]
	if !ok {
		return condition{}, fmt.Errorf("unknown fact %q (known: %s)", c.Fact, strings.Join(FactNames(), ", "))
	}
	cc := condition{fact: c.Fact}
	if def.kind == kindNumber {
		cc.describe = func(f *facts) string { return strconv.FormatFloat(def.num(f), 'f', -1, 64) }
	} else {
		cc.describe = def.str
	}
	checkValue := func(v string) error {
		if def.kind == kindBool && v != "true" && v != "false" {
			return fmt.Errorf("%s is true or false, not %q", c.Fact, v)
		}
		if def.values != nil {
			for _, a := range def.values {
				if a == v {
					return nil
				}
			}
			return fmt.Errorf("%s cannot be %q (one of: %s)", c.Fact, v, strings.Join(def.values, ", "))
		}
		return nil
	}
	number := func(op string, want float64, cmp func(a, b float64) bool) (condition, error) {
		if def.kind != kindNumber {
			return cc, fmt.Errorf("%s compares numbers; %s is not a number", op, c.Fact)
		}
		cc.test = func(f *facts) bool { return cmp(def.num(f), want) }
		return cc, nil
	}
	switch {
	case c.Gt != nil:
		return number("gt", *c.Gt, func(a, b float64) bool { return a > b })
	case c.Gte != nil:
		return number("gte", *c.Gte, func(a, b float64) bool { return a >= b })
	case c.Lt != nil:
		return number("lt", *c.Lt, func(a, b float64) bool { return a < b })
	case c.Lte != nil:
		return number("lte", *c.Lte, func(a, b float64) bool { return a <= b })
	case c.Eq != nil, c.Ne != nil:
		v, neg := "", c.Ne != nil
		if c.Eq != nil {
			v = *c.Eq
		} else {
			v = *c.Ne
		}
		if def.kind == kindNumber {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return cc, fmt.Errorf("%s is a number, not %q", c.Fact, v)
			}
			cc.test = func(f *facts) bool { return (def.num(f) == n) != neg }
			return cc, nil
		}
		if err := checkValue(v); err != nil {
			return cc, err
		}
		cc.test = func(f *facts) bool { return strings.EqualFold(def.str(f), v) != neg }
		return cc, nil
	case c.In != nil, c.NotIn != nil:
		list, neg := c.In, c.NotIn != nil
		if neg {
			list = c.NotIn
		}
		if def.kind == kindNumber {
			return cc, fmt.Errorf("in/not_in compare strings; %s is a number", c.Fact)
		}
		for _, v := range list {
			if err := checkValue(v); err != nil {
				return cc, err
			}
		}
		// Lists in rules are short; a linear case-insensitive scan beats
		// lower-casing every value into a map key on the hot path.
		cc.test = func(f *facts) bool {
			got := def.str(f)
			for _, v := range list {
				if strings.EqualFold(got, v) {
					return !neg
				}
			}
			return neg
		}
		return cc, nil
	case c.Matches != "":
		if def.kind == kindNumber {
			return cc, fmt.Errorf("matches compares strings; %s is a number", c.Fact)
		}
		re, err := regexp.Compile(c.Matches)
		if err != nil {
			return cc, fmt.Errorf("invalid regular expression: %v", err)
		}
		cc.test = func(f *facts) bool { return re.MatchString(def.str(f)) }
		return cc, nil
	}
	return cc, fmt.Errorf("no operator")
}
