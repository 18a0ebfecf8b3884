package evaluate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
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
}

// Campaigns are the campaigns of the evaluation (issue 3, item 8). The
// phisher reply goes to a made-up address; the evaluation test replaces it
// with a real address from the APRL list in ../shared/data.
var Campaigns = []Campaign{
	{Name: "bulk-zimbra-html", Client: "Zimbra 8.8.15_GA_4545 (zclient/8.8.15_GA_4545)", Messages: 40, Rcpts: 60, Every: 20 * time.Second},
	{Name: "bulk-zimbra-ajax", Client: "Zimbra 8.8.15_GA_3901 (ZimbraWebClient - GC120 (Win)/8.8.15_GA_3901)", Messages: 40, Rcpts: 60, Every: 20 * time.Second},
	{Name: "slow-drip-smtp", Client: "Microsoft Outlook 16.0", Messages: 144, Rcpts: 10, Every: 10 * time.Minute},
	{Name: "first-time-spray", Client: "Mozilla Thunderbird", Messages: 300, Rcpts: 1, Every: 2 * time.Minute},
	{Name: "phisher-reply", Client: "Zimbra 8.8.15_GA_3901 (ZimbraWebClient - FF110 (Linux)/8.8.15_GA_3901)", Messages: 1, Rcpts: 1, To: "account.verify.desk@example.net"},
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
	index              int // message index within the campaign
	account            string
	rcpts              int
	afterCampaignStart bool
}

// Run injects one campaign per account into the busiest accounts (a
// campaign starts halfway through the account's own history), replays
// everything in time order with cfg, and scores the result.
func Run(ctx context.Context, cfg *config.Config, legit []replay.Record, campaigns []Campaign) (*Result, error) {
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
	if len(accounts) < len(campaigns) {
		return nil, fmt.Errorf("need at least %d accounts, have %d", len(campaigns), len(accounts))
	}
	type item struct {
		rec replay.Record
		lab label
	}
	var items []item
	starts := map[string]time.Time{}
	for ci, c := range campaigns {
		acct := accounts[ci]
		hist := byAccount[acct]
		sort.Slice(hist, func(i, j int) bool { return hist[i].Time.Before(hist[j].Time) })
		start := hist[len(hist)/2].Time.Add(time.Second)
		starts[acct] = start
		for m := 0; m < c.Messages; m++ {
			rec := replay.Record{Time: start.Add(time.Duration(m) * c.Every), Account: acct, Client: c.Client}
			if c.To != "" {
				rec.Recipients = []string{c.To}
			} else {
				for k := 0; k < c.Rcpts; k++ {
					rec.Recipients = append(rec.Recipients, fmt.Sprintf("victim%d.%d@%s.example", m, k, c.Name))
				}
			}
			items = append(items, item{rec, label{campaign: ci, index: m + 1, account: acct, rcpts: len(rec.Recipients)}})
		}
	}
	for _, r := range legit {
		s, ok := starts[r.Account]
		items = append(items, item{r, label{campaign: -1, account: r.Account, rcpts: len(r.Recipients), afterCampaignStart: ok && !r.Time.Before(s)}})
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
		camp[ci] = CampaignResult{Campaign: c.Name, Account: accounts[ci]}
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
		if st := store.AccountState(o.AccountState); st.Rank() >= store.AccountRestricted.Rank() {
			restricted[lab.account] = true
		}
	}
	res.LegitSenders = len(senders)
	res.LegitRestricted = len(restricted)
	res.Campaigns = camp
	return res, nil
}
