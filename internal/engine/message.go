package engine

import (
	"hash/maphash"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// message is what the engine knows of one message across the protocol
// paths: the policy path's requests for it (RCPT, one per recipient, and
// END-OF-MESSAGE), tied together by Postfix's instance attribute, and the
// milter's end of message, tied to them by the queue ID or, when the policy
// path never learned the queue ID, by the SMTP client's address and port.
//
// Everything that must happen once per message is keyed by it: the charge
// to the account's counters (Key), the learners (once), the finding score,
// and the account the message is charged to (decided once, by the first
// path that could name it; see Engine.bind).
type message struct {
	mu sync.Mutex
	// key is the message's charge key, "i:<instance>" when the policy
	// path saw it first, else "q:<queue ID>". Fixed when created.
	key     string
	queueID string
	sender  string
	conn    string       // client address and port, "" when unknown
	seen    atomic.Int64 // unix nanoseconds of the last request

	// identity decided for the message; source "" until then.
	account string
	source  AccountSource

	// What the milter saw, to recognise the message when a content filter
	// hands it back (reinjectionOf): its direction, normalised Message-ID
	// and recipients (bounded; rcptsAll false when some were not kept),
	// and the recipients re-injected so far.
	direction  Direction
	messageID  string
	sent       []string
	sentAll    bool
	reinjected map[string]bool

	// policy RCPT bookkeeping: recipients accepted so far (bounded), their
	// count, and what was charged under key.
	rcpts         []string
	count         int
	chargedMsgs   int64
	chargedRcpts  int64
	claimedByMilt bool

	// learners' results, run once (nil until run).
	learned  []Finding
	novelty  *Novelty
	didLearn bool
	// scores of the findings acted on, by family (each family's highest):
	// the message's score is their sum, whichever paths reported them.
	scores map[Family]int64
}

// bookTTL: both paths decide one message within the SMTP transaction,
// well within Postfix's 300 s timeouts; a message is remembered at least
// this long while there is room.
const bookTTL = 10 * time.Minute

// maxBookPerShard bounds the remembered messages: a shard keeps two
// generations of up to this many index entries (32 shards × 2 × 2,048:
// the last 65,536 to 131,072 entries, each message using two or three, so
// 20 seconds of traffic at a thousand messages a second, minutes at a
// hundred — far longer than one SMTP transaction takes from its first
// RCPT to the milter's end of message). About 30 MiB at the bound.
const maxBookPerShard = 2048

const bookShards = 32

// bookShard is one shard of the message index. Keys are namespaced: "i:"
// instance, "q:" queue ID, "c:" client connection. Two generations of maps:
// entries go into cur; when cur is full it becomes prev. Nothing is deleted
// one by one, so the maps never fill with tombstones.
type bookShard struct {
	mu        sync.Mutex
	cur, prev map[string]*message
}

func (s *bookShard) get(k string, now time.Time) *message {
	m, ok := s.cur[k]
	if !ok {
		m, ok = s.prev[k]
	}
	if !ok {
		return nil
	}
	if now.UnixNano()-m.seen.Load() > int64(bookTTL) {
		return nil
	}
	return m
}

func (s *bookShard) put(k string, m *message) {
	if s.cur == nil || len(s.cur) >= maxBookPerShard {
		s.prev, s.cur = s.cur, make(map[string]*message, maxBookPerShard)
	}
	s.cur[k] = m
}

// book indexes in-flight messages.
type book struct {
	seed   maphash.Seed
	shards [bookShards]bookShard
}

func (b *book) shard(k string) *bookShard {
	return &b.shards[maphash.String(b.seed, k)%bookShards]
}

func (b *book) lookup(k string, now time.Time) *message {
	s := b.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.get(k, now)
}

// link points k at m unless k already names a live message; it returns
// the message k names afterwards.
func (b *book) link(k string, m *message, now time.Time, replace bool) *message {
	s := b.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.get(k, now); old != nil && !replace {
		return old
	}
	s.put(k, m)
	return m
}

// connKey names an SMTP client connection as both paths see it: the
// policy protocol's client_address and client_port (Postfix 3.0 and
// later), the milter's connect information.
func connKey(addr netip.Addr, port uint16) string {
	if !addr.IsValid() || port == 0 {
		return ""
	}
	// Binary, not AddrPort.String: formatting the address cost 2 µs a
	// request. As16 maps IPv4 and IPv4-mapped IPv6 to the same bytes.
	var b [2 + 16 + 2]byte
	b[0], b[1] = 'c', ':'
	a := addr.As16()
	copy(b[2:], a[:])
	b[18], b[19] = byte(port>>8), byte(port)
	return string(b[:])
}

// find returns the message record for sub, creating and indexing it. It
// returns nil when sub cannot be tied to a message (neither instance nor
// queue ID: replays, tests): such a submission is its own message.
func (b *book) find(sub *Submission) *message {
	now := sub.Time
	conn := connKey(sub.ClientAddress, sub.ClientPort)
	if sub.Path == PathMilter || sub.Instance == "" {
		if sub.QueueID == "" {
			return nil
		}
		qk := "q:" + sub.QueueID
		if m := b.lookup(qk, now); m != nil {
			m.touch(now)
			return m
		}
		// The policy path may have charged this message under its
		// instance before it knew the queue ID (a one-recipient message
		// wired at RCPT only): the same client connection, the same
		// sender, a message not yet claimed by another queue ID.
		if conn != "" && sub.Path == PathMilter {
			if m := b.lookup(conn, now); m != nil && m.claim(sub.QueueID, sub.Sender) {
				m.touch(now)
				return b.link(qk, m, now, false)
			}
		}
		m := &message{key: qk, queueID: strings.Clone(sub.QueueID), sender: strings.Clone(sub.Sender), conn: conn}
		m.touch(now)
		if sub.Path == PathMilter {
			m.claimedByMilt = true
		}
		return b.link(qk, m, now, false)
	}
	ik := "i:" + sub.Instance
	m := b.lookup(ik, now)
	if m == nil && sub.QueueID != "" {
		// The milter decided first and keyed it by queue ID.
		m = b.lookup("q:"+sub.QueueID, now)
	}
	if m == nil {
		m = &message{key: ik, sender: strings.Clone(sub.Sender), conn: conn}
	}
	m.touch(now)
	m = b.link(ik, m, now, false)
	m.mu.Lock()
	if sub.QueueID != "" && m.queueID == "" {
		m.queueID = strings.Clone(sub.QueueID)
	}
	qid := m.queueID
	m.mu.Unlock()
	if qid != "" {
		b.link("q:"+qid, m, now, false)
	}
	if conn != "" {
		// The latest transaction on this connection: the SMTP client
		// sends one message after the other on a connection.
		b.link(conn, m, now, true)
	}
	return m
}

func (m *message) touch(now time.Time) {
	m.seen.Store(now.UnixNano())
}

// claim ties a policy-path message found by its connection to the milter's
// queue ID: only a message the milter has not claimed, with no other queue
// ID and the same envelope sender.
func (m *message) claim(queueID, sender string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.claimedByMilt || (m.queueID != "" && m.queueID != queueID) || m.sender != sender {
		return false
	}
	m.claimedByMilt = true
	m.queueID = strings.Clone(queueID)
	return true
}

// sourceRank orders how much an account source knows: a SASL login beats
// the relay's header, which beats the envelope sender.
func sourceRank(s AccountSource) int {
	switch s {
	case SourceSASL:
		return 3
	case SourceHeader:
		return 2
	case SourceSender:
		return 1
	}
	return 0
}

// bind decides the message's identity once. The first path that names the
// account decides it; a later path with a weaker source (the milter
// without the SASL macros, say) takes the decided identity, so both paths,
// every counter, hold and incident name the same account. A later path
// with a stronger source replaces a guess (the envelope sender) and reports
// the account it replaced.
func (m *message) bind(sub *Submission) (replaced string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if sub.AccountSource == SourceUnauthenticated || sub.AccountSource == SourceRelayed {
		if m.source != "" {
			sub.Account, sub.AccountSource = m.account, m.source
		}
		return ""
	}
	switch {
	case m.source == "":
		// Cloned: sub's strings may share one buffer with the whole
		// request (the policy parser's), which the long-lived maps
		// keyed by account would otherwise keep alive.
		m.account, m.source = strings.Clone(sub.Account), sub.AccountSource
		sub.Account = m.account
	case sourceRank(sub.AccountSource) > sourceRank(m.source):
		if m.account != sub.Account {
			replaced = m.account
			// The new account is charged the whole message; the guess
			// keeps what it was charged.
			m.chargedMsgs, m.chargedRcpts = 0, 0
		}
		m.account, m.source = strings.Clone(sub.Account), sub.AccountSource
		sub.Account = m.account
	default:
		sub.Account, sub.AccountSource = m.account, m.source
	}
	return replaced
}

// noteRecipient records a recipient accepted at RCPT and returns how many
// the message has so far.
func (m *message) noteRecipient(rcpt string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.count++
	if len(m.rcpts) < maxTrackedRecipients {
		m.rcpts = append(m.rcpts, strings.Clone(rcpt))
	}
	return m.count
}

// countSoFar returns how many recipients were accepted at RCPT so far.
func (m *message) countSoFar() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.count
}

// chargedSoFar returns what the message has been charged so far.
func (m *message) chargedSoFar() (msgs, rcpts int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.chargedMsgs, m.chargedRcpts
}

// reserve records that the message amounts to msgs and rcpts so far and
// returns what that adds to what was charged before (never negative): the
// increments to charge. The message book, bounded, is what charges a
// message once across its RCPTs, its end of message and both protocol
// paths; the counters see increments only. A failed charge gives them
// back with unreserve.
func (m *message) reserve(msgs, rcpts int64) (dm, dr int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dm, dr = max(0, msgs-m.chargedMsgs), max(0, rcpts-m.chargedRcpts)
	m.chargedMsgs += dm
	m.chargedRcpts += dr
	return dm, dr
}

func (m *message) unreserve(dm, dr int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.chargedMsgs -= dm
	m.chargedRcpts -= dr
}

// recipients returns the recipients seen at RCPT.
func (m *message) recipients() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rcpts
}

// addScores merges this path's acted-on findings into the message's and
// returns the message's score by family.
func (m *message) addScores(fs []Finding) map[Family]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.scores == nil {
		m.scores = map[Family]int64{}
	}
	for fam, sc := range FamilyScores(fs) {
		m.scores[fam] = max(m.scores[fam], sc)
	}
	return maps.Clone(m.scores)
}

// remember keeps what the milter saw of the message for reinjectionOf.
func (m *message) remember(sub *Submission) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.direction = sub.Direction
	m.messageID = strings.Clone(normalizeMessageID(sub.MessageID))
	n := min(len(sub.Recipients), maxTrackedRecipients)
	m.sent = make([]string, n)
	for i := range n {
		m.sent[i] = strings.ToLower(sub.Recipients[i])
	}
	m.sentAll = n == sub.RecipientCount || (sub.RecipientCount == 0 && n == len(sub.Recipients))
}

// reinjectionOf returns the message that sub is a content filter's
// re-injection of, or nil: a message this engine saw named by one of sub's
// Received queue IDs, with the same envelope sender and Message-ID, whose
// recipients include sub's and were not re-injected before. A client
// cannot pass a new message off as a re-injection: it would have to name a
// queue ID seen here in the last minutes and could only repeat that
// message to recipients it already went to, once.
func (b *book) reinjectionOf(sub *Submission) *message {
	now := sub.Time
	mid := normalizeMessageID(sub.MessageID)
	for _, id := range sub.ReceivedIDs {
		if id == sub.QueueID {
			continue
		}
		m := b.lookup("q:"+id, now)
		if m == nil || !m.takeReinjection(sub.Sender, mid, sub.Recipients) {
			continue
		}
		return m
	}
	return nil
}

// directionOf returns the direction of the first pass of a message known
// to be re-injected (by its listener), from the book, or "".
func (b *book) directionOf(sub *Submission) Direction {
	for _, id := range sub.ReceivedIDs {
		if id == sub.QueueID {
			continue
		}
		if m := b.lookup("q:"+id, sub.Time); m != nil {
			m.mu.Lock()
			d := m.direction
			m.mu.Unlock()
			if d != "" {
				return d
			}
		}
	}
	return ""
}

// takeReinjection checks sub's envelope against the message and, when it
// fits, marks its recipients re-injected.
func (m *message) takeReinjection(sender, messageID string, rcpts []string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.sentAll || !strings.EqualFold(m.sender, sender) || (m.messageID != "" && m.messageID != messageID) || len(rcpts) == 0 {
		return false
	}
	for _, r := range rcpts {
		r = strings.ToLower(r)
		if !slices.Contains(m.sent, r) || m.reinjected[r] {
			return false
		}
	}
	if m.reinjected == nil {
		m.reinjected = map[string]bool{}
	}
	for _, r := range rcpts {
		m.reinjected[strings.ToLower(r)] = true
	}
	return true
}

// Expect tells the engine that a message it decided earlier is about to
// pass it again: a held message released to a content filter comes back
// through smtpd (the book forgets messages after minutes; a release may
// come days later). queueID is the held message's, the rest as recorded.
func (e *Engine) Expect(queueID, sender, messageID string, recipients []string, dir Direction, at time.Time) {
	if queueID == "" {
		return
	}
	m := &message{key: "q:" + queueID, queueID: queueID, sender: sender, claimedByMilt: true}
	m.touch(at)
	m.remember(&Submission{Direction: dir, MessageID: messageID, Recipients: recipients, RecipientCount: len(recipients)})
	e.book.link("q:"+queueID, m, at, true)
}

// normalizeMessageID trims the angle brackets and white space of a
// Message-ID and bounds it.
func normalizeMessageID(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">")
	if len(s) > 998 {
		s = s[:998]
	}
	return s
}
