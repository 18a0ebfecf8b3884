package evaluate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/mailbrake/mailbrake/internal/config"
	"github.com/mailbrake/mailbrake/internal/replay"
	"github.com/mailbrake/mailbrake/internal/store"
)

// Campaign is a synthetic compromise injected into one account.
type Campaign struct {
	Name     string
	Client   string        // X-Mailer / User-Agent of the attacker's tool
	Messages int           // messages sent
	Rcpts    int           // recipients per message
	Every    time.Duration // time between messages
	// To, when set, is the only recipient (e.g. a listed phisher address).
	To string
	// OwnClient: the attacker uses the victim's usual client (the one in
	// most of the account's history) instead of Client.
	OwnClient bool
	// Local: the recipients are colleagues at the account's own domain
	// (internal phishing) instead of outside addresses.
	Local bool
	// NewAccount: the run comes from a brand-new account without
	// history (from the middle of the data's time span).
	NewAccount bool
	// Subject and Body, when Body is set, are the message the campaign
	// sends (Body a format with the message number, %[1]d, and the first
	// recipient's name, %[2]s): the content detectors see it, as the
	// milter would.
	Subject, Body string
}

// slowBody and lureBody are the texts of the content campaigns: a
// low-and-slow advance-fee run and an internal credential phish.
const (
	slowBody = "Hello %[2]s,\r\n\r\nI hope this finds you well. I am writing about a private investment opportunity with a guaranteed monthly return of %[1]d percent that a few colleagues and I have been part of. Our fund has helped many families; reply to this message and I will send the brochure and the details.\r\n\r\nKind regards\r\n"
	lureBody = "Dear %[2]s,\r\n\r\nYour mailbox has exceeded its storage quota and will be suspended within 24 hours. To keep your messages, verify your account at https://webmail-quota.example.net/verify?id=%[1]d and sign in with your password.\r\n\r\nIT Service Desk\r\n"
)

// Campaigns are the campaigns of the evaluation (issue 3, item 8). The
// phisher reply goes to a made-up address; the evaluation test replaces it
// with a real address from the APRL list in ../shared/data.
var Campaigns = []Campaign{
	{Name: "bulk-zimbra-html", Client: "Zimbra 8.8.15_GA_4545 (zclient/8.8.15_GA_4545)", Messages: 40, Rcpts: 60, Every: 20 * time.Second},
	{Name: "bulk-zimbra-ajax", Client: "Zimbra 8.8.15_GA_3901 (ZimbraWebClient - GC120 (Win)/8.8.15_GA_3901)", Messages: 40, Rcpts: 60, Every: 20 * time.Second},
	{Name: "slow-drip-smtp", Client: "Microsoft Outlook 16.0", Messages: 144, Rcpts: 10, Every: 10 * time.Minute},
	{Name: "first-time-spray", Client: "Mozilla Thunderbird", Messages: 300, Rcpts: 1, Every: 2 * time.Minute},
	{Name: "phisher-reply", Client: "Zimbra 8.8.15_GA_3901 (ZimbraWebClient - FF110 (Linux)/8.8.15_GA_3901)", Messages: 1, Rcpts: 1, To: "account.verify.desk@example.net"},
	// Issue 12: under every volume threshold. Three new external
	// recipients a message, 15 messages a day for 10 days, from the
	// victim's own client; and one colleague a message, 30 a day for a
	// week, with a credential lure.
	{Name: "low-and-slow", OwnClient: true, Messages: 150, Rcpts: 3, Every: 96 * time.Minute, Subject: "A private opportunity", Body: slowBody},
	{Name: "internal-phishing", OwnClient: true, Local: true, Messages: 210, Rcpts: 1, Every: 48 * time.Minute, Subject: "Mailbox quota exceeded", Body: lureBody},
	// A run from an account that never sent before.
	{Name: "new-account-run", NewAccount: true, Client: "Mozilla Thunderbird", Messages: 100, Rcpts: 5, Every: 5 * time.Minute, Subject: "A private opportunity", Body: slowBody},
}

// CampaignResult is how far one campaign got.
type CampaignResult struct {
	Campaign       string `json:"campaign"`
	Account        string `json:"account"`
	Recipients     int    `json:"recipients"`    // recipients the campaign addressed
	Through        int    `json:"through"`       // recipients of messages allowed (or tagged)
	FirstStoppedAt int    `json:"first_stopped"` // 1-based message index of the first message not allowed, 0 if none
	FinalState     string `json:"final_state"`   // account state after the campaign
}

// Result is the whole evaluation.
type Result struct {
	LegitMessages   int              `json:"legit_messages"`
	LegitHeld       int              `json:"legit_held"` // held, deferred or rejected
	LegitSenders    int              `json:"legit_senders"`
	LegitRestricted int              `json:"legit_senders_restricted"`
	HeldByReason    map[string]int   `json:"legit_held_by_reason"`
	Campaigns       []CampaignResult `json:"campaigns"`
	Shapes          []ShapeResult    `json:"shapes"`
	// RestrictedBySingleMessage counts legitimate senders whose
	// restriction came from a message that was the only one scored.
	RestrictedBySingleMessage int `json:"restricted_by_single_message"`
}

// HeldShare is the share of legitimate messages held.
func (r *Result) HeldShare() float64 {
	if r.LegitMessages == 0 {
		return 0
	}
	return float64(r.LegitHeld) / float64(r.LegitMessages)
}

// RestrictedShare is the share of legitimate senders ever restricted.
func (r *Result) RestrictedShare() float64 {
	if r.LegitSenders == 0 {
		return 0
	}
	return float64(r.LegitRestricted) / float64(r.LegitSenders)
}

type label struct {
	campaign           int // -1: legitimate
	shape              int // -1: not a generated shape
	index              int // message index within the campaign
	account            string
	rcpts              int
	afterCampaignStart bool
}

// usualClient is the client of most of an account's messages ("" when
// its history names none).
func usualClient(hist []replay.Record) string {
	n := map[string]int{}
	best := ""
	for _, r := range hist {
		n[r.Client]++
		if n[r.Client] > n[best] || n[r.Client] == n[best] && r.Client < best {
			best = r.Client
		}
	}
	return best
}

// Run injects one campaign per account into the busiest accounts (a
// campaign starts halfway through the account's own history), replays
// everything in time order with cfg, and scores the result.
func Run(ctx context.Context, cfg *config.Config, legit []replay.Record, campaigns []Campaign, shapes []Shape, seed uint64) (*Result, error) {
	byAccount := map[string][]replay.Record{}
	for _, r := range legit {
		byAccount[r.Account] = append(byAccount[r.Account], r)
	}
	accounts := make([]string, 0, len(byAccount))
	for a := range byAccount {
		accounts = append(accounts, a)
	}
	// Busiest first, then by name: deterministic.
	sort.Slice(accounts, func(i, j int) bool {
		ni, nj := len(byAccount[accounts[i]]), len(byAccount[accounts[j]])
		return ni > nj || (ni == nj && accounts[i] < accounts[j])
	})
	existing := 0
	for _, sh := range shapes {
		if !sh.NewAccount {
			existing++
		}
	}
	if len(accounts) < len(campaigns)+existing+5 {
		return nil, fmt.Errorf("need at least %d accounts, have %d", len(campaigns)+existing+5, len(accounts))
	}
	type item struct {
		rec replay.Record
		lab label
	}
	var items []item
	starts := map[string]time.Time{}
	all := append([]replay.Record(nil), legit...)
	sort.Slice(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	mid := all[len(all)/2].Time
	campAccount := make([]string, len(campaigns))
	for ci, c := range campaigns {
		acct := accounts[ci]
		hist := byAccount[acct]
		sort.Slice(hist, func(i, j int) bool { return hist[i].Time.Before(hist[j].Time) })
		var start time.Time
		if c.NewAccount {
			acct, hist, start = fmt.Sprintf("newvictim%d@%s", ci, localDomain), nil, mid
		} else {
			start = hist[len(hist)/2].Time.Add(time.Second)
		}
		campAccount[ci] = acct
		starts[acct] = start
		client := c.Client
		if c.OwnClient {
			client = usualClient(hist)
		}
		for m := 0; m < c.Messages; m++ {
			rec := replay.Record{Time: start.Add(time.Duration(m) * c.Every), Account: acct, Client: client}
			switch {
			case c.To != "":
				rec.Recipients = []string{c.To}
			case c.Local:
				dom := acct[strings.LastIndexByte(acct, '@')+1:]
				for k := 0; k < c.Rcpts; k++ {
					rec.Recipients = append(rec.Recipients, fmt.Sprintf("colleague%d.%d@%s", m, k, dom))
				}
			default:
				for k := 0; k < c.Rcpts; k++ {
					rec.Recipients = append(rec.Recipients, fmt.Sprintf("victim%d.%d@%s.example", m, k, c.Name))
				}
			}
			if c.Body != "" {
				name, _, _ := strings.Cut(rec.Recipients[0], "@")
				rec.Subject = c.Subject
				rec.Raw = fmt.Appendf(nil, "From: %s\r\nSubject: %s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+c.Body, acct, c.Subject, m+1, name)
			}
			items = append(items, item{rec, label{campaign: ci, shape: -1, index: m + 1, account: acct, rcpts: len(rec.Recipients)}})
		}
	}
	// Generated legitimate shapes, on the next busiest accounts (or new
	// ones), from the middle of their history (of all history for a new
	// account).
	rng := rand.New(rand.NewPCG(seed, 0xe7a1))
	replaced := map[string]time.Time{}
	shapeRes := make([]ShapeResult, len(shapes))
	// Which accounts carry the shapes varies with the seed too.
	next := len(campaigns) + int(seed%5)
	for si, sh := range shapes {
		var acct string
		var hist []replay.Record
		start := mid
		if sh.NewAccount {
			acct = fmt.Sprintf("newhire%d@%s", si, localDomain)
		} else {
			acct = accounts[next]
			next++
			hist = byAccount[acct]
			sort.Slice(hist, func(i, j int) bool { return hist[i].Time.Before(hist[j].Time) })
			start = hist[len(hist)/2].Time.Add(time.Second)
		}
		if sh.Replace {
			replaced[acct] = start
		}
		shapeRes[si] = ShapeResult{Shape: sh.Name, Account: acct}
		for _, rec := range sh.Gen(rng, acct, hist, start) {
			items = append(items, item{rec, label{campaign: -1, shape: si, account: acct, rcpts: len(rec.Recipients)}})
		}
	}
	for _, r := range legit {
		if s, ok := replaced[r.Account]; ok && !r.Time.Before(s) {
			continue // the shape's messages stand for these
		}
		s, ok := starts[r.Account]
		items = append(items, item{r, label{campaign: -1, shape: -1, account: r.Account, rcpts: len(r.Recipients), afterCampaignStart: ok && !r.Time.Before(s)}})
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].rec.Time.Before(items[j].rec.Time) })

	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for _, it := range items {
		if err := enc.Encode(it.rec); err != nil {
			return nil, err
		}
	}
	var out bytes.Buffer
	if _, err := replay.Run(ctx, cfg, &in, &out, nil); err != nil {
		return nil, err
	}
	res := &Result{HeldByReason: map[string]int{}}
	camp := make([]CampaignResult, len(campaigns))
	for ci, c := range campaigns {
		camp[ci] = CampaignResult{Campaign: c.Name, Account: campAccount[ci]}
	}
	restricted := map[string]bool{}
	senders := map[string]bool{}
	dec := json.NewDecoder(&out)
	for i := 0; ; i++ {
		var o replay.Output
		if err := dec.Decode(&o); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		if o.Error != "" {
			return nil, fmt.Errorf("replay line %d: %s", o.Line, o.Error)
		}
		lab := items[i].lab
		allowed := o.Action == "allow" || o.Action == "tag"
		if lab.campaign >= 0 {
			cr := &camp[lab.campaign]
			cr.Recipients += lab.rcpts
			if allowed {
				cr.Through += lab.rcpts
			} else if cr.FirstStoppedAt == 0 {
				cr.FirstStoppedAt = lab.index
			}
			cr.FinalState = o.AccountState
			continue
		}
		if lab.afterCampaignStart {
			continue // the account is compromised from here on: not legitimate traffic
		}
		senders[lab.account] = true
		res.LegitMessages++
		if !allowed {
			res.LegitHeld++
			for _, r := range o.Reasons {
				res.HeldByReason[r]++
			}
		}
		if lab.shape >= 0 {
			sr := &shapeRes[lab.shape]
			sr.Messages++
			if !allowed {
				sr.Held++
				if sr.HeldByReason == nil {
					sr.HeldByReason = map[string]int{}
				}
				for _, r := range o.Reasons {
					sr.HeldByReason[r]++
				}
			}
			sr.FinalState = o.AccountState
		}
		if st := store.AccountState(o.AccountState); st.Rank() >= store.AccountRestricted.Rank() && !restricted[lab.account] {
			restricted[lab.account] = true
			if o.ScoredMessages < 2 {
				res.RestrictedBySingleMessage++
			}
		}
	}
	res.LegitSenders = len(senders)
	res.LegitRestricted = len(restricted)
	res.Campaigns = camp
	res.Shapes = shapeRes
	return res, nil
}
