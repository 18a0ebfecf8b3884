package quarantine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestParsePostcat reads `postcat -e -h -q ID ID` output as Postfix 3.7
// (Debian 12) writes it (testdata/postcat-e-h.txt, from two messages
// queued through a real Postfix, trimmed): the SASL login from the named
// attribute, the sender, every copy of the account header in order with
// folded lines joined; a file cut short is left out.
func TestParsePostcat(t *testing.T) {
	out, err := os.ReadFile("testdata/postcat-e-h.txt")
	if err != nil {
		t.Fatal(err)
	}
	got := ParsePostcat(out, "X-Authenticated-User")
	want := []Origin{
		{QueueID: "3A9BA98AA51", SASLUsername: "jdoe", Sender: "alias@example.com"},
		{QueueID: "7878A988946", Sender: "persona@example.com", Header: []string{"forged@example.com", "eve@campus.example (relay)"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	// Without a header to read: envelopes only.
	if got := ParsePostcat(out, ""); len(got) != 2 || got[1].Header != nil {
		t.Fatalf("without a header: %+v", got)
	}
}

// FuzzParsePostcat: the parser never panics and returns only files that
// ended, with valid queue IDs.
func FuzzParsePostcat(f *testing.F) {
	if b, err := os.ReadFile("testdata/postcat-e-h.txt"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("*** ENVELOPE RECORDS x ***\n*** MESSAGE FILE END x ***\n"))
	f.Add([]byte("*** ENVELOPE RECORDS deferred/A/ABCDEF1 ***\n*** MESSAGE CONTENTS deferred/A/ABCDEF1 ***\n\tcont\nX-A: b\n\tc\n*** MESSAGE FILE END deferred/A/ABCDEF1 ***\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, o := range ParsePostcat(b, "X-A") {
			if !ValidQueueID(o.QueueID) || !strings.Contains(string(b), o.QueueID) {
				t.Fatalf("origin %+v", o)
			}
		}
	})
}

// TestOriginsPostcatFails: a postcat that fails for another reason than a
// message gone from the queue (a wrong config directory) ends the reading
// with its error, after one run: what was not read is not taken as not
// there.
func TestOriginsPostcatFails(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "runs")
	script := filepath.Join(dir, "postcat")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho run >> "+count+"\necho 'postcat: fatal: open /etc/postfix-x/main.cf: No such file or directory' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 450)
	for i := range ids {
		ids[i] = fmt.Sprintf("ABCDEF%05d", i)
	}
	p := &Postfix{Postcat: script}
	got, err := p.Origins(context.Background(), ids, "")
	if err == nil || len(got) != 0 {
		t.Fatalf("origins %v, err %v; want the error", got, err)
	}
	if b, _ := os.ReadFile(count); strings.Count(string(b), "run") != 1 {
		t.Fatalf("postcat ran %d times", strings.Count(string(b), "run"))
	}
}
