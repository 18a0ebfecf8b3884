package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

// Backend is what a store backend must implement to run the suite.
type Backend interface {
	store.Quarantine
	store.Audit
	store.Snapshots
	store.Accounts
	store.Incidents
	store.Users
	store.Sessions
	store.Trust
	store.Retention
}

// Run runs the conformance suite. open must return a fresh, empty backend
// for each call and arrange its own cleanup (t.Cleanup); it is called once
// per subtest, from the subtest's goroutine.
func Run(t *testing.T, open func(t *testing.T) Backend) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"PutHoldAssignsIDs", testPutHoldAssignsIDs},
		{"Prune", testPrune},
		{"HoldRoundTrip", testHoldRoundTrip},
		{"PutHoldDefaults", testPutHoldDefaults},
		{"PutHoldInvalidState", testPutHoldInvalidState},
		{"ReasonsDeduplicated", testReasonsDeduplicated},
		{"MergeByQueueID", testMergeByQueueID},
		{"MergeFillsEmptyFields", testMergeFillsEmptyFields},
		{"QueueIDReuse", testQueueIDReuse},
		{"Accounts", testAccounts},
		{"DifferentQueueIDsSeparate", testDifferentQueueIDsSeparate},
		{"EmptyQueueIDNeverMerges", testEmptyQueueIDNeverMerges},
		{"NotFound", testNotFound},
		{"ListHoldsOrderAndFilters", testListHoldsOrderAndFilters},
		{"ListHoldsLimitOffset", testListHoldsLimitOffset},
		{"ListHoldsDefaultLimit", testListHoldsDefaultLimit},
		{"SetHoldState", testSetHoldState},
		{"SetHoldStateInvalid", testSetHoldStateInvalid},
		{"TimesUTCMillisecond", testTimes},
		{"Audit", testAudit},
		{"AuditFilters", testAuditFilters},
		{"Snapshots", testSnapshots},
		{"ConcurrentPutHoldSameQueueID", testConcurrentPutHoldSameQueueID},
		{"ConcurrentPutHoldDistinct", testConcurrentPutHoldDistinct},
		{"Incidents", testIncidents},
		{"OpenIncidentsBatch", testOpenIncidentsBatch},
		{"IncidentStates", testIncidentStates},
		{"ConcurrentOpenIncident", testConcurrentOpenIncident},
		{"UsersAndTokens", testUsersAndTokens},
		{"Sessions", testSessions},
		{"ListHoldsSearch", testListHoldsSearch},
		{"Trust", testTrust},
		{"PutHoldsBatch", testPutHoldsBatch},
		{"AppendAudits", testAppendAudits},
		{"HoldNode", testHoldNode},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// base is the reference time of the suite. It has nanoseconds and a
// non-UTC zone on purpose: backends must return UTC and keep at least
// milliseconds.
var base = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.FixedZone("CET", 3600))

// at returns base plus n minutes.
func at(n int) time.Time { return base.Add(time.Duration(n) * time.Minute) }

// sampleHold returns a hold with every field set.
func sampleHold(queueID string) *store.Hold {
	return &store.Hold{
		QueueID:        queueID,
		Path:           "policy",
		Account:        "alice@example.org",
		Sender:         "alice@example.org",
		Recipients:     []string{"bob@example.net", "carol@example.com"},
		RecipientCount: 2,
		Subject:        "Quarterly report",
		Client:         "Mozilla Thunderbird 128.0",
		ClientFamily:   "thunderbird",
		ClientAddress:  "192.0.2.10",
		Reasons:        []string{"rate-recipients", "new-client"},
		Size:           4096,
		Headers:        "From: alice@example.org\r\nTo: bob@example.net\r\n",
		Preview:        "Please find attached",
		HeldAt:         base,
		State:          store.HoldHeld,
		StateAt:        base,
	}
}

func put(t *testing.T, b Backend, h *store.Hold) *store.Hold {
	t.Helper()
	got, err := b.PutHold(t.Context(), h)
	if err != nil {
		t.Fatalf("PutHold(%q): %v", h.QueueID, err)
	}
	if got == nil {
		t.Fatalf("PutHold(%q) returned nil record", h.QueueID)
	}
	return got
}

func get(t *testing.T, b Backend, id int64) *store.Hold {
	t.Helper()
	got, err := b.GetHold(t.Context(), id)
	if err != nil {
		t.Fatalf("GetHold(%d): %v", id, err)
	}
	return got
}

func list(t *testing.T, b Backend, f store.HoldFilter) []store.Hold {
	t.Helper()
	got, err := b.ListHolds(t.Context(), f)
	if err != nil {
		t.Fatalf("ListHolds(%+v): %v", f, err)
	}
	return got
}

func ids(hs []store.Hold) []int64 {
	out := make([]int64, len(hs))
	for i, h := range hs {
		out[i] = h.ID
	}
	return out
}

// sameTime reports how got differs from want, or "" when got is in UTC and
// within a millisecond of want (a backend may truncate or round).
func sameTime(got, want time.Time) string {
	if got.Location() != time.UTC {
		return fmt.Sprintf("%v is not in UTC (location %q)", got, got.Location())
	}
	if d := got.Sub(want).Abs(); d >= time.Millisecond {
		return fmt.Sprintf("%v, want %v (off by %v)", got, want.UTC(), d)
	}
	return ""
}

// diffHold lists the fields in which got differs from want. IDs are not
// compared. Empty and nil slices are equal.
func diffHold(got, want *store.Hold) []string {
	var d []string
	str := func(name, g, w string) {
		if g != w {
			d = append(d, fmt.Sprintf("%s = %q, want %q", name, g, w))
		}
	}
	str("QueueID", got.QueueID, want.QueueID)
	str("Path", got.Path, want.Path)
	str("Account", got.Account, want.Account)
	str("Sender", got.Sender, want.Sender)
	str("Subject", got.Subject, want.Subject)
	str("Client", got.Client, want.Client)
	str("ClientFamily", got.ClientFamily, want.ClientFamily)
	str("ClientAddress", got.ClientAddress, want.ClientAddress)
	str("Headers", got.Headers, want.Headers)
	str("Preview", got.Preview, want.Preview)
	str("State", string(got.State), string(want.State))
	str("StateBy", got.StateBy, want.StateBy)
	str("Node", got.Node, want.Node)
	if !slices.Equal(got.Recipients, want.Recipients) {
		d = append(d, fmt.Sprintf("Recipients = %q, want %q", got.Recipients, want.Recipients))
	}
	if !slices.Equal(got.Reasons, want.Reasons) {
		d = append(d, fmt.Sprintf("Reasons = %q, want %q", got.Reasons, want.Reasons))
	}
	if !slices.Equal(got.Prints, want.Prints) {
		d = append(d, fmt.Sprintf("Prints = %q, want %q", got.Prints, want.Prints))
	}
	if got.RecipientCount != want.RecipientCount {
		d = append(d, fmt.Sprintf("RecipientCount = %d, want %d", got.RecipientCount, want.RecipientCount))
	}
	if got.Size != want.Size {
		d = append(d, fmt.Sprintf("Size = %d, want %d", got.Size, want.Size))
	}
	if s := sameTime(got.HeldAt, want.HeldAt); s != "" {
		d = append(d, "HeldAt = "+s)
	}
	if s := sameTime(got.StateAt, want.StateAt); s != "" {
		d = append(d, "StateAt = "+s)
	}
	return d
}

func checkHold(t *testing.T, what string, got, want *store.Hold) {
	t.Helper()
	for _, d := range diffHold(got, want) {
		t.Errorf("%s: %s", what, d)
	}
}

func testPutHoldAssignsIDs(t *testing.T, b Backend) {
	in1, in2 := sampleHold("4Q1ABC"), sampleHold("4Q2DEF")
	in1.ID, in2.ID = 777, 777 // ignored
	h1, h2 := put(t, b, in1), put(t, b, in2)
	if h1.ID <= 0 || h2.ID <= 0 {
		t.Fatalf("IDs = %d, %d; want positive", h1.ID, h2.ID)
	}
	if h1.ID == h2.ID {
		t.Fatalf("two holds got the same ID %d", h1.ID)
	}
	if in1.ID != 777 || in2.ID != 777 {
		t.Errorf("PutHold modified its argument's ID: %d, %d", in1.ID, in2.ID)
	}
	for _, h := range []*store.Hold{h1, h2} {
		got := get(t, b, h.ID)
		if got.ID != h.ID {
			t.Errorf("GetHold(%d).ID = %d", h.ID, got.ID)
		}
		checkHold(t, fmt.Sprintf("GetHold(%d)", h.ID), got, h)
	}
}

func testHoldRoundTrip(t *testing.T, b Backend) {
	want := &store.Hold{
		QueueID:    "4VxKq71c2Pz9kQ", // a long queue ID
		Path:       "milter",
		Account:    "jürgen@bücher.example",
		Sender:     "jürgen@bücher.example",
		Recipients: []string{"用户@例子.广告", `"odd, local"@example.org`, `back\slash@example.org`, "emoji-😀@example.org", ""},
		// RecipientCount deliberately differs from len(Recipients): the
		// store keeps what it is given (the list may be truncated).
		RecipientCount: 250,
		Subject:        "Ünïcødé — \"quoted\" 'single' \\ \t tab, 日本語",
		Client:         "Microsoft Outlook 16.0",
		ClientFamily:   "outlook",
		ClientAddress:  "2001:db8::1",
		Reasons:        []string{"bulk-from-scripted-client", "räson-ünicode", "reason with spaces", `"quoted"`},
		Size:           1 << 40,
		Headers:        "Subject: =?UTF-8?B?w5xuaWNvZGU=?=\r\nX-Mailer: test\r\n\r\n",
		Preview:        "Zeile 1\nZeile 2 — ✓",
		Prints:         []string{"text:123456789abcdef", "links:fedcba9876543210"},
		HeldAt:         base,
		State:          store.HoldHeld,
		StateAt:        base.Add(time.Second),
		StateBy:        "postfix",
	}
	h := put(t, b, want)
	checkHold(t, "PutHold result", h, want)
	checkHold(t, "GetHold", get(t, b, h.ID), want)

	byQ, err := b.HoldByQueueID(t.Context(), want.QueueID)
	if err != nil {
		t.Fatalf("HoldByQueueID: %v", err)
	}
	if byQ.ID != h.ID {
		t.Errorf("HoldByQueueID ID = %d, want %d", byQ.ID, h.ID)
	}
	checkHold(t, "HoldByQueueID", byQ, want)

	l := list(t, b, store.HoldFilter{})
	if len(l) != 1 {
		t.Fatalf("ListHolds returned %d holds, want 1", len(l))
	}
	if l[0].ID != h.ID {
		t.Errorf("ListHolds[0].ID = %d, want %d", l[0].ID, h.ID)
	}
	checkHold(t, "ListHolds[0]", &l[0], want)

	// Empty slices and strings survive too.
	empty := &store.Hold{QueueID: "4EMPTY", HeldAt: base, State: store.HoldHeld, StateAt: base}
	e := put(t, b, empty)
	checkHold(t, "empty hold", get(t, b, e.ID), empty)
}

func testPutHoldDefaults(t *testing.T, b Backend) {
	in := sampleHold("4DEF")
	in.State = ""
	in.StateAt = time.Time{}
	h := put(t, b, in)
	if in.State != "" || !in.StateAt.IsZero() {
		t.Errorf("PutHold modified its argument: State=%q StateAt=%v", in.State, in.StateAt)
	}
	got := get(t, b, h.ID)
	if got.State != store.HoldHeld {
		t.Errorf("State = %q, want %q for an empty state", got.State, store.HoldHeld)
	}
	if s := sameTime(got.StateAt, in.HeldAt); s != "" {
		t.Errorf("StateAt = %s (a zero StateAt is set to HeldAt)", s)
	}
}

func testPutHoldInvalidState(t *testing.T, b Backend) {
	in := sampleHold("4BAD")
	in.State = "quarantined"
	_, err := b.PutHold(t.Context(), in)
	if err == nil {
		t.Fatal("PutHold with an unknown state succeeded")
	}
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		t.Errorf("PutHold with an unknown state: %v; want a validation error", err)
	}
	if l := list(t, b, store.HoldFilter{}); len(l) != 0 {
		t.Errorf("a rejected hold was stored: %d holds", len(l))
	}
}

func testReasonsDeduplicated(t *testing.T, b Backend) {
	in := sampleHold("4DUP")
	in.Reasons = []string{"b", "a", "b", "c", "a"}
	h := put(t, b, in)
	want := []string{"b", "a", "c"}
	if !slices.Equal(h.Reasons, want) {
		t.Errorf("PutHold Reasons = %q, want %q", h.Reasons, want)
	}
	if got := get(t, b, h.ID).Reasons; !slices.Equal(got, want) {
		t.Errorf("GetHold Reasons = %q, want %q", got, want)
	}
}

func testMergeByQueueID(t *testing.T, b Backend) {
	// The policy path holds first, with what it knows at RCPT time.
	first := &store.Hold{
		QueueID:        "4MERGE1",
		Path:           "policy",
		Account:        "alice@example.org",
		Sender:         "alice@example.org",
		Recipients:     []string{"r1@example.net"},
		RecipientCount: 1,
		ClientAddress:  "192.0.2.10",
		Reasons:        []string{"rate-recipients", "new-client"},
		HeldAt:         at(0),
		State:          store.HoldHeld,
		StateAt:        at(0),
	}
	h1 := put(t, b, first)

	// The milter path then holds the same message with the full view.
	second := &store.Hold{
		QueueID:        "4MERGE1",
		Path:           "milter",
		Account:        "mallory@example.org", // differs: the first one stays
		Sender:         "other@example.org",
		Recipients:     []string{"r1@example.net", "r2@example.net"},
		RecipientCount: 2,
		Subject:        "Invoice",
		Client:         "PHPMailer 6.9",
		ClientFamily:   "phpmailer",
		ClientAddress:  "198.51.100.7",
		Reasons:        []string{"new-client", "bulk-from-scripted-client", "rate-recipients", "suspicious-subject"},
		Size:           2048,
		Headers:        "Subject: Invoice\r\n",
		Preview:        "pay now",
		Prints:         []string{"text:aa"},
		HeldAt:         at(1),
		State:          store.HoldHeld,
		StateAt:        at(1),
		StateBy:        "milter",
	}
	h2 := put(t, b, second)
	if h2.ID != h1.ID {
		t.Fatalf("second PutHold with the same queue id got ID %d, want %d (merged)", h2.ID, h1.ID)
	}
	want := &store.Hold{
		QueueID:        "4MERGE1",
		Path:           "policy",
		Account:        "alice@example.org",
		Sender:         "alice@example.org",
		Recipients:     []string{"r1@example.net"},
		RecipientCount: 1,
		Subject:        "Invoice",
		Client:         "PHPMailer 6.9",
		ClientFamily:   "phpmailer",
		ClientAddress:  "192.0.2.10",
		Reasons:        []string{"rate-recipients", "new-client", "bulk-from-scripted-client", "suspicious-subject"},
		Size:           2048,
		Headers:        "Subject: Invoice\r\n",
		Preview:        "pay now",
		Prints:         []string{"text:aa"}, // only the milter path sees content
		HeldAt:         at(0),
		State:          store.HoldHeld,
		StateAt:        at(0),
		StateBy:        "", // a state field: never taken from a merge
	}
	checkHold(t, "merged PutHold result", h2, want)
	checkHold(t, "merged GetHold", get(t, b, h1.ID), want)
	if l := list(t, b, store.HoldFilter{}); len(l) != 1 {
		t.Errorf("ListHolds after merge returned %d holds, want 1", len(l))
	}

	// A third hold of the same message adds nothing new: no duplicates.
	h3 := put(t, b, &store.Hold{QueueID: "4MERGE1", Reasons: []string{"suspicious-subject", "new-client"}, HeldAt: at(2)})
	if h3.ID != h1.ID {
		t.Fatalf("third PutHold got ID %d, want %d", h3.ID, h1.ID)
	}
	checkHold(t, "after third PutHold", get(t, b, h1.ID), want)
}

func testMergeFillsEmptyFields(t *testing.T, b Backend) {
	full := sampleHold("")
	type field struct {
		name  string
		clear func(h *store.Hold) // makes the field empty
	}
	fields := []field{
		{"Path", func(h *store.Hold) { h.Path = "" }},
		{"Account", func(h *store.Hold) { h.Account = "" }},
		{"Sender", func(h *store.Hold) { h.Sender = "" }},
		{"Recipients", func(h *store.Hold) { h.Recipients = nil }},
		{"RecipientCount", func(h *store.Hold) { h.RecipientCount = 0 }},
		{"Subject", func(h *store.Hold) { h.Subject = "" }},
		{"Client", func(h *store.Hold) { h.Client = "" }},
		{"ClientFamily", func(h *store.Hold) { h.ClientFamily = "" }},
		{"ClientAddress", func(h *store.Hold) { h.ClientAddress = "" }},
		{"Reasons", func(h *store.Hold) { h.Reasons = nil }},
		{"Size", func(h *store.Hold) { h.Size = 0 }},
		{"Headers", func(h *store.Hold) { h.Headers = "" }},
		{"Preview", func(h *store.Hold) { h.Preview = "" }},
	}
	for i, f := range fields {
		t.Run(f.name, func(t *testing.T) {
			qid := fmt.Sprintf("4FILL%02d", i)
			// Empty in the first record, set in the second: filled.
			first := *full
			first.QueueID = qid
			f.clear(&first)
			second := *full
			second.QueueID = qid
			h1 := put(t, b, &first)
			h2 := put(t, b, &second)
			if h2.ID != h1.ID {
				t.Fatalf("not merged: IDs %d and %d", h1.ID, h2.ID)
			}
			want := *full
			want.QueueID = qid
			checkHold(t, "filled", get(t, b, h1.ID), &want)

			// Set in the first record, empty in the second: kept.
			qid += "K"
			first = *full
			first.QueueID = qid
			second = *full
			second.QueueID = qid
			f.clear(&second)
			h1 = put(t, b, &first)
			put(t, b, &second)
			want.QueueID = qid
			checkHold(t, "kept", get(t, b, h1.ID), &want)
		})
	}
}

// testQueueIDReuse: Postfix reuses short queue IDs once a queue file is
// gone, so only a hold that is still held merges; a later message with the
// same ID is a new record, and HoldByQueueID returns the newest.
func testQueueIDReuse(t *testing.T, b Backend) {
	h := put(t, b, sampleHold("4STATE"))
	if err := b.SetHoldState(t.Context(), h.ID, store.HoldHeld, store.HoldReleased, "api:alice", at(5)); err != nil {
		t.Fatalf("SetHoldState: %v", err)
	}
	again := sampleHold("4STATE")
	again.Reasons = []string{"late-reason"}
	m := put(t, b, again)
	if m.ID == h.ID {
		t.Fatalf("a new message with a reused queue id merged into released hold %d", h.ID)
	}
	if m.State != store.HoldHeld {
		t.Errorf("new hold state = %q", m.State)
	}
	got := get(t, b, h.ID)
	if got.State != store.HoldReleased || got.StateBy != "api:alice" {
		t.Errorf("old hold changed: state = %q by %q", got.State, got.StateBy)
	}
	if want := []string{"rate-recipients", "new-client"}; !slices.Equal(got.Reasons, want) {
		t.Errorf("old hold reasons = %q, want %q", got.Reasons, want)
	}
	byQ, err := b.HoldByQueueID(t.Context(), "4STATE")
	if err != nil || byQ.ID != m.ID {
		t.Fatalf("HoldByQueueID = %v, %v; want the newest hold %d", byQ, err, m.ID)
	}
}

func testDifferentQueueIDsSeparate(t *testing.T, b Backend) {
	a := sampleHold("4AAAA")
	a.Reasons = []string{"r-a"}
	c := sampleHold("4CCCC")
	c.Reasons = []string{"r-c"}
	ha, hc := put(t, b, a), put(t, b, c)
	if ha.ID == hc.ID {
		t.Fatalf("different queue ids share ID %d", ha.ID)
	}
	for _, tc := range []struct {
		qid     string
		id      int64
		reasons []string
	}{{"4AAAA", ha.ID, []string{"r-a"}}, {"4CCCC", hc.ID, []string{"r-c"}}} {
		got, err := b.HoldByQueueID(t.Context(), tc.qid)
		if err != nil {
			t.Fatalf("HoldByQueueID(%q): %v", tc.qid, err)
		}
		if got.ID != tc.id || !slices.Equal(got.Reasons, tc.reasons) {
			t.Errorf("HoldByQueueID(%q) = ID %d reasons %q, want ID %d reasons %q", tc.qid, got.ID, got.Reasons, tc.id, tc.reasons)
		}
	}
	// Queue IDs are compared exactly (Postfix queue IDs are case-sensitive).
	lower := sampleHold("4aaaa")
	if hl := put(t, b, lower); hl.ID == ha.ID {
		t.Errorf("queue id %q merged into %q", "4aaaa", "4AAAA")
	}
	if n := len(list(t, b, store.HoldFilter{})); n != 3 {
		t.Errorf("ListHolds returned %d holds, want 3", n)
	}
}

func testEmptyQueueIDNeverMerges(t *testing.T, b Backend) {
	x := sampleHold("")
	x.Reasons = []string{"r-x"}
	y := sampleHold("")
	y.Reasons = []string{"r-y"}
	hx, hy := put(t, b, x), put(t, b, y)
	if hx.ID == hy.ID {
		t.Fatalf("two holds without queue id merged into ID %d", hx.ID)
	}
	if got := get(t, b, hx.ID).Reasons; !slices.Equal(got, []string{"r-x"}) {
		t.Errorf("first Reasons = %q, want [r-x]", got)
	}
	if got := get(t, b, hy.ID).Reasons; !slices.Equal(got, []string{"r-y"}) {
		t.Errorf("second Reasons = %q, want [r-y]", got)
	}
	if _, err := b.HoldByQueueID(t.Context(), ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("HoldByQueueID(\"\") error = %v, want ErrNotFound", err)
	}
}

func testNotFound(t *testing.T, b Backend) {
	h := put(t, b, sampleHold("4EXISTS"))
	missing := h.ID + 1000
	if got, err := b.GetHold(t.Context(), missing); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetHold(missing) = %v, %v; want ErrNotFound", got, err)
	}
	if got, err := b.HoldByQueueID(t.Context(), "4MISSING"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("HoldByQueueID(missing) = %v, %v; want ErrNotFound", got, err)
	}
	err := b.SetHoldState(t.Context(), missing, store.HoldHeld, store.HoldReleased, "api:alice", at(1))
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetHoldState(missing) = %v, want ErrNotFound", err)
	}
	if errors.Is(err, store.ErrConflict) {
		t.Errorf("SetHoldState(missing) = %v, is also ErrConflict", err)
	}
}

func testListHoldsOrderAndFilters(t *testing.T, b Backend) {
	// Inserted out of time order; two share a HeldAt.
	type spec struct {
		qid     string
		account string
		minute  int
		state   store.HoldState
	}
	specs := []spec{
		{"4L1", "a@example.org", 3, store.HoldHeld},
		{"4L2", "b@example.org", 1, store.HoldReleased},
		{"4L3", "a@example.org", 5, store.HoldDeleted},
		{"4L4", "b@example.org", 2, store.HoldHeld},
		{"4L5", "a@example.org", 4, store.HoldReleased},
		{"4L6", "a@example.org", 3, store.HoldHeld}, // same HeldAt as 4L1, inserted later
		{"4L7", "c@example.org", 0, store.HoldExpired},
	}
	byQID := map[string]*store.Hold{}
	for _, s := range specs {
		h := sampleHold(s.qid)
		h.Account = s.account
		h.HeldAt = at(s.minute)
		h.StateAt = at(s.minute)
		stored := put(t, b, h)
		if s.state != store.HoldHeld {
			if err := b.SetHoldState(t.Context(), stored.ID, store.HoldHeld, s.state, "test", at(10)); err != nil {
				t.Fatalf("SetHoldState(%s): %v", s.qid, err)
			}
		}
		byQID[s.qid] = stored
	}
	want := func(qids ...string) []int64 {
		out := make([]int64, len(qids))
		for i, q := range qids {
			out[i] = byQID[q].ID
		}
		return out
	}
	tests := []struct {
		name string
		f    store.HoldFilter
		want []int64
	}{
		{"all", store.HoldFilter{}, want("4L3", "4L5", "4L6", "4L1", "4L4", "4L2", "4L7")},
		{"held", store.HoldFilter{State: store.HoldHeld}, want("4L6", "4L1", "4L4")},
		{"released", store.HoldFilter{State: store.HoldReleased}, want("4L5", "4L2")},
		{"expired", store.HoldFilter{State: store.HoldExpired}, want("4L7")},
		{"account a", store.HoldFilter{Account: "a@example.org"}, want("4L3", "4L5", "4L6", "4L1")},
		{"account b held", store.HoldFilter{Account: "b@example.org", State: store.HoldHeld}, want("4L4")},
		{"account a expired", store.HoldFilter{Account: "a@example.org", State: store.HoldExpired}, nil},
		{"unknown account", store.HoldFilter{Account: "nobody@example.org"}, nil},
		{"account is exact", store.HoldFilter{Account: "A@example.org"}, nil},
		{"held through an ID", store.HoldFilter{State: store.HoldHeld, Through: byQID["4L4"].ID}, want("4L1", "4L4")},
		{"account a through an ID", store.HoldFilter{Account: "a@example.org", Through: byQID["4L5"].ID}, want("4L3", "4L5", "4L1")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := list(t, b, tc.f)
			if !slices.Equal(ids(got), tc.want) {
				t.Errorf("ListHolds(%+v) IDs = %v, want %v", tc.f, ids(got), tc.want)
			}
			// CountHolds counts what ListHolds lists, whatever the page.
			paged := tc.f
			paged.Limit, paged.Offset = 1, 1
			c, err := b.CountHolds(t.Context(), paged)
			if err != nil {
				t.Fatalf("CountHolds(%+v): %v", paged, err)
			}
			newest := int64(0)
			for _, id := range tc.want {
				newest = max(newest, id)
			}
			if c.N != len(tc.want) || c.Newest != newest {
				t.Errorf("CountHolds(%+v) = %+v, want %d holds, newest %d", tc.f, c, len(tc.want), newest)
			}
			for _, h := range got {
				if tc.f.State != "" && h.State != tc.f.State {
					t.Errorf("hold %d has state %q, filter %q", h.ID, h.State, tc.f.State)
				}
				if tc.f.Account != "" && h.Account != tc.f.Account {
					t.Errorf("hold %d has account %q, filter %q", h.ID, h.Account, tc.f.Account)
				}
			}
		})
	}
}

func testListHoldsLimitOffset(t *testing.T, b Backend) {
	for i := range 7 {
		h := sampleHold(fmt.Sprintf("4P%d", i))
		h.HeldAt = at(i)
		put(t, b, h)
	}
	all := ids(list(t, b, store.HoldFilter{}))
	if len(all) != 7 {
		t.Fatalf("ListHolds returned %d, want 7", len(all))
	}
	var paged []int64
	for off := 0; off < 10; off += 3 {
		page := ids(list(t, b, store.HoldFilter{Limit: 3, Offset: off}))
		wantLen := min(3, max(0, 7-off))
		if len(page) != wantLen {
			t.Errorf("page at offset %d has %d holds, want %d", off, len(page), wantLen)
		}
		paged = append(paged, page...)
	}
	if !slices.Equal(paged, all) {
		t.Errorf("pages joined = %v, want %v", paged, all)
	}
	if got := list(t, b, store.HoldFilter{Offset: 7}); len(got) != 0 {
		t.Errorf("offset past the end returned %d holds", len(got))
	}
	if got := ids(list(t, b, store.HoldFilter{Limit: 1, Offset: 6})); !slices.Equal(got, all[6:]) {
		t.Errorf("Limit 1 Offset 6 = %v, want %v", got, all[6:])
	}
}

func testListHoldsDefaultLimit(t *testing.T, b Backend) {
	const n = 105
	for i := range n {
		h := sampleHold(fmt.Sprintf("4D%03d", i))
		h.HeldAt = base.Add(time.Duration(i) * time.Second)
		put(t, b, h)
	}
	def := list(t, b, store.HoldFilter{})
	if len(def) != 100 {
		t.Fatalf("ListHolds with Limit 0 returned %d holds, want the default 100", len(def))
	}
	if def[0].QueueID != "4D104" || def[99].QueueID != "4D005" {
		t.Errorf("default page runs %s..%s, want 4D104..4D005", def[0].QueueID, def[99].QueueID)
	}
	if got := list(t, b, store.HoldFilter{Limit: 200}); len(got) != n {
		t.Errorf("Limit 200 returned %d holds, want %d", len(got), n)
	}
	rest := list(t, b, store.HoldFilter{Offset: 100})
	if len(rest) != 5 || rest[0].QueueID != "4D004" || rest[4].QueueID != "4D000" {
		t.Errorf("Offset 100 returned %d holds (%v), want 4D004..4D000", len(rest), ids(rest))
	}
}

func testSetHoldState(t *testing.T, b Backend) {
	orig := put(t, b, sampleHold("4SET"))
	ctx := t.Context()

	if err := b.SetHoldState(ctx, orig.ID, store.HoldHeld, store.HoldReleased, "api:alice", at(7)); err != nil {
		t.Fatalf("held→released: %v", err)
	}
	want := *orig
	want.State, want.StateAt, want.StateBy = store.HoldReleased, at(7), "api:alice"
	checkHold(t, "after release", get(t, b, orig.ID), &want)

	// The from state no longer matches: conflict, nothing changes.
	err := b.SetHoldState(ctx, orig.ID, store.HoldHeld, store.HoldDeleted, "cli:root", at(8))
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("held→deleted on a released hold = %v, want ErrConflict", err)
	}
	if errors.Is(err, store.ErrNotFound) {
		t.Errorf("conflict error %v is also ErrNotFound", err)
	}
	checkHold(t, "after conflict", get(t, b, orig.ID), &want)

	if err := b.SetHoldState(ctx, orig.ID, store.HoldReleased, store.HoldDeleted, "postfix", at(9)); err != nil {
		t.Fatalf("released→deleted: %v", err)
	}
	want.State, want.StateAt, want.StateBy = store.HoldDeleted, at(9), "postfix"
	checkHold(t, "after delete", get(t, b, orig.ID), &want)

	// Only the addressed hold changes.
	other := put(t, b, sampleHold("4OTHER"))
	checkHold(t, "untouched hold", get(t, b, other.ID), sampleHold("4OTHER"))
}

func testSetHoldStateInvalid(t *testing.T, b Backend) {
	h := put(t, b, sampleHold("4INV"))
	err := b.SetHoldState(t.Context(), h.ID, store.HoldHeld, "gone", "api:alice", at(3))
	if err == nil {
		t.Fatal("SetHoldState to an unknown state succeeded")
	}
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		t.Errorf("SetHoldState to an unknown state = %v; want a validation error", err)
	}
	checkHold(t, "after invalid SetHoldState", get(t, b, h.ID), h)
}

func testTimes(t *testing.T, b Backend) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		ny = time.FixedZone("EST", -5*3600)
	}
	times := []time.Time{
		base,
		time.Date(2030, 12, 31, 23, 59, 59, 999_000_000, ny), // sub-second, crosses a year in UTC
		time.Date(2024, 2, 29, 0, 0, 0, 1_000_000, time.UTC), // exactly one millisecond
		time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i, tm := range times {
		h := sampleHold(fmt.Sprintf("4T%d", i))
		h.HeldAt = tm
		h.StateAt = tm.Add(250 * time.Millisecond)
		stored := put(t, b, h)
		got := get(t, b, stored.ID)
		if s := sameTime(got.HeldAt, tm); s != "" {
			t.Errorf("HeldAt: %s", s)
		}
		if s := sameTime(got.StateAt, h.StateAt); s != "" {
			t.Errorf("StateAt: %s", s)
		}
		when := tm.Add(time.Hour)
		if err := b.SetHoldState(t.Context(), stored.ID, store.HoldHeld, store.HoldExpired, "system", when); err != nil {
			t.Fatalf("SetHoldState: %v", err)
		}
		if s := sameTime(get(t, b, stored.ID).StateAt, when); s != "" {
			t.Errorf("StateAt after SetHoldState: %s", s)
		}

		if err := b.AppendAudit(t.Context(), store.AuditEntry{Time: tm, Actor: "system", Action: "time-test", Target: fmt.Sprintf("t:%d", i)}); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
		es, err := b.ListAudit(t.Context(), store.AuditFilter{Target: fmt.Sprintf("t:%d", i)})
		if err != nil || len(es) != 1 {
			t.Fatalf("ListAudit = %d entries, %v; want 1", len(es), err)
		}
		if s := sameTime(es[0].Time, tm); s != "" {
			t.Errorf("audit Time: %s", s)
		}
	}
}

func testAudit(t *testing.T, b Backend) {
	ctx := t.Context()
	if es, err := b.ListAudit(ctx, store.AuditFilter{}); err != nil || len(es) != 0 {
		t.Fatalf("ListAudit on an empty store = %d entries, %v", len(es), err)
	}
	in := []store.AuditEntry{
		{ID: 99, Time: at(0), Actor: "system", Action: "quarantine-hold", Target: "hold:1", Detail: "reasons=rate-recipients"},
		{Time: at(2), Actor: "api:jürgen", Action: "quarantine-release", Target: "hold:1", Detail: "Grund: „Freigabe“ ✓"},
		{Time: at(1), Actor: "cli:root", Action: "account-lock", Target: "account:u@example.org"},
		{Time: at(2), Actor: "postfix", Action: "quarantine-delete", Target: "hold:2", Detail: "line1\nline2"},
	}
	for _, e := range in {
		if err := b.AppendAudit(ctx, e); err != nil {
			t.Fatalf("AppendAudit(%+v): %v", e, err)
		}
	}
	got, err := b.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatalf("ListAudit: %v", err)
	}
	// Newest first; the two entries at minute 2 in reverse append order.
	want := []store.AuditEntry{in[3], in[1], in[2], in[0]}
	if len(got) != len(want) {
		t.Fatalf("ListAudit returned %d entries, want %d", len(got), len(want))
	}
	seen := map[int64]bool{}
	for i := range want {
		g, w := got[i], want[i]
		if g.ID <= 0 || seen[g.ID] {
			t.Errorf("entry %d has ID %d; want positive and unique", i, g.ID)
		}
		seen[g.ID] = true
		if g.Actor != w.Actor || g.Action != w.Action || g.Target != w.Target || g.Detail != w.Detail {
			t.Errorf("entry %d = %q %q %q %q, want %q %q %q %q", i, g.Actor, g.Action, g.Target, g.Detail, w.Actor, w.Action, w.Target, w.Detail)
		}
		if s := sameTime(g.Time, w.Time); s != "" {
			t.Errorf("entry %d Time = %s", i, s)
		}
	}
	// Append order shows in the IDs: the later append has the higher ID.
	if got[0].ID <= got[1].ID {
		t.Errorf("IDs of entries appended later are not higher: %d then %d", got[1].ID, got[0].ID)
	}
}

func testAuditFilters(t *testing.T, b Backend) {
	ctx := t.Context()
	// Twelve entries, one a minute, alternating two targets.
	for i := range 12 {
		target := "hold:1"
		if i%2 == 1 {
			target = "hold:2"
		}
		e := store.AuditEntry{Time: at(i), Actor: "system", Action: "test", Target: target, Detail: fmt.Sprint(i)}
		if err := b.AppendAudit(ctx, e); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
	}
	details := func(es []store.AuditEntry) []string {
		out := make([]string, len(es))
		for i, e := range es {
			out[i] = e.Detail
		}
		return out
	}
	tests := []struct {
		name string
		f    store.AuditFilter
		want []string
	}{
		{"all", store.AuditFilter{}, []string{"11", "10", "9", "8", "7", "6", "5", "4", "3", "2", "1", "0"}},
		{"target", store.AuditFilter{Target: "hold:2"}, []string{"11", "9", "7", "5", "3", "1"}},
		{"target is exact", store.AuditFilter{Target: "hold:"}, nil},
		{"since inclusive", store.AuditFilter{Since: at(9)}, []string{"11", "10", "9"}},
		{"since between entries", store.AuditFilter{Since: at(9).Add(time.Second)}, []string{"11", "10"}},
		{"since future", store.AuditFilter{Since: at(60)}, nil},
		{"limit", store.AuditFilter{Limit: 4}, []string{"11", "10", "9", "8"}},
		{"target since limit", store.AuditFilter{Target: "hold:1", Since: at(3), Limit: 2}, []string{"10", "8"}},
		{"target since", store.AuditFilter{Target: "hold:1", Since: at(3)}, []string{"10", "8", "6", "4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := b.ListAudit(ctx, tc.f)
			if err != nil {
				t.Fatalf("ListAudit(%+v): %v", tc.f, err)
			}
			if !slices.Equal(details(got), tc.want) {
				t.Errorf("ListAudit(%+v) = %v, want %v", tc.f, details(got), tc.want)
			}
		})
	}

	// The default limit is 100, as for holds.
	for i := range 100 {
		e := store.AuditEntry{Time: at(100 + i), Actor: "system", Action: "bulk", Target: "bulk"}
		if err := b.AppendAudit(ctx, e); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
	}
	if got, err := b.ListAudit(ctx, store.AuditFilter{}); err != nil || len(got) != 100 {
		t.Errorf("ListAudit with Limit 0 = %d entries, %v; want the default 100", len(got), err)
	}
	if got, err := b.ListAudit(ctx, store.AuditFilter{Limit: 500}); err != nil || len(got) != 112 {
		t.Errorf("ListAudit with Limit 500 = %d entries, %v; want 112", len(got), err)
	}
}

func loadSnaps(t *testing.T, b Backend) map[string][]byte {
	t.Helper()
	m, err := b.LoadSnapshots(t.Context())
	if err != nil {
		t.Fatalf("LoadSnapshots: %v", err)
	}
	return m
}

func checkSnaps(t *testing.T, what string, got, want map[string][]byte) {
	t.Helper()
	keys := slices.Sorted(maps.Keys(got))
	wantKeys := slices.Sorted(maps.Keys(want))
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("%s: keys = %q, want %q", what, keys, wantKeys)
		return
	}
	for _, k := range keys {
		if !bytes.Equal(got[k], want[k]) {
			t.Errorf("%s: [%q] = %x, want %x", what, k, got[k], want[k])
		}
	}
}

func testSnapshots(t *testing.T, b Backend) {
	ctx := t.Context()
	if m := loadSnaps(t, b); len(m) != 0 {
		t.Fatalf("LoadSnapshots on an empty store = %d entries", len(m))
	}
	binary := []byte{0x00, 0xff, 0xfe, 0x80, 0x00, 'x', 0xc3} // not valid UTF-8, with NULs
	first := map[string][]byte{
		"alice@example.org":  []byte(`{"window":[1,2,3]}`),
		"bob@example.org":    []byte("bob-state"),
		"jürgen@bücher.test": binary,
		"empty@example.org":  {},
	}
	if err := b.SaveSnapshots(ctx, first); err != nil {
		t.Fatalf("SaveSnapshots: %v", err)
	}
	// checkSnaps compares key sets, so this also checks that the empty
	// non-nil value is kept (a nil value would mean "delete").
	checkSnaps(t, "after first save", loadSnaps(t, b), first)

	// A second save replaces the given keys, deletes nil ones, leaves others.
	second := map[string][]byte{
		"alice@example.org": []byte("alice-v2"),
		"bob@example.org":   nil,
		"new@example.org":   []byte("new"),
		"never@example.org": nil, // deleting a missing key is not an error
	}
	if err := b.SaveSnapshots(ctx, second); err != nil {
		t.Fatalf("SaveSnapshots: %v", err)
	}
	want := map[string][]byte{
		"alice@example.org":  []byte("alice-v2"),
		"jürgen@bücher.test": binary,
		"empty@example.org":  {},
		"new@example.org":    []byte("new"),
	}
	checkSnaps(t, "after second save", loadSnaps(t, b), want)

	// The store holds its own copy: changing the caller's slice or the
	// loaded map does not change what is stored.
	buf := []byte("copy-me")
	if err := b.SaveSnapshots(ctx, map[string][]byte{"copy@example.org": buf}); err != nil {
		t.Fatalf("SaveSnapshots: %v", err)
	}
	buf[0] = 'X'
	loaded := loadSnaps(t, b)
	loaded["alice@example.org"][0] = 'Z'
	want["copy@example.org"] = []byte("copy-me")
	checkSnaps(t, "after mutating caller data", loadSnaps(t, b), want)

	// Saving nothing changes nothing.
	for _, m := range []map[string][]byte{nil, {}} {
		if err := b.SaveSnapshots(ctx, m); err != nil {
			t.Fatalf("SaveSnapshots(%v): %v", m, err)
		}
	}
	checkSnaps(t, "after empty saves", loadSnaps(t, b), want)

	// Paged: every snapshot once, in bytewise key order, whatever the
	// page size; the last page is short or empty.
	for _, limit := range []int{1, 2, 3, 1000} {
		paged := map[string][]byte{}
		var keys []string
		after := ""
		for {
			page, err := b.SnapshotPage(ctx, after, limit)
			if err != nil {
				t.Fatalf("SnapshotPage(%q, %d): %v", after, limit, err)
			}
			if len(page) > limit {
				t.Fatalf("SnapshotPage(%q, %d) returned %d", after, limit, len(page))
			}
			for _, sn := range page {
				paged[sn.Key] = sn.Value
				keys = append(keys, sn.Key)
			}
			if len(page) < limit {
				break
			}
			after = page[len(page)-1].Key
		}
		if !slices.IsSorted(keys) {
			t.Errorf("SnapshotPage with limit %d: keys out of order: %q", limit, keys)
		}
		checkSnaps(t, fmt.Sprintf("paged by %d", limit), paged, want)
	}

	// Deleting everything leaves an empty store.
	del := map[string][]byte{}
	for k := range want {
		del[k] = nil
	}
	if err := b.SaveSnapshots(ctx, del); err != nil {
		t.Fatalf("SaveSnapshots: %v", err)
	}
	if m := loadSnaps(t, b); len(m) != 0 {
		t.Errorf("after deleting every key LoadSnapshots has %d entries", len(m))
	}
}

// workers is the number of concurrent writers: the policy and the milter
// path of several MTA processes, with margin.
const workers = 8

func testConcurrentPutHoldSameQueueID(t *testing.T, b Backend) {
	results := make([]*store.Hold, workers)
	errs := make([]error, workers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			h := sampleHold("4RACE")
			h.Reasons = []string{fmt.Sprintf("reason-%d", i)}
			<-start
			results[i], errs[i] = b.PutHold(t.Context(), h)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: PutHold: %v", i, err)
		}
	}
	for i, r := range results {
		if r.ID != results[0].ID {
			t.Errorf("worker %d got ID %d, worker 0 got %d", i, r.ID, results[0].ID)
		}
	}
	all := list(t, b, store.HoldFilter{})
	if len(all) != 1 {
		t.Fatalf("%d concurrent PutHold with one queue id left %d records, want 1", workers, len(all))
	}
	// No reason was lost to a race between read and write.
	got := slices.Clone(all[0].Reasons)
	sort.Strings(got)
	var want []string
	for i := range workers {
		want = append(want, fmt.Sprintf("reason-%d", i))
	}
	if !slices.Equal(got, want) {
		t.Errorf("merged reasons = %q, want all of %q", all[0].Reasons, want)
	}
}

func testConcurrentPutHoldDistinct(t *testing.T, b Backend) {
	errs := make([]error, workers)
	got := make([]int64, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			h, err := b.PutHold(t.Context(), sampleHold(fmt.Sprintf("4C%d", i)))
			errs[i] = err
			if err == nil {
				got[i] = h.ID
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent PutHold: %v", err)
	}
	slices.Sort(got)
	if len(slices.Compact(slices.Clone(got))) != workers {
		t.Errorf("concurrent PutHold of distinct messages gave IDs %v; want %d distinct", got, workers)
	}
	if n := len(list(t, b, store.HoldFilter{})); n != workers {
		t.Errorf("ListHolds returned %d holds, want %d", n, workers)
	}
}

func testAccounts(t *testing.T, b Backend) {
	ctx := t.Context()
	if _, err := b.GetAccount(ctx, "nobody@example.org"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetAccount of an unknown account: %v", err)
	}
	a := store.Account{Name: "u@example.org", State: store.AccountRestricted, StateAt: at(1), StateBy: "cli:root(0)", Reason: "spam run — reviewed"}
	if err := b.PutAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetAccount(ctx, a.Name)
	if err != nil || got.State != a.State || got.StateBy != a.StateBy || got.Reason != a.Reason || sameTime(got.StateAt, a.StateAt) != "" {
		t.Fatalf("GetAccount = %+v, %v", got, err)
	}
	a.State, a.StateAt, a.Reason = store.AccountNormal, at(2), "user reset password"
	if err := b.PutAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.GetAccount(ctx, a.Name); got.State != store.AccountNormal || got.Reason != "user reset password" {
		t.Fatalf("after replace: %+v", got)
	}
	if err := b.PutAccount(ctx, store.Account{Name: "v@example.org", State: store.AccountWatch, StateAt: at(3)}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutAccount(ctx, store.Account{Name: "w@example.org", State: "bogus", StateAt: at(3)}); err == nil {
		t.Fatal("invalid state accepted")
	}
	all, err := b.ListAccounts(ctx, store.AccountFilter{})
	if err != nil || len(all) != 2 || all[0].Name != "v@example.org" {
		t.Fatalf("ListAccounts = %+v, %v", all, err)
	}
	w, err := b.ListAccounts(ctx, store.AccountFilter{State: store.AccountWatch})
	if err != nil || len(w) != 1 || w[0].Name != "v@example.org" {
		t.Fatalf("ListAccounts(watch) = %+v, %v", w, err)
	}
}

func testIncidents(t *testing.T, b Backend) {
	ctx := t.Context()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	in, res, err := b.OpenIncident(ctx, "u@example.edu", store.SeverityHigh, "contain-bulk",
		store.Evidence{Time: t0, Reason: "bulk-from-scripted-client", Detail: "recipient_count=60", HoldID: 7, QueueID: "ABC", By: "system"})
	if err != nil || !res.Created || !res.Kept || res.Duplicate {
		t.Fatalf("open: %v %+v", err, res)
	}
	if in.ID == 0 || in.State != store.IncidentOpen || in.Severity != store.SeverityHigh || in.Playbook != "contain-bulk" ||
		!slices.Equal(in.Reasons, []string{"bulk-from-scripted-client"}) || !in.Opened.Equal(t0) {
		t.Fatalf("opened: %+v", in)
	}
	if g, err := b.GetIncident(ctx, in.ID); err != nil || len(g.Evidence) != 1 || g.Evidence[0].QueueID != "ABC" || !g.Evidence[0].Time.Equal(t0) {
		t.Fatalf("opened, read back: %+v %v", g, err)
	}
	// The same message's finding again (the other protocol path): nothing
	// changes.
	dup, res, err := b.OpenIncident(ctx, "u@example.edu", store.SeverityHigh, "contain-bulk",
		store.Evidence{Time: t0.Add(time.Second), Reason: "bulk-from-scripted-client", QueueID: "ABC", By: "system"})
	if err != nil || res.Created || res.Kept || !res.Duplicate || dup.ID != in.ID || !dup.Updated.Equal(t0) {
		t.Fatalf("duplicate: %v %+v %+v", err, res, dup)
	}
	// More evidence joins the active incident; severity only rises.
	in2, res, err := b.OpenIncident(ctx, "u@example.edu", store.SeverityCritical, "contain-password-leak",
		store.Evidence{Time: t0.Add(time.Minute), Reason: "password-leak", Detail: "text/plain part, token 3", QueueID: "ABC"})
	if err != nil || res.Created || !res.Kept || res.Duplicate || in2.ID != in.ID {
		t.Fatalf("second evidence: %v %+v id %d vs %d", err, res, in2.ID, in.ID)
	}
	if in2.Severity != store.SeverityCritical || in2.Playbook != "contain-password-leak" || !slices.Equal(in2.Reasons, []string{"bulk-from-scripted-client", "password-leak"}) ||
		!in2.Updated.Equal(t0.Add(time.Minute)) {
		t.Fatalf("joined: %+v", in2)
	}
	if g, err := b.GetIncident(ctx, in.ID); err != nil || len(g.Evidence) != 2 || g.Evidence[1].Reason != "password-leak" {
		t.Fatalf("joined, read back: %+v %v", g, err)
	}
	if _, _, err := b.OpenIncident(ctx, "u@example.edu", store.SeverityLow, "", store.Evidence{Time: t0.Add(2 * time.Minute), Reason: "bulk-from-scripted-client"}); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetIncident(ctx, in.ID)
	if err != nil || got.Severity != store.SeverityCritical || len(got.Reasons) != 2 || len(got.Evidence) != 3 || got.Evidence[0].HoldID != 7 {
		t.Fatalf("get: %v %+v", err, got)
	}
	act, err := b.ActiveIncident(ctx, "u@example.edu")
	if err != nil || act.ID != in.ID {
		t.Fatalf("active: %v %+v", err, act)
	}
	if _, err := b.ActiveIncident(ctx, "other@example.edu"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("active of another account: %v", err)
	}
	if _, err := b.GetIncident(ctx, 999999); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing incident: %v", err)
	}
	// Steps: recorded in order, replaced by name.
	for _, st := range []store.StepRecord{
		{Name: "restrict-sending", Status: store.StepDone, At: t0.Add(3 * time.Minute)},
		{Name: "lock-login", Status: store.StepPending, At: t0.Add(3 * time.Minute)},
		{Name: "lock-login", Status: store.StepFailed, Detail: "zimbra: connection refused", Attempts: 3, At: t0.Add(4 * time.Minute)},
	} {
		if err := b.PutStep(ctx, in.ID, st); err != nil {
			t.Fatal(err)
		}
	}
	got, _ = b.GetIncident(ctx, in.ID)
	if len(got.Steps) != 2 || got.Steps[0].Name != "restrict-sending" || got.Step("lock-login").Status != store.StepFailed ||
		got.Step("lock-login").Attempts != 3 || !got.Updated.Equal(t0.Add(4*time.Minute)) {
		t.Fatalf("steps: %+v", got.Steps)
	}
	if err := b.PutStep(ctx, 999999, store.StepRecord{Name: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("step of a missing incident: %v", err)
	}
	// Evidence is bounded.
	for i := range store.MaxEvidence + 10 {
		if _, _, err := b.OpenIncident(ctx, "spam@example.edu", store.SeverityMedium, "", store.Evidence{Time: t0.Add(time.Hour + time.Duration(i)*time.Second), Reason: "rate-recipients-hour"}); err != nil {
			t.Fatal(err)
		}
	}
	sp, err := b.ActiveIncident(ctx, "spam@example.edu")
	if err != nil || len(sp.Evidence) != store.MaxEvidence {
		t.Fatalf("bounded evidence: %v %d", err, len(sp.Evidence))
	}
	// Listing: most recently updated first; filters.
	all, err := b.ListIncidents(ctx, store.IncidentFilter{})
	if err != nil || len(all) != 2 || all[0].Account != "spam@example.edu" {
		t.Fatalf("list: %v %d", err, len(all))
	}
	one, err := b.ListIncidents(ctx, store.IncidentFilter{Account: "u@example.edu"})
	if err != nil || len(one) != 1 || one[0].ID != in.ID {
		t.Fatalf("list by account: %v %+v", err, one)
	}
	if _, _, err := b.OpenIncident(ctx, "", store.SeverityLow, "", store.Evidence{}); err == nil {
		t.Fatal("incident without an account accepted")
	}
	if _, _, err := b.OpenIncident(ctx, "x@example.edu", "severe", "", store.Evidence{}); err == nil {
		t.Fatal("unknown severity accepted")
	}
}

func testIncidentStates(t *testing.T, b Backend) {
	ctx := t.Context()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	in, _, err := b.OpenIncident(ctx, "u@example.edu", store.SeverityHigh, "p", store.Evidence{Time: t0, Reason: "r"})
	if err != nil {
		t.Fatal(err)
	}
	open := []store.IncidentState{store.IncidentOpen}
	if err := b.SetIncidentState(ctx, in.ID, open, store.IncidentConfirmed, "cli:root", "called the user", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := b.SetIncidentState(ctx, in.ID, open, store.IncidentDismissed, "cli:root", "", t0.Add(2*time.Minute)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("dismiss a confirmed incident as if open: %v", err)
	}
	got, _ := b.GetIncident(ctx, in.ID)
	if got.State != store.IncidentConfirmed || got.StateBy != "cli:root" || got.Note != "called the user" {
		t.Fatalf("after confirm: %+v", got)
	}
	if err := b.SetIncidentState(ctx, 999999, open, store.IncidentDismissed, "x", "", t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if list, _ := b.ListIncidents(ctx, store.IncidentFilter{State: store.IncidentConfirmed}); len(list) != 1 {
		t.Fatalf("list confirmed: %d", len(list))
	}
	if err := b.SetIncidentState(ctx, in.ID, []store.IncidentState{store.IncidentConfirmed}, store.IncidentResolved, "cli:root", "", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Resolved is not active: new evidence opens a new incident.
	in2, res, err := b.OpenIncident(ctx, "u@example.edu", store.SeverityLow, "p", store.Evidence{Time: t0.Add(2 * time.Hour), Reason: "r"})
	if err != nil || !res.Created || in2.ID == in.ID {
		t.Fatalf("after resolve: %v %+v", err, res)
	}
	if list, _ := b.ListIncidents(ctx, store.IncidentFilter{Active: true}); len(list) != 1 || list[0].ID != in2.ID {
		t.Fatalf("active list: %+v", list)
	}
	// Reopening the resolved one while another is active is a conflict.
	if err := b.SetIncidentState(ctx, in.ID, []store.IncidentState{store.IncidentResolved}, store.IncidentOpen, "cli:root", "", t0.Add(3*time.Hour)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second active incident: %v", err)
	}
}

// testOpenIncidentsBatch: many findings in one call behave as the same
// calls one by one: per account one incident, duplicates of a message's
// finding ignored (also within the batch), severity only rising, evidence
// bounded.
func testOpenIncidentsBatch(t *testing.T, b Backend) {
	ctx := t.Context()
	t0 := time.Date(2026, 5, 2, 10, 0, 0, 0, time.UTC)
	ev := func(sec int, reason, qid string) store.Evidence {
		return store.Evidence{Time: t0.Add(time.Duration(sec) * time.Second), Reason: reason, QueueID: qid, By: "system"}
	}
	fs := []store.IncidentFinding{
		{Account: "a@example.edu", Severity: store.SeverityMedium, Playbook: "pa", Evidence: ev(0, "bulk", "Q1")},
		{Account: "b@example.edu", Severity: store.SeverityHigh, Playbook: "pb", Evidence: ev(1, "bulk", "Q2")},
		{Account: "a@example.edu", Severity: store.SeverityMedium, Playbook: "pa", Evidence: ev(2, "bulk", "Q1")}, // the other path
		{Account: "a@example.edu", Severity: store.SeverityCritical, Playbook: "pleak", Evidence: ev(3, "password-leak", "Q1")},
		{Account: "a@example.edu", Severity: store.SeverityLow, Playbook: "", Evidence: ev(4, "rate", "")},
	}
	for i := range store.MaxEvidence {
		fs = append(fs, store.IncidentFinding{Account: "b@example.edu", Severity: store.SeverityHigh, Playbook: "pb", Evidence: ev(10+i, "bulk", fmt.Sprintf("QB%03d", i))})
	}
	res, err := b.OpenIncidents(ctx, fs)
	if err != nil || len(res) != len(fs) {
		t.Fatalf("OpenIncidents: %d results, %v", len(res), err)
	}
	if !res[0].Created || !res[1].Created || res[2].Created || !res[2].Duplicate || res[2].Kept || !res[3].Kept || !res[4].Kept ||
		res[0].Escalated || !res[3].Escalated || res[4].Escalated {
		t.Fatalf("results: %+v %+v %+v %+v %+v", res[0].Opened, res[1].Opened, res[2].Opened, res[3].Opened, res[4].Opened)
	}
	if res[0].Incident.ID != res[3].Incident.ID || res[0].Incident.ID == res[1].Incident.ID {
		t.Fatalf("incident ids: %d %d %d", res[0].Incident.ID, res[1].Incident.ID, res[3].Incident.ID)
	}
	if res[0].Incident.Severity != store.SeverityMedium || res[3].Incident.Severity != store.SeverityCritical {
		t.Fatalf("severity as each finding left it: %s then %s", res[0].Incident.Severity, res[3].Incident.Severity)
	}
	last := res[len(res)-1]
	if last.Kept || last.Duplicate || last.Created {
		t.Fatalf("finding beyond MaxEvidence: %+v", last.Opened)
	}
	a, err := b.GetIncident(ctx, res[0].Incident.ID)
	if err != nil || a.Severity != store.SeverityCritical || a.Playbook != "pleak" || len(a.Evidence) != 3 ||
		!slices.Equal(a.Reasons, []string{"bulk", "password-leak", "rate"}) || !a.Updated.Equal(t0.Add(4*time.Second)) {
		t.Fatalf("a's incident: %+v %v", a, err)
	}
	bi, err := b.GetIncident(ctx, res[1].Incident.ID)
	if err != nil || len(bi.Evidence) != store.MaxEvidence || bi.Evidence[0].QueueID != "Q2" {
		t.Fatalf("b's incident: %d evidence, %v", len(bi.Evidence), err)
	}
	// A bad finding refuses the whole batch.
	if _, err := b.OpenIncidents(ctx, []store.IncidentFinding{{Account: "c@example.edu", Severity: store.SeverityLow, Evidence: ev(0, "r", "")}, {Account: "", Severity: store.SeverityLow}}); err == nil {
		t.Fatal("a finding without account was accepted")
	}
	if _, err := b.ActiveIncident(ctx, "c@example.edu"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused batch left an incident: %v", err)
	}
}

func testConcurrentOpenIncident(t *testing.T, b Backend) {
	ctx := t.Context()
	var wg sync.WaitGroup
	ids := make([]int64, 16)
	errs := make([]error, 16)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in, _, err := b.OpenIncident(ctx, "race@example.edu", store.SeverityMedium, "p", store.Evidence{Reason: fmt.Sprintf("r%d", i%3)})
			if err == nil {
				ids[i] = in.ID
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
		if ids[i] != ids[0] {
			t.Fatalf("two incidents for one account: %d and %d", ids[0], ids[i])
		}
	}
	in, _ := b.GetIncident(ctx, ids[0])
	if len(in.Evidence) != 16 || len(in.Reasons) != 3 {
		t.Fatalf("evidence %d reasons %v", len(in.Evidence), in.Reasons)
	}
}

func testUsersAndTokens(t *testing.T, b Backend) {
	ctx := t.Context()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	if _, err := b.GetUser(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing user: %v", err)
	}
	u := store.User{Name: "alice", Role: "admin", Hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", Created: t0, Updated: t0}
	if err := b.PutUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	u.Role, u.Hash, u.Updated = "viewer", "$argon2id$new", t0.Add(time.Hour)
	if err := b.PutUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetUser(ctx, "alice")
	if err != nil || got.Role != "viewer" || got.Hash != "$argon2id$new" || !got.Created.Equal(t0) || !got.Updated.Equal(t0.Add(time.Hour)) {
		t.Fatalf("user: %v %+v", err, got)
	}
	if err := b.PutUser(ctx, store.User{Name: "bob", Role: "superuser", Hash: "x", Created: t0, Updated: t0}); err == nil {
		t.Fatal("unknown role accepted")
	}
	if list, _ := b.ListUsers(ctx); len(list) != 1 || list[0].Hash != "" {
		t.Fatalf("list users: %+v", list)
	}
	if err := b.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteUser(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	tok := store.Token{ID: "t1", Name: "ci", Role: "viewer", Hash: []byte{1, 2, 3}, Created: t0, By: "cli:root"}
	if err := b.PutToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := b.TouchToken(ctx, "t1", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	gt, err := b.GetToken(ctx, "t1")
	if err != nil || !bytes.Equal(gt.Hash, []byte{1, 2, 3}) || !gt.LastUsed.Equal(t0.Add(time.Minute)) || !gt.Expires.IsZero() || gt.By != "cli:root" {
		t.Fatalf("token: %v %+v", err, gt)
	}
	if list, _ := b.ListTokens(ctx); len(list) != 1 || list[0].Hash != nil {
		t.Fatalf("list tokens exposes hashes: %+v", list)
	}
	if err := b.DeleteToken(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetToken(ctx, "t1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted token: %v", err)
	}
}

func testListHoldsSearch(t *testing.T, b Backend) {
	ctx := t.Context()
	mk := func(qid, subject, family string, reasons []string, minute int) {
		h := sampleHold(qid)
		h.Subject, h.ClientFamily, h.Reasons, h.HeldAt, h.StateAt = subject, family, reasons, at(minute), at(minute)
		put(t, b, h)
	}
	mk("S1", "Invoice 50% off_now", "zimbra-html", []string{"bulk-from-scripted-client"}, 1)
	mk("S2", "Re: lunch", "thunderbird", []string{"reply-to-phisher", "first-time-recipients-day"}, 2)
	mk("S3", "Quarterly report", "zimbra-html", []string{"first-time-recipients-day"}, 3)
	ids := func(f store.HoldFilter) string {
		hs, err := b.ListHolds(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var q []string
		for _, h := range hs {
			q = append(q, h.QueueID)
		}
		return strings.Join(q, ",")
	}
	for _, c := range []struct {
		f    store.HoldFilter
		want string
	}{
		{store.HoldFilter{Reason: "first-time-recipients-day"}, "S3,S2"},
		{store.HoldFilter{Reason: "first-time"}, ""}, // whole reasons only
		{store.HoldFilter{ClientFamily: "zimbra-html"}, "S3,S1"},
		{store.HoldFilter{Since: at(2)}, "S3,S2"},
		{store.HoldFilter{Until: at(2)}, "S1"},
		{store.HoldFilter{Query: "LUNCH"}, "S2"},
		{store.HoldFilter{Query: "50%"}, "S1"}, // % is literal
		{store.HoldFilter{Query: "e_5"}, ""},   // _ is literal, not "any character" ("Invoice 50")
		{store.HoldFilter{Query: "off_now"}, "S1"},
		{store.HoldFilter{ClientFamily: "zimbra-html", Reason: "first-time-recipients-day"}, "S3"},
	} {
		if got := ids(c.f); got != c.want {
			t.Errorf("%+v: got %q, want %q", c.f, got, c.want)
		}
	}
}

// testSessions: sessions by the hash of their ID, touched forward only,
// ended one by one, by user and when expired; a user's Updated read from
// the store and written into a session compares equal when read back
// (internal/auth refuses a session whose user changed by it).
func testSessions(t *testing.T, b Backend) {
	ctx := t.Context()
	hash := func(c byte) []byte { return bytes.Repeat([]byte{c}, 32) }
	if _, err := b.GetSession(ctx, hash(1)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing session: %v", err)
	}
	if err := b.PutUser(ctx, store.User{Name: "alice", Role: "admin", Hash: "$argon2id$x", Created: base, Updated: base}); err != nil {
		t.Fatal(err)
	}
	u, err := b.GetUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	s1 := store.Session{Hash: hash(1), User: "alice", Role: "admin", UserUpdated: u.Updated, Created: base, Seen: base}
	for _, s := range []store.Session{s1,
		{Hash: hash(2), User: "alice", Role: "viewer", UserUpdated: base, Created: at(10), Seen: at(20)},
		{Hash: hash(3), User: "bob", Role: "helpdesk", UserUpdated: base, Created: at(30), Seen: at(30)},
	} {
		if err := b.PutSession(ctx, s); err != nil {
			t.Fatalf("PutSession %x: %v", s.Hash[:1], err)
		}
	}
	for _, bad := range []store.Session{
		{Hash: hash(1), User: "alice", Role: "admin", Created: base, Seen: base},      // the same hash again
		{Hash: hash(4)[:31], User: "alice", Role: "admin", Created: base, Seen: base}, // not a SHA-256
		{Hash: hash(5), Role: "admin", Created: base, Seen: base},                     // no user
		{Hash: hash(6), User: "alice", Role: "root", Created: base, Seen: base},       // no such role
	} {
		if err := b.PutSession(ctx, bad); err == nil {
			t.Errorf("PutSession accepted %+v", bad)
		}
	}
	near := func(a, b time.Time) bool { return a.Location() == time.UTC && a.Sub(b).Abs() < time.Millisecond }
	got, err := b.GetSession(ctx, hash(1))
	if err != nil || !bytes.Equal(got.Hash, hash(1)) || got.User != "alice" || got.Role != "admin" ||
		!got.UserUpdated.Equal(u.Updated) || !near(got.Created, base) || !near(got.Seen, base) {
		t.Fatalf("GetSession: %v %+v", err, got)
	}
	if _, err := b.GetSession(ctx, hash(6)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused session was stored: %v", err)
	}

	// Touched forward only: a node whose request was earlier does not
	// move Seen back.
	seen := func(c byte) time.Time {
		t.Helper()
		s, err := b.GetSession(ctx, hash(c))
		if err != nil {
			t.Fatalf("GetSession %d: %v", c, err)
		}
		return s.Seen
	}
	if err := b.TouchSession(ctx, hash(1), at(5)); err != nil {
		t.Fatal(err)
	}
	if err := b.TouchSession(ctx, hash(1), at(3)); err != nil {
		t.Fatal(err)
	}
	if got := seen(1); !near(got, at(5)) {
		t.Fatalf("seen after touches at 5 and 3 = %v, want %v", got, at(5))
	}
	if err := b.TouchSession(ctx, hash(9), at(5)); err != nil {
		t.Fatalf("touching a session that does not exist: %v", err)
	}
	if _, err := b.GetSession(ctx, hash(9)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a touch made a session: %v", err)
	}

	// Ended one by one; twice is no error.
	if err := b.DeleteSession(ctx, hash(2)); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteSession(ctx, hash(2)); err != nil {
		t.Fatalf("DeleteSession twice: %v", err)
	}
	if _, err := b.GetSession(ctx, hash(2)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted session: %v", err)
	}

	// Every session of a user, and no other's; names are exact.
	if err := b.PutSession(ctx, store.Session{Hash: hash(2), User: "alice", Role: "viewer", UserUpdated: base, Created: at(10), Seen: at(20)}); err != nil {
		t.Fatal(err)
	}
	if n, err := b.DeleteUserSessions(ctx, "ALICE"); err != nil || n != 0 {
		t.Fatalf("DeleteUserSessions(ALICE) = %d, %v; want 0", n, err)
	}
	if n, err := b.DeleteUserSessions(ctx, "alice"); err != nil || n != 2 {
		t.Fatalf("DeleteUserSessions(alice) = %d, %v; want 2", n, err)
	}
	for _, c := range []byte{1, 2} {
		if _, err := b.GetSession(ctx, hash(c)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("alice's session %d after DeleteUserSessions: %v", c, err)
		}
	}
	if _, err := b.GetSession(ctx, hash(3)); err != nil {
		t.Fatalf("bob's session went with alice's: %v", err)
	}
	if n, err := b.DeleteUserSessions(ctx, "alice"); err != nil || n != 0 {
		t.Fatalf("DeleteUserSessions twice = %d, %v", n, err)
	}

	// Pruned: last seen before one time, or begun before another.
	for _, s := range []store.Session{
		{Hash: hash(10), User: "carol", Role: "viewer", UserUpdated: base, Created: at(0), Seen: at(50)},  // begun too early
		{Hash: hash(11), User: "carol", Role: "viewer", UserUpdated: base, Created: at(20), Seen: at(39)}, // idle
		{Hash: hash(12), User: "carol", Role: "viewer", UserUpdated: base, Created: at(10), Seen: at(40)}, // both at the bounds: kept
		{Hash: hash(13), User: "carol", Role: "viewer", UserUpdated: base, Created: at(45), Seen: at(60)},
	} {
		if err := b.PutSession(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	// bob's (created and seen at 30) is idle too.
	if n, err := b.PruneSessions(ctx, at(40), at(10)); err != nil || n != 3 {
		t.Fatalf("PruneSessions = %d, %v; want 3", n, err)
	}
	for c, want := range map[byte]bool{3: false, 10: false, 11: false, 12: true, 13: true} {
		_, err := b.GetSession(ctx, hash(c))
		if kept := err == nil; kept != want || (err != nil && !errors.Is(err, store.ErrNotFound)) {
			t.Errorf("session %d after pruning: %v, want kept %v", c, err, want)
		}
	}
	if n, err := b.PruneSessions(ctx, at(40), at(10)); err != nil || n != 0 {
		t.Fatalf("PruneSessions again = %d, %v", n, err)
	}
}

func testTrust(t *testing.T, b Backend) {
	ctx := t.Context()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	id1, err := b.PutTrust(ctx, store.TrustEntry{Account: "u@example.edu", ClientFamily: "zimbra-html", Until: t0.Add(time.Hour), Created: t0, By: "api:alice", Note: "newsletter", HoldID: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutTrust(ctx, store.TrustEntry{Account: "v@example.edu", ClientFamily: "outlook", Until: t0.Add(24 * time.Hour), Created: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutTrust(ctx, store.TrustEntry{Account: "v@example.edu"}); err == nil {
		t.Fatal("entry without family and until accepted")
	}
	list, err := b.ListTrust(ctx, t0)
	if err != nil || len(list) != 2 || list[0].ID != id1 || list[0].Note != "newsletter" || list[0].HoldID != 4 || !list[0].Until.Equal(t0.Add(time.Hour)) {
		t.Fatalf("list: %v %+v", err, list)
	}
	if list, _ := b.ListTrust(ctx, t0.Add(2*time.Hour)); len(list) != 1 || list[0].Account != "v@example.edu" {
		t.Fatalf("expired entries listed: %+v", list)
	}
	if err := b.DeleteTrust(ctx, id1); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteTrust(ctx, id1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
}

// testPutHoldsBatch: a batch records every hold in order in one go, later
// holds merging into earlier ones of the same queue ID (both protocol
// paths held the message before the batch was written), and says which
// made a record.
func testPutHoldsBatch(t *testing.T, b Backend) {
	ctx := t.Context()
	mk := func(qid, path string, reasons ...string) *store.Hold {
		return &store.Hold{QueueID: qid, Path: path, Account: "a@example.org", Recipients: []string{"r@example.net"}, RecipientCount: 1,
			Reasons: reasons, HeldAt: at(0), State: store.HoldHeld, StateAt: at(0)}
	}
	res, err := b.PutHolds(ctx, []*store.Hold{mk("4B1", "policy", "x"), mk("4B2", "milter", "y"), mk("4B1", "milter", "z")})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || !res[0].Created || !res[1].Created || res[2].Created || res[2].Hold.ID != res[0].Hold.ID {
		t.Fatalf("results: %+v", res)
	}
	if got := strings.Join(res[2].Hold.Reasons, ","); got != "x,z" {
		t.Errorf("merged reasons %q, want x,z", got)
	}
	all, err := b.ListHolds(ctx, store.HoldFilter{})
	if err != nil || len(all) != 2 {
		t.Fatalf("%d records, %v", len(all), err)
	}
	if _, err := b.PutHolds(ctx, []*store.Hold{mk("4B3", "policy"), {QueueID: "4B4", State: "bogus"}}); err == nil {
		t.Fatal("a batch with an invalid hold succeeded")
	}
	if _, err := b.HoldByQueueID(ctx, "4B3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a failed batch recorded part of it: %v", err)
	}
}

// testAppendAudits: entries appended in one go, all listed.
func testAppendAudits(t *testing.T, b Backend) {
	ctx := t.Context()
	es := []store.AuditEntry{{Time: at(0), Actor: "system", Action: "quarantine-hold", Target: "hold:1"},
		{Time: at(1), Actor: "system", Action: "quarantine-hold", Target: "hold:2"}}
	if err := b.AppendAudits(ctx, es); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendAudits(ctx, nil); err != nil {
		t.Fatal(err)
	}
	got, err := b.ListAudit(ctx, store.AuditFilter{})
	if err != nil || len(got) != 2 || got[0].Target != "hold:2" {
		t.Fatalf("%+v %v", got, err)
	}
}

func testPrune(t *testing.T, b Backend) {
	ctx := t.Context()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	put := func(qid string, at time.Time) *store.Hold {
		t.Helper()
		h, err := b.PutHold(ctx, &store.Hold{QueueID: qid, Account: "a@example.org", Headers: "Subject: x", Preview: "text", HeldAt: at, State: store.HoldHeld, StateAt: at})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	oldHeld := put("OLDHELD", now.AddDate(0, 0, -400))
	oldGone := put("OLDGONE", now.AddDate(0, 0, -400))
	midGone := put("MIDGONE", now.AddDate(0, 0, -60))
	newGone := put("NEWGONE", now.AddDate(0, 0, -1))
	for h, at := range map[*store.Hold]time.Time{oldGone: now.AddDate(0, 0, -399), midGone: now.AddDate(0, 0, -59), newGone: now.AddDate(0, 0, -1)} {
		if err := b.SetHoldState(ctx, h.ID, store.HoldHeld, store.HoldReleased, "test", at); err != nil {
			t.Fatal(err)
		}
	}
	var audit []store.AuditEntry
	for i := range 2500 {
		audit = append(audit, store.AuditEntry{Time: now.AddDate(0, 0, -800).Add(time.Duration(i) * time.Second), Actor: "t", Action: "old", Target: "x"})
	}
	audit = append(audit, store.AuditEntry{Time: now.AddDate(0, 0, -10), Actor: "t", Action: "recent", Target: "x"})
	if err := b.AppendAudits(ctx, audit); err != nil {
		t.Fatal(err)
	}
	got, err := b.Prune(ctx, store.Prune{Previews: now.AddDate(0, 0, -30), Holds: now.AddDate(0, 0, -365), Audit: now.AddDate(0, 0, -730)})
	if err != nil {
		t.Fatal(err)
	}
	if got != (store.Pruned{Previews: 2, Holds: 1, Audit: 2500}) {
		t.Errorf("Prune = %+v, want 2 previews (old and mid released), 1 hold (old released), 2500 audit entries", got)
	}
	h, err := b.GetHold(ctx, oldHeld.ID)
	if err != nil || h.Preview != "text" || h.Headers == "" {
		t.Errorf("a message still held lost its record or preview: %+v %v", h, err)
	}
	if _, err := b.GetHold(ctx, oldGone.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("old released hold: %v", err)
	}
	if h, err := b.GetHold(ctx, midGone.ID); err != nil || h.Preview != "" || h.Headers != "" || h.Account != "a@example.org" {
		t.Errorf("mid released hold: %+v %v (the record stays, its content goes)", h, err)
	}
	if h, err := b.GetHold(ctx, newGone.ID); err != nil || h.Preview != "text" {
		t.Errorf("recent released hold: %+v %v", h, err)
	}
	left, err := b.ListAudit(ctx, store.AuditFilter{Limit: 100})
	if err != nil || len(left) != 1 || left[0].Action != "recent" {
		t.Errorf("audit after pruning: %d entries %v", len(left), err)
	}
	if again, err := b.Prune(ctx, store.Prune{Previews: now.AddDate(0, 0, -30), Holds: now.AddDate(0, 0, -365), Audit: now.AddDate(0, 0, -730)}); err != nil || again != (store.Pruned{}) {
		t.Errorf("a second prune: %+v %v", again, err)
	}
}

// testHoldNode: every hold records its cluster node; a merge fills an
// empty Node and keeps a set one; HoldFilter.Node selects one node's
// holds, and an empty Node selects all.
func testHoldNode(t *testing.T, b Backend) {
	ctx := t.Context()
	a := sampleHold("4NODEA")
	a.Node = "mx1.example.org"
	ha := put(t, b, a)
	checkHold(t, "round trip", get(t, b, ha.ID), a)
	if got, err := b.HoldByQueueID(ctx, "4NODEA"); err != nil || got.Node != "mx1.example.org" {
		t.Fatalf("HoldByQueueID: %+v, %v", got, err)
	}

	// Merged within a node: the policy and milter paths of one node hold
	// the same message. Another node's message with the same queue ID
	// (two MTAs can give one ID) is a record of its own.
	first := sampleHold("4NODEB")
	first.Node = "mx2.example.org"
	second := sampleHold("4NODEB")
	second.Node = "mx2.example.org"
	second.Reasons = []string{"second-path"}
	hb := put(t, b, first)
	if m := put(t, b, second); m.ID != hb.ID || m.Node != "mx2.example.org" || !slices.Contains(m.Reasons, "second-path") {
		t.Fatalf("merge returned ID %d node %q reasons %v, want ID %d node mx2.example.org", m.ID, m.Node, m.Reasons, hb.ID)
	}
	other := sampleHold("4NODEB")
	other.Node = "mx3.example.org"
	other.HeldAt, other.StateAt = at(-1), at(-1)
	ho := put(t, b, other)
	if ho.ID == hb.ID {
		t.Fatalf("a message of another node with the same queue ID merged into %d", hb.ID)
	}
	if got := get(t, b, hb.ID); got.Node != "mx2.example.org" {
		t.Errorf("Node after another node's hold = %q, want mx2.example.org kept", got.Node)
	}
	if got := get(t, b, ho.ID); got.Node != "mx3.example.org" || got.State != store.HoldHeld {
		t.Errorf("the other node's record: %+v", got)
	}

	c := sampleHold("4NODEC") // a single node: no node
	c.HeldAt, c.StateAt = at(1), at(1)
	hc := put(t, b, c)
	if got := get(t, b, hc.ID); got.Node != "" {
		t.Errorf("Node of a hold without one = %q", got.Node)
	}

	for _, tc := range []struct {
		node string
		want []int64
	}{
		{"mx1.example.org", []int64{ha.ID}},
		{"mx2.example.org", []int64{hb.ID}},
		{"mx3.example.org", []int64{ho.ID}},
		{"mx9.example.org", []int64{}},
		{"", []int64{hc.ID, hb.ID, ha.ID, ho.ID}},
	} {
		got := ids(list(t, b, store.HoldFilter{Node: tc.node}))
		if !slices.Equal(got, tc.want) {
			t.Errorf("ListHolds(Node %q) = %v, want %v", tc.node, got, tc.want)
		}
		n, err := b.CountHolds(ctx, store.HoldFilter{Node: tc.node})
		if err != nil {
			t.Fatalf("CountHolds(Node %q): %v", tc.node, err)
		}
		if n.N != len(tc.want) {
			t.Errorf("CountHolds(Node %q).N = %d, want %d", tc.node, n.N, len(tc.want))
		}
	}
}
