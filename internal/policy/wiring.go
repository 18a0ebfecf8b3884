package policy

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// Wiring records, for each Postfix smtpd service that asks (named by its
// server_address and server_port, Postfix 3.2 and later), which protocol
// states its requests arrive in. Where check_policy_service sits decides
// them: in smtpd_recipient_restrictions it is asked at RCPT (once per
// recipient), in smtpd_data_restrictions at DATA, in
// smtpd_end_of_data_restrictions at END-OF-MESSAGE. Most sites, and the
// documentation of every other policy server, wire it at RCPT only, so a
// policy server must not count on END-OF-MESSAGE arriving; Wiring lets the
// daemon say which stages each service really sends.
type Wiring struct {
	mu       sync.Mutex
	services map[string]*ServiceWiring
}

// maxWiringServices bounds the services remembered: a site has a handful
// (25, 465, 587, a re-injection port); a client cannot add any, since
// server_address names the MTA's own listener.
const maxWiringServices = 256

// rcptOnlyAfter is how many RCPT requests a service must have sent, with
// no DATA or END-OF-MESSAGE request, before it is called RCPT-only: more
// than one message can have (smtpd_recipient_limit, default 1000), so at
// least one whole message went by without END-OF-MESSAGE.
const rcptOnlyAfter = 1001

// ServiceWiring is what one smtpd service has sent.
type ServiceWiring struct {
	Service   string    `json:"service"` // "address:port", or "unknown" before Postfix 3.2
	RCPT      uint64    `json:"rcpt"`
	DATA      uint64    `json:"data"`
	EOM       uint64    `json:"end_of_message"`
	Other     uint64    `json:"other"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// Stages names the service's wiring from the states seen so far: a
// "+"-joined list of rcpt, data and eom, "rcpt-only" once enough RCPT
// requests came without any DATA or END-OF-MESSAGE, "pending" while too
// few requests have come to tell.
func (s ServiceWiring) Stages() string {
	if s.DATA == 0 && s.EOM == 0 {
		if s.RCPT >= rcptOnlyAfter {
			return "rcpt-only"
		}
		if s.RCPT == 0 {
			return "none"
		}
		return "pending"
	}
	var parts []string
	if s.RCPT > 0 {
		parts = append(parts, "rcpt")
	}
	if s.DATA > 0 {
		parts = append(parts, "data")
	}
	if s.EOM > 0 {
		parts = append(parts, "eom")
	}
	return strings.Join(parts, "+")
}

// WiringChange reports what an observation changed.
type WiringChange struct {
	// First: the service's first request.
	First bool
	// Changed: the service's Stages changed; From is the previous value.
	Changed bool
	From    string
	Now     ServiceWiring
}

// Observe records one request and reports what changed.
func (w *Wiring) Observe(req *Request, now time.Time) WiringChange {
	name := "unknown"
	if req.ServerAddress != "" && req.ServerPort != "" {
		name = req.ServerAddress + ":" + req.ServerPort
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.services == nil {
		w.services = map[string]*ServiceWiring{}
	}
	s := w.services[name]
	var ch WiringChange
	if s == nil {
		if len(w.services) >= maxWiringServices {
			name = "other"
			s = w.services[name]
		}
		if s == nil {
			s = &ServiceWiring{Service: name, FirstSeen: now}
			w.services[name] = s
			ch.First = true
		}
	}
	before := s.Stages()
	switch req.ProtocolState {
	case StateRcpt:
		s.RCPT++
	case StateData:
		s.DATA++
	case StateEndOfMessage:
		s.EOM++
	default:
		s.Other++
	}
	s.LastSeen = now
	ch.Now = *s
	if after := s.Stages(); after != before {
		ch.Changed, ch.From = true, before
	}
	return ch
}

// Services returns every service seen, ordered by name.
func (w *Wiring) Services() []ServiceWiring {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]ServiceWiring, 0, len(w.services))
	for _, s := range w.services {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b ServiceWiring) int { return strings.Compare(a.Service, b.Service) })
	return out
}
