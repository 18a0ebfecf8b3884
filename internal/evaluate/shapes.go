package evaluate

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/mailbrake/mailbrake/internal/replay"
)

// Shape is generated legitimate traffic of one kind that real histories
// rarely show but every site has (issue 12, item 8): it is added to an
// account's own history (or makes a new account) and counts as legitimate.
type Shape struct {
	Name string
	// NewAccount: the shape is a brand-new account with no history.
	NewAccount bool
	// Replace: the shape's messages replace the account's own from start
	// on (instead of being added).
	Replace bool
	// Gen returns the shape's messages for acct, whose history is hist
	// (empty for a new account), starting at start.
	Gen func(rng *rand.Rand, acct string, hist []replay.Record, start time.Time) []replay.Record
}

// ShapeResult is how mailbrake treated one shape's messages.
type ShapeResult struct {
	Shape      string `json:"shape"`
	Account    string `json:"account"`
	Messages   int    `json:"messages"`
	Held       int    `json:"held"` // held, deferred or rejected
	FinalState string `json:"final_state"`
	// HeldByReason counts the reasons of the held messages.
	HeldByReason map[string]int `json:"held_by_reason,omitempty"`
}

// localDomain is the domain of the evaluated site's accounts.
const localDomain = "enron.com"

// Shapes returns the generated legitimate shapes for seed: sizes and
// timings vary with the seed so that no threshold is tuned to one
// generator.
func Shapes(seed uint64) []Shape {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	class := 100 + rng.IntN(201) // 100–300 students
	class2 := 100 + rng.IntN(201)
	listSize := 150 + rng.IntN(151) // newsletter list 150–300
	perMsg := 40 + rng.IntN(21)     // Bcc per message
	return []Shape{
		{Name: fmt.Sprintf("class-announcement-%d", class), Gen: func(rng *rand.Rand, acct string, _ []replay.Record, start time.Time) []replay.Record {
			return classAnnouncement(rng, acct, start, class)
		}},
		{Name: fmt.Sprintf("class-announcement-%d", class2), Gen: func(rng *rand.Rand, acct string, _ []replay.Record, start time.Time) []replay.Record {
			return classAnnouncement(rng, acct, start, class2)
		}},
		{Name: fmt.Sprintf("weekday-newsletter-%dx%d", listSize, perMsg), Gen: func(rng *rand.Rand, acct string, _ []replay.Record, start time.Time) []replay.Record {
			return newsletter(rng, acct, start, listSize, perMsg)
		}},
		{Name: "client-switch", Replace: true, Gen: clientSwitch},
		{Name: "new-account", NewAccount: true, Gen: newAccount},
		{Name: "new-account", NewAccount: true, Gen: newAccount},
		{Name: "new-account", NewAccount: true, Gen: newAccount},
	}
}

var words = strings.Fields(`the a of to and in for on with at from by about meeting report budget project
schedule review draft contract agenda notes call week today tomorrow please thanks attached update question
plan team office numbers deal price gas power trading desk memo lunch monday friday figures summary comments`)

// prose is a unique message text of n words.
func prose(rng *rand.Rand, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[rng.IntN(len(words))])
	}
	return b.String()
}

func raw(from, subject, body string) []byte {
	return fmt.Appendf(nil, "From: %s\r\nSubject: %s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n", from, subject, body)
}

// classAnnouncement: one message to a class list of first-time local
// recipients, once.
func classAnnouncement(rng *rand.Rand, acct string, start time.Time, n int) []replay.Record {
	r := replay.Record{Time: start, Account: acct, Subject: "Course announcement"}
	for i := range n {
		r.Recipients = append(r.Recipients, fmt.Sprintf("student%d.%x@%s", i, rng.Uint32(), localDomain))
	}
	r.Raw = raw(acct, r.Subject, "Dear all,\r\n\r\nthe course starts next week; the room, the reading list and the slides are on https://courses.example.edu/c/101 . "+prose(rng, 40))
	return []replay.Record{r}
}

// newsletter: every weekday for three weeks, the day's issue to the same
// list of colleagues, Bcc'd in several messages of the same text.
func newsletter(rng *rand.Rand, acct string, start time.Time, list, perMsg int) []replay.Record {
	var members []string
	for i := range list {
		members = append(members, fmt.Sprintf("colleague%d.%x@%s", i, rng.Uint32(), localDomain))
	}
	var out []replay.Record
	for n, day := range weekdays(start, 15) {
		issues := n + 1
		text := fmt.Sprintf("Department news, issue %d.\r\n\r\n%s\r\n\r\nRead more at https://intranet.example.edu/news/%d", issues, prose(rng, 80), issues)
		for i := 0; i < list; i += perMsg {
			r := replay.Record{Time: day.Add(time.Duration(i/perMsg) * 2 * time.Minute), Account: acct, Subject: "Department news",
				Recipients: members[i:min(i+perMsg, list)]}
			r.Raw = raw(acct, r.Subject, text)
			out = append(out, r)
		}
	}
	return out
}

// weekdays are the first n weekdays from start on (same time of day).
func weekdays(start time.Time, n int) []time.Time {
	var out []time.Time
	for day := start; len(out) < n; day = day.Add(24 * time.Hour) {
		if wd := day.Weekday(); wd != time.Saturday && wd != time.Sunday {
			out = append(out, day)
		}
	}
	return out
}

// clientSwitch: from the middle of its history on, the account uses
// another client for good (a new laptop).
func clientSwitch(_ *rand.Rand, _ string, hist []replay.Record, start time.Time) []replay.Record {
	var out []replay.Record
	for _, r := range hist {
		if !r.Time.Before(start) {
			r.Client = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:115.0) Gecko/20100101 Thunderbird/115.6.0"
			out = append(out, r)
		}
	}
	return out
}

// newAccount: a new member of staff's first three weeks: a few messages a
// weekday to colleagues, more of them known each day, now and then
// someone outside.
func newAccount(rng *rand.Rand, acct string, _ []replay.Record, start time.Time) []replay.Record {
	var pool []string
	for i := range 25 + rng.IntN(20) {
		pool = append(pool, fmt.Sprintf("coworker%d.%x@%s", i, rng.Uint32(), localDomain))
	}
	var out []replay.Record
	for _, day := range weekdays(start, 15) {
		for m := range 3 + rng.IntN(8) {
			r := replay.Record{Time: day.Add(time.Duration(9*60+m*40+rng.IntN(30)) * time.Minute), Account: acct, Subject: prose(rng, 3),
				Client: "Microsoft Outlook 16.0"}
			for range 1 + rng.IntN(4) {
				if rng.IntN(10) == 0 {
					r.Recipients = append(r.Recipients, fmt.Sprintf("contact%x@partner%d.example", rng.Uint32(), rng.IntN(5)))
				} else {
					r.Recipients = append(r.Recipients, pool[rng.IntN(len(pool))])
				}
			}
			r.Raw = raw(acct, r.Subject, "Hi,\r\n\r\n"+prose(rng, 30+rng.IntN(60)))
			out = append(out, r)
		}
	}
	return out
}

// Vary returns the campaigns with the sizes and timings of the content
// campaigns drawn for seed: 1–3 recipients a message for the low-and-slow
// run, 10–20 messages a day; 20–40 a day for internal phishing. Seed 0
// keeps them as given.
func Vary(cs []Campaign, seed uint64) []Campaign {
	out := append([]Campaign(nil), cs...)
	if seed == 0 {
		return out
	}
	rng := rand.New(rand.NewPCG(seed, 0xca3))
	for i := range out {
		c := &out[i]
		switch {
		case c.Body != "" && !c.Local:
			c.Rcpts = 1 + rng.IntN(3)
			perDay := 10 + rng.IntN(11)
			c.Every = 24 * time.Hour / time.Duration(perDay)
			c.Messages = 10 * perDay
		case c.Body != "" && c.Local:
			perDay := 20 + rng.IntN(21)
			c.Every = 24 * time.Hour / time.Duration(perDay)
			c.Messages = 7 * perDay
		}
	}
	return out
}
