package dovecot

import (
	"encoding/json"
	"reflect"
	"testing"
)

// encodeReply writes r the way Dovecot does: the inverse of parseReply.
func encodeReply(t *testing.T, r reply) []byte {
	t.Helper()
	var data any
	switch r.Kind {
	case kindResponse:
		rows := r.Rows
		if rows == nil {
			rows = []map[string]string{}
		}
		data = rows
	case kindError:
		data = map[string]any{"type": r.ErrType, "exitCode": r.ExitCode}
	}
	b, err := json.Marshal([]any{[]any{r.Kind, data, r.Tag}})
	if err != nil {
		t.Fatalf("encoding %+v: %v", r, err)
	}
	return b
}

// FuzzParseReply checks that parseReply never panics, and that a reply it
// accepts, written back in Dovecot's format, parses to the same reply.
// Seeds are in testdata/fuzz/FuzzParseReply.
func FuzzParseReply(f *testing.F) {
	for _, tc := range capturedReplies {
		f.Add([]byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseReply(data)
		if err != nil {
			return
		}
		if r.Kind != kindResponse && r.Kind != kindError {
			t.Fatalf("accepted kind %q", r.Kind)
		}
		again, err := parseReply(encodeReply(t, r))
		if err != nil {
			t.Fatalf("re-encoded reply does not parse: %v", err)
		}
		if len(r.Rows) == 0 && len(again.Rows) == 0 {
			again.Rows = r.Rows // nil and empty are the same answer
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip: got %+v, want %+v", again, r)
		}
	})
}
