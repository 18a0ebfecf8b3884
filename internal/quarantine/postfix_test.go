package quarantine

import (
	"testing"
	"time"
)

// A line as Postfix 3.7's postqueue -j prints it.
const sampleQueue = `{"queue_name": "hold", "queue_id": "9BE1D985260", "arrival_time": 1795887899, "message_size": 2190, "forced_expire": false, "sender": "alice@campus.example", "recipients": [{"address": "rcpt00@dest.example"}, {"address": "rcpt01@dest.example", "delay_reason": "connect refused"}]}
{"queue_name": "deferred", "queue_id": "C25E3985261", "arrival_time": 1795887900, "message_size": 500, "forced_expire": false, "sender": "", "recipients": [{"address": "x@y.example"}]}
`

func TestParseQueueJSON(t *testing.T) {
	es, err := ParseQueueJSON([]byte(sampleQueue))
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].QueueName != "hold" || es[0].QueueID != "9BE1D985260" || len(es[0].Recipients) != 2 ||
		es[0].Recipients[1] != "rcpt01@dest.example" || es[1].Sender != "" || es[1].QueueName != "deferred" {
		t.Fatalf("%+v", es)
	}
	if es, err := ParseQueueJSON(nil); err != nil || len(es) != 0 {
		t.Fatalf("empty queue: %v %v", es, err)
	}
	for _, bad := range []string{"{", `{"queue_id": "../../etc"}`, `{"queue_id": "A B"}`, "not json\n"} {
		if _, err := ParseQueueJSON([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestValidQueueID(t *testing.T) {
	for id, want := range map[string]bool{"9BE1D985260": true, "4fBzYl0LHdz9vC7": true, "": false, "-rf": false, "A/B": false, "12345": false} {
		if ValidQueueID(id) != want {
			t.Errorf("%q: want %v", id, want)
		}
	}
}

// FuzzParseQueueJSON: arbitrary postqueue output never panics, and every
// entry returned has a queue id safe to put on a command line.
func FuzzParseQueueJSON(f *testing.F) {
	f.Add([]byte(sampleQueue))
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := ParseQueueJSON(b)
		if err != nil {
			return
		}
		for _, e := range es {
			if !ValidQueueID(e.QueueID) {
				t.Fatalf("unsafe queue id %q", e.QueueID)
			}
		}
	})
}

func TestParsePostfixTime(t *testing.T) {
	for in, want := range map[string]time.Duration{"5d": 120 * time.Hour, "3600s": time.Hour, "2h": 2 * time.Hour, "1w": 168 * time.Hour, "7": 168 * time.Hour, "": 0, "x": 0} {
		if got := ParsePostfixTime(in); got != want {
			t.Errorf("%q: %v, want %v", in, got, want)
		}
	}
}
