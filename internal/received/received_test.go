package received

import (
	"slices"
	"strings"
	"testing"
)

func TestQueueIDs(t *testing.T) {
	fields := []string{
		// The re-injection smtpd's own field (Postfix 3.7 format).
		"from localhost (localhost [127.0.0.1])\r\n\tby mx.postfixtest.example (Postfix) with ESMTP id 7F1A29840C2\r\n\tfor <rcpt00@dest.example>; Thu,  3 Dec 2026 17:01:02 +0000 (UTC)",
		// amavis's field: its own ID, not a Postfix queue ID.
		"from mx.example ([127.0.0.1]) by localhost (mx.example [127.0.0.1]) (amavis, port 10024) with ESMTP id x2Ab-Cd_9 for <a@b>; Thu, 3 Dec 2026 17:01:01 +0000",
		// The first pass, long queue IDs, ESMTPSA.
		"from client.example (client.example [192.0.2.10])\n\t(Authenticated sender: alice)\n\tby mx.example (Postfix) with ESMTPSA ID 4Y5n2M0kLzz6v3\n\tfor <r@dest.example>; Thu, 3 Dec 2026 17:01:00 +0000",
		"no id here",
		"by host with SMTP id 7F1A29840C2; duplicate",
		"by host with SMTP id ; empty",
	}
	got := QueueIDs(fields)
	want := []string{"7F1A29840C2", "4Y5n2M0kLzz6v3"}
	if !slices.Equal(got, want) {
		t.Fatalf("QueueIDs = %q, want %q", got, want)
	}
	many := make([]string, 40)
	for i := range many {
		many[i] = "by x with SMTP id A" + strings.Repeat("B", i+1)
	}
	if n := len(QueueIDs(many)); n != MaxIDs {
		t.Fatalf("%d IDs, want at most %d", n, MaxIDs)
	}
}

// FuzzQueueIDs: never panics; every ID returned is a bounded alphanumeric
// word that appears in the input, without duplicates.
func FuzzQueueIDs(f *testing.F) {
	f.Add("from a by b (Postfix) with ESMTP id 4ABC for <x@y>; date", "id")
	f.Add("with id 7", "WITH LMTP ID zz9")
	f.Add("id id id", "\x00 id \xff")
	f.Fuzz(func(t *testing.T, a, b string) {
		ids := QueueIDs([]string{a, b})
		if len(ids) > MaxIDs {
			t.Fatalf("%d ids", len(ids))
		}
		seen := map[string]bool{}
		for _, id := range ids {
			if !validID(id) || seen[id] || !strings.Contains(a+" "+b, id) {
				t.Fatalf("bad id %q from %q %q", id, a, b)
			}
			seen[id] = true
		}
	})
}
