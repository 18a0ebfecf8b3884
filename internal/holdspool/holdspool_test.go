package holdspool

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailbrake/mailbrake/internal/store"
)

func sample(qid string) *store.Hold {
	return &store.Hold{QueueID: qid, Node: "mta-a", Path: "policy", Account: "alice@example.edu", Sender: "alice@example.edu",
		Recipients: []string{"a@dest.example", "b@dest.example"}, RecipientCount: 2, Subject: "Minutes <draft> & notes", Client: "zclient/8.8.15",
		ClientFamily: "scripted", ClientAddress: "192.0.2.7", Reasons: []string{"bulk-from-scripted-client", "rate-recipients-hour"}, Size: 1234,
		Headers: "From: <alice@example.edu>\r\nSubject: Minutes\r\n", Preview: "Dear all,\n", HeldAt: time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC),
		Prints: []string{"0a1b"}, ID: 99, State: store.HoldReleased, StateBy: "web:bob"}
}

// written is what Decode gives back for h: the fields a hold has when it
// is made.
func written(h *store.Hold) *store.Hold {
	c := *h
	c.ID, c.State, c.StateAt, c.StateBy = 0, "", time.Time{}, ""
	c.HeldAt = c.HeldAt.UTC()
	return &c
}

// TestFormat: a hold comes back as written; a file cut short, changed, or
// with data after the record is refused with ErrCorrupt.
func TestFormat(t *testing.T) {
	h := sample("4ABC123")
	b, err := Encode(h)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("mailbrake-hold 1 ")) || !bytes.Contains(b, []byte("<draft> & notes")) {
		t.Fatalf("file %q", b)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, written(h)) {
		t.Fatalf("decoded %+v\nwant %+v", got, written(h))
	}
	head, body, _ := bytes.Cut(b, []byte("\n"))
	flip := bytes.Clone(b)
	flip[len(flip)-5] ^= 1
	for name, bad := range map[string][]byte{
		"empty":        nil,
		"cut short":    b[:len(b)-3],
		"changed":      flip,
		"after":        append(bytes.Clone(b), '\n'),
		"no header":    body,
		"version 2":    bytes.Replace(b, []byte("hold 1 "), []byte("hold 2 "), 1),
		"json after":   append(append(bytes.Clone(head), '\n'), append(bytes.Clone(body), ' ')...),
		"leading zero": bytes.Replace(b, []byte("hold 1 "), []byte("hold 1 0"), 1),
	} {
		if _, err := Decode(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Encode(&store.Hold{QueueID: "4X"}); err == nil {
		t.Error("a hold without its time encoded")
	}
	// With the findings it reports: they come back; a file without them
	// (an earlier build's) reads as reporting none.
	rep := []Finding{{Reason: "bulk-from-scripted-client", Detail: "60 recipients from zimbra-html"}, {Reason: "rate-recipients-hour"}}
	b, err = EncodeEntry(Entry{Hold: h, Report: rep})
	if err != nil {
		t.Fatal(err)
	}
	e, err := DecodeEntry(b)
	if err != nil || !reflect.DeepEqual(e.Hold, written(h)) || !reflect.DeepEqual(e.Report, rep) {
		t.Fatalf("entry %+v, %v", e, err)
	}
	if e, err := DecodeEntry(good(t, h)); err != nil || e.Report != nil {
		t.Fatalf("a file without a report: %+v, %v", e, err)
	}
}

func good(t *testing.T, h *store.Hold) []byte {
	t.Helper()
	b, err := Encode(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzDecode: Decode never panics and fails only with ErrCorrupt; what it
// accepts encodes to a file it decodes identically, and that file is
// stable. Each input is tried as a file and as the record of a file with a
// right header, so that the mutations reach the record's decoding.
func FuzzDecode(f *testing.F) {
	good, _ := Encode(sample("4ABC123"))
	f.Add(good)
	min, _ := Encode(&store.Hold{HeldAt: time.Unix(1, 0)})
	f.Add(min)
	f.Add([]byte("mailbrake-hold 1 2 00000000\n{}"))
	f.Add([]byte("mailbrake-hold 1 -1 00000000\n"))
	f.Add([]byte("mailbrake-hold 1 99999999999999999999 ffffffff\n{"))
	f.Add(good[:len(good)/2])
	f.Add([]byte(`{"held_at":"2026-01-02T03:04:05+01:00","recipients":[],"reasons":null,"QUEUE_ID":"\u0000\ud800"}`))
	f.Add([]byte(`{"held_at":"2026-01-02T03:04:05Z","size":-1}`))
	f.Add([]byte{})
	reported, _ := EncodeEntry(Entry{Hold: sample("4ABC124"), Report: []Finding{{Reason: "bulk", Detail: "60 \u00e9"}, {Reason: ""}}})
	f.Add(reported)
	f.Add([]byte(`{"held_at":"2026-01-02T03:04:05Z","report":[{"reason":"x","detail":"\ud800"},{}],"report2":1}`))
	f.Add([]byte(`{"held_at":"2026-01-02T03:04:05Z","report":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, frame(b)} {
			e, err := DecodeEntry(in)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error %v is not ErrCorrupt", err)
				}
				continue
			}
			b2, err := EncodeEntry(e)
			if err != nil {
				t.Fatalf("a decoded hold does not encode: %v", err)
			}
			e2, err := DecodeEntry(b2)
			if err != nil || !reflect.DeepEqual(e, e2) {
				t.Fatalf("round trip: %v\n%+v\n%+v", err, e, e2)
			}
			if b3, _ := EncodeEntry(e2); !bytes.Equal(b2, b3) {
				t.Fatalf("not stable:\n%q\n%q", b2, b3)
			}
		}
	})
}

// frame returns a file with record as its record and a right header.
func frame(record []byte) []byte {
	head := fmt.Sprintf("%s%d %08x\n", magic, len(record), crc32.Checksum(record, castagnoli))
	return append([]byte(head), record...)
}

// TestSpool: holds are spooled in private files and come back in order
// from a new Open; removed ones do not; an unfinished write is removed, a
// corrupt file moved aside with a logged error naming it and none of its
// content, a foreign file left alone; the next names follow the old.
func TestSpool(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool", "holds")
	var logbuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logbuf, nil))
	s, loaded, err := Open(dir, log)
	if err != nil || len(loaded) != 0 {
		t.Fatalf("%v, %d loaded", err, len(loaded))
	}
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("%s: %v %v", d, fi.Mode(), err)
		}
	}
	es, err := s.Put([]*store.Hold{sample("4A1"), sample("4A2"), sample("4A3")})
	if err != nil || len(es) != 3 || s.Len() != 3 {
		t.Fatalf("put: %v %+v, len %d", err, es, s.Len())
	}
	var total int64
	for _, e := range es {
		fi, err := os.Stat(filepath.Join(dir, e.Name))
		if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != e.Size {
			t.Fatalf("%s: %v %v", e.Name, fi, err)
		}
		total += e.Size
	}
	if s.Bytes() != total {
		t.Fatalf("bytes %d, files %d", s.Bytes(), total)
	}
	if err := s.Remove(es[1:2]); err != nil || s.Len() != 2 || s.Bytes() != total-es[1].Size {
		t.Fatalf("remove: %v, len %d", err, s.Len())
	}

	// What a kill, a disk or a stray program leaves.
	os.WriteFile(filepath.Join(dir, ".tmp-00000000000000000001.hold"), []byte("mailbrake-hold 1 "), 0o600)
	secret := "Subject: the-secret-subject"
	corrupt := "09000000000000000000.hold"
	os.WriteFile(filepath.Join(dir, corrupt), []byte("mailbrake-hold 1 30 00000000\n"+secret), 0o600)
	os.WriteFile(filepath.Join(dir, "README"), []byte("notes"), 0o600)

	s2, loaded, err := Open(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 2 || loaded[0].Hold.QueueID != "4A1" || loaded[1].Hold.QueueID != "4A3" || s2.Len() != 2 || s2.Bytes() != s.Bytes() {
		t.Fatalf("loaded %+v, len %d bytes %d", loaded, s2.Len(), s2.Bytes())
	}
	if !reflect.DeepEqual(loaded[0].Hold, written(sample("4A1"))) {
		t.Fatalf("loaded %+v", loaded[0].Hold)
	}
	if _, err := os.Stat(filepath.Join(dir, ".tmp-00000000000000000001.hold")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unfinished file kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, AsideDir, corrupt)); err != nil {
		t.Errorf("corrupt file not moved aside: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "README")); err != nil {
		t.Errorf("foreign file touched: %v", err)
	}
	logged := logbuf.String()
	if !strings.Contains(logged, "level=ERROR") || !strings.Contains(logged, filepath.Join(AsideDir, corrupt)) || strings.Contains(logged, "the-secret-subject") {
		t.Errorf("log:\n%s", logged)
	}
	es, err = s2.Put([]*store.Hold{sample("4A4")})
	if err != nil || es[0].Name <= corrupt {
		t.Fatalf("new name %q after %q: %v", es[0].Name, corrupt, err)
	}

	// A record the store refused goes aside too, under a name of its own.
	os.WriteFile(filepath.Join(dir, AsideDir, loaded[0].Name), []byte("older"), 0o600)
	s2.Aside(loaded[0], errors.New("refused"))
	if s2.Len() != 2 {
		t.Fatalf("len %d after aside", s2.Len())
	}
	if _, err := os.Stat(filepath.Join(dir, AsideDir, loaded[0].Name+".1")); err != nil {
		t.Errorf("refused file not moved aside: %v", err)
	}
	_, loaded, _ = Open(dir, log)
	if len(loaded) != 2 || loaded[0].Hold.QueueID != "4A3" || loaded[1].Hold.QueueID != "4A4" {
		t.Fatalf("loaded %+v", loaded)
	}
}

// TestSpoolUnwritable: a spool that cannot be written says so; nothing is
// counted, no temporary file is left.
func TestSpoolUnwritable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "holds")
	s, _, err := Open(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	es, err := s.Put([]*store.Hold{sample("4A1")})
	if err == nil || es[0].Name != "" || s.Len() != 0 || s.Bytes() != 0 {
		t.Fatalf("put into a removed directory: %v %+v", err, es)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(dir, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("opened a file as the spool")
	}
}
