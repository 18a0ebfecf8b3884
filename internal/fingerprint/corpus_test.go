package fingerprint

import (
	"encoding/csv"
	"errors"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// sharedHeaders is the shared development corpus, relative to this package
// (the shared data sits next to the repository, at ../shared from its root).
const sharedHeaders = "../../../shared/data/mua-header-fingerprints/headers.csv"

// csvFamilies maps the client_family column of headers.csv to ours. Zimbra
// rows are told apart by client_variant, in csvZimbraVariant.
var csvFamilies = map[string]Family{
	"Roundcube":                 FamilyRoundcube,
	"SOGo":                      FamilySOGo,
	"Open-Xchange":              FamilyOpenXchange,
	"SquirrelMail":              FamilySquirrelMail,
	"Outlook (Windows)":         FamilyOutlook,
	"Outlook (Mac)":             FamilyOutlook,
	"Thunderbird":               FamilyThunderbird,
	"Apple Mail":                FamilyAppleMail,
	"Apple iOS Mail":            FamilyAppleMail,
	"Evolution":                 FamilyEvolution,
	"K-9 / Thunderbird Android": FamilyK9Mail,
	"PHPMailer (script)":        FamilyPHPMailer,
	// Families we do not name: Outlook Express died in 2006 and is imitated
	// by spam tools; the hosted webmails never submit through the admin's
	// own MTA; a browser user agent says nothing about the mail client.
	"Outlook Express":                       FamilyOther,
	"Amazon WorkMail":                       FamilyOther,
	"Yahoo/AOL web":                         FamilyOther,
	"browser-UA string (webmail or forged)": FamilyOther,
	"other":                                 FamilyOther,
}

// csvZimbraVariant maps the start of client_variant of Zimbra rows.
var csvZimbraVariant = []struct {
	prefix string
	family Family
}{
	{"AJAX", FamilyZimbraAjax},
	{"zclient", FamilyZimbraHTML},
	{"bare", FamilyZimbraBare},
	{"Modern", FamilyZimbraModern},
	{"Zimbra Connector", FamilyZimbraOther},
}

// disagreements are the rows where we deliberately differ from headers.csv,
// whose families for phishing rows are a regular-expression guess
// (SOURCE.md). Keyed by the header value.
var disagreements = map[string]struct {
	csv, ours Family
	why       string
}{
	"RoundCube WebMail": {FamilyOther, FamilyRoundcube,
		"Roundcube's own name in its old spelling, without a version: what its useragent setting writes when an admin hides the version"},
	"iPad Mail (13E238)": {FamilyOther, FamilyAppleMail,
		"iPad Mail writes the iPhone Mail format; 13E238 is the same iOS 9.3.1 build as the csv's iPhone Mail row"},
	"Outlook/91.8.0": {FamilyOutlook, FamilyOther,
		"no Outlook writes \"Outlook/<ver>\"; 91.8.0 is a Thunderbird release number, and the message came from a VPS: forged"},
}

func expectedFamily(t *testing.T, family, variant string) Family {
	t.Helper()
	if family == "Zimbra" {
		for _, v := range csvZimbraVariant {
			if strings.HasPrefix(variant, v.prefix) {
				return v.family
			}
		}
		t.Fatalf("no mapping for Zimbra variant %q: add it to csvZimbraVariant", variant)
	}
	f, ok := csvFamilies[family]
	if !ok {
		t.Fatalf("no mapping for client_family %q: add it to csvFamilies", family)
	}
	return f
}

// TestCorpus classifies every observed and phishing row of headers.csv and
// checks the family against the csv's. It runs on the small fixture always
// and on the shared corpus when it is present.
func TestCorpus(t *testing.T) {
	t.Run("fixture", func(t *testing.T) {
		checkCorpus(t, "testdata/headers-sample.csv", false)
	})
	t.Run("shared", func(t *testing.T) {
		if _, err := os.Stat(sharedHeaders); errors.Is(err, fs.ErrNotExist) {
			t.Skipf("shared corpus %s not present (it sits next to the repository, not in it)", sharedHeaders)
		}
		checkCorpus(t, sharedHeaders, true)
	})
}

func checkCorpus(t *testing.T, path string, full bool) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	records, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	if len(records) < 2 {
		t.Fatalf("%s: no rows", path)
	}
	col := map[string]int{}
	for i, name := range records[0] {
		col[name] = i
	}
	for _, name := range []string{"kind", "client_family", "client_variant", "header", "value", "count"} {
		if _, ok := col[name]; !ok {
			t.Fatalf("%s: no column %q", path, name)
		}
	}

	type tally struct{ rows, messages int }
	counts := map[Family]*tally{}
	kinds := map[string]int{}
	usedDisagreements := map[string]bool{}
	for line, rec := range records[1:] {
		kind := rec[col["kind"]]
		kinds[kind]++
		if kind == "derived" {
			continue // format rules with <placeholders>, not header values
		}
		if kind != "observed" && kind != "phishing" {
			t.Errorf("line %d: unknown kind %q", line+2, kind)
			continue
		}
		value := rec[col["value"]]
		want := expectedFamily(t, rec[col["client_family"]], rec[col["client_variant"]])
		if d, ok := disagreements[value]; ok {
			if d.csv != want {
				t.Errorf("line %d %q: the csv now says %s, the disagreement list says %s", line+2, value, want, d.csv)
			}
			want = d.ours
			usedDisagreements[value] = true
		}
		var got Result
		switch h := rec[col["header"]]; h {
		case "X-Mailer":
			got = Classify(value, "")
		case "User-Agent":
			got = Classify("", value)
		default:
			t.Errorf("line %d: unknown header %q", line+2, h)
			continue
		}
		if got.Family != want {
			t.Errorf("line %d: %s %q: got %s (%+v), csv says %s", line+2, rec[col["header"]], value, got.Family, got, want)
		}
		n, err := strconv.Atoi(rec[col["count"]])
		if err != nil || n < 1 {
			t.Errorf("line %d: bad count %q", line+2, rec[col["count"]])
			n = 1
		}
		c := counts[got.Family]
		if c == nil {
			c = &tally{}
			counts[got.Family] = c
		}
		c.rows++
		c.messages += n
	}
	if full {
		for v := range disagreements {
			if !usedDisagreements[v] {
				t.Errorf("disagreement %q matches no row: remove it", v)
			}
		}
	}

	var lines []string
	for _, fam := range Families() {
		if c := counts[fam]; c != nil {
			lines = append(lines, strings.Join([]string{string(fam), strconv.Itoa(c.rows), strconv.Itoa(c.messages)}, "\t"))
		}
	}
	var kindNames []string
	for k, n := range kinds {
		kindNames = append(kindNames, k+"="+strconv.Itoa(n))
	}
	sort.Strings(kindNames)
	t.Logf("%s: rows by kind %s\nfamily\trows\tmessages\n%s", path, strings.Join(kindNames, " "), strings.Join(lines, "\n"))
}
