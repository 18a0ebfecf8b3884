package ops

import (
	"sync"

	"github.com/mailbrake/mailbrake/internal/api"
)

// Verdicts keeps the last verdicts per account in memory (they are also
// in the log; holds are in the store). Bounded: perAccount records for at
// most maxAccounts accounts, the least recently seen forgotten first.
type Verdicts struct {
	mu    sync.Mutex
	m     map[string][]api.VerdictRecord
	order []string
}

const (
	verdictsPerAccount = 20
	verdictsAccounts   = 10000
)

// Add records a verdict.
func (v *Verdicts) Add(account string, r api.VerdictRecord) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = map[string][]api.VerdictRecord{}
	}
	rs, ok := v.m[account]
	if !ok {
		v.order = append(v.order, account)
		for len(v.order) > verdictsAccounts {
			delete(v.m, v.order[0])
			v.order = v.order[1:]
		}
	}
	rs = append(rs, r)
	if len(rs) > verdictsPerAccount {
		rs = rs[len(rs)-verdictsPerAccount:]
	}
	v.m[account] = rs
}

// Recent returns an account's recent verdicts, newest first.
func (v *Verdicts) Recent(account string) []api.VerdictRecord {
	v.mu.Lock()
	defer v.mu.Unlock()
	rs := v.m[account]
	out := make([]api.VerdictRecord, len(rs))
	for i, r := range rs {
		out[len(rs)-1-i] = r
	}
	return out
}
