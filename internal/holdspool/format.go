package holdspool

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

// A spool file is one header line, then the record as JSON:
//
//	mailbrake-hold 1 LEN CRC\n
//	{"queue_id":"4ABC123",…}
//
// 1 is the format's version, LEN the decimal length of the JSON in bytes
// and CRC its CRC-32C in eight lower-case hex digits: a file cut short or
// changed on the disk is told from a record. Text that is not UTF-8 is
// kept with U+FFFD in place of the bytes, as PostgreSQL stores it.
const magic = "mailbrake-hold 1 "

// MaxFileBytes bounds one spool file. A hold carries at most the milter's
// 256 KiB of headers, a bounded preview and its recipients; 16 MiB leaves
// room for tens of thousands of recipients and keeps a corrupt length from
// making a reader allocate without bound.
const MaxFileBytes = 16 << 20

// ErrCorrupt is wrapped by every error of Decode.
var ErrCorrupt = errors.New("not a spooled hold")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// record is the file's JSON: the fields of store.Hold a hold has when it
// is made (no ID or state: the store gives those).
type record struct {
	QueueID        string    `json:"queue_id"`
	Node           string    `json:"node"`
	Path           string    `json:"path"`
	Account        string    `json:"account"`
	Sender         string    `json:"sender"`
	Recipients     []string  `json:"recipients"`
	RecipientCount int       `json:"recipient_count"`
	Subject        string    `json:"subject"`
	Client         string    `json:"client"`
	ClientFamily   string    `json:"client_family"`
	ClientAddress  string    `json:"client_address"`
	Reasons        []string  `json:"reasons"`
	Size           int64     `json:"size"`
	Headers        string    `json:"headers"`
	Preview        string    `json:"preview"`
	HeldAt         time.Time `json:"held_at"`
	Prints         []string  `json:"prints"`
	// Report: the findings the hold reports for the account's incident
	// once written (none for inbound mail or a shadow verdict), so that a
	// hold written by the next process still reports them. Added after
	// version 1 was first released, and optional: an earlier build sets
	// aside a file that has it (an unknown field), so downgrade only with
	// an empty spool.
	Report []Finding `json:"report,omitempty"`
}

// Finding is one finding a spooled hold reports once written: its reason
// and evidence.
type Finding struct {
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"`
}

// Encode returns the spool file of h: what Decode reads back as h (its ID
// and state fields left out, its time in UTC).
func Encode(h *store.Hold) ([]byte, error) { return EncodeEntry(Entry{Hold: h}) }

// EncodeEntry is Encode of e's hold with the findings it reports.
func EncodeEntry(e Entry) ([]byte, error) {
	h := e.Hold
	r := record{QueueID: h.QueueID, Node: h.Node, Path: h.Path, Account: h.Account, Sender: h.Sender,
		Recipients: h.Recipients, RecipientCount: h.RecipientCount, Subject: h.Subject, Client: h.Client,
		ClientFamily: h.ClientFamily, ClientAddress: h.ClientAddress, Reasons: h.Reasons, Size: h.Size,
		Headers: h.Headers, Preview: h.Preview, HeldAt: h.HeldAt.UTC(), Prints: h.Prints, Report: e.Report}
	if err := r.check(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // headers are full of <addresses>
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("encoding a spooled hold: %w", err)
	}
	body := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	head := fmt.Sprintf("%s%d %08x\n", magic, len(body), crc32.Checksum(body, castagnoli))
	if len(head)+len(body) > MaxFileBytes {
		return nil, fmt.Errorf("a spooled hold of %d bytes: over %d", len(head)+len(body), MaxFileBytes)
	}
	return append([]byte(head), body...), nil
}

// Decode reads a spool file. Any error wraps ErrCorrupt.
func Decode(b []byte) (*store.Hold, error) {
	e, err := DecodeEntry(b)
	return e.Hold, err
}

// DecodeEntry reads a spool file: its hold and the findings it reports
// (Name and Size left empty). Any error wraps ErrCorrupt.
func DecodeEntry(b []byte) (Entry, error) {
	if len(b) > MaxFileBytes {
		return Entry{}, fmt.Errorf("%w: %d bytes, over %d", ErrCorrupt, len(b), MaxFileBytes)
	}
	head, body, ok := bytes.Cut(b, []byte("\n"))
	if !ok || !bytes.HasPrefix(head, []byte(magic)) {
		return Entry{}, fmt.Errorf("%w: no header line", ErrCorrupt)
	}
	lenText, sumText, ok := bytes.Cut(head[len(magic):], []byte(" "))
	n, err := strconv.Atoi(string(lenText))
	if !ok || err != nil || n < 0 || strconv.Itoa(n) != string(lenText) {
		return Entry{}, fmt.Errorf("%w: bad length in the header line", ErrCorrupt)
	}
	if n != len(body) {
		return Entry{}, fmt.Errorf("%w: %d bytes of record, the header says %d (cut short?)", ErrCorrupt, len(body), n)
	}
	sum, err := strconv.ParseUint(string(sumText), 16, 32)
	if err != nil || fmt.Sprintf("%08x", sum) != string(sumText) {
		return Entry{}, fmt.Errorf("%w: bad checksum in the header line", ErrCorrupt)
	}
	if crc32.Checksum(body, castagnoli) != uint32(sum) {
		return Entry{}, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	var r record
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if dec.InputOffset() != int64(len(body)) {
		return Entry{}, fmt.Errorf("%w: data after the record", ErrCorrupt)
	}
	if err := r.check(); err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if len(r.Report) == 0 {
		r.Report = nil // "report": [] reads as none, as it is written
	}
	return Entry{Hold: &store.Hold{QueueID: r.QueueID, Node: r.Node, Path: r.Path, Account: r.Account, Sender: r.Sender,
		Recipients: r.Recipients, RecipientCount: r.RecipientCount, Subject: r.Subject, Client: r.Client,
		ClientFamily: r.ClientFamily, ClientAddress: r.ClientAddress, Reasons: r.Reasons, Size: r.Size,
		Headers: r.Headers, Preview: r.Preview, HeldAt: r.HeldAt.UTC(), Prints: r.Prints}, Report: r.Report}, nil
}

// check refuses what no hold has: no time (or one JSON cannot write),
// negative counts.
func (r *record) check() error {
	switch y := r.HeldAt.UTC().Year(); {
	case r.HeldAt.IsZero():
		return errors.New("a hold without its time")
	case y < 1 || y > 9999:
		return fmt.Errorf("a hold held in the year %d", y)
	case r.RecipientCount < 0 || r.Size < 0:
		return errors.New("a negative count")
	}
	return nil
}
