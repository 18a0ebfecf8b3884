// Package received reads the queue IDs that MTAs name in a message's
// Received header fields. A message that a content filter (amavis, a
// FILTER_README service) hands back to Postfix passes smtpd twice, with
// two queue IDs; the second pass carries the first pass's Received field,
// "… by mx.example.org (Postfix) with ESMTPSA id 4ABC123 for <…>; …",
// and so names the first queue ID. The engine uses that to recognise
// re-injected mail (see engine's message book).
//
// It parses only; it decides nothing. Received fields are written by every
// host a message passed, the sender's included, so an ID found here means
// something only when the engine has seen that queue ID itself.
package received

import "strings"

// MaxIDs bounds the IDs returned: re-injection adds one or two Received
// fields, and a forwarded message's older ones do not matter.
const MaxIDs = 8

// maxFields bounds the Received fields read.
const maxFields = 16

// QueueIDs returns the IDs named by "id <ID>" in the given Received field
// values, in the order given (the newest field first, as they appear in a
// message), without duplicates, at most MaxIDs of them. An ID is 1 to 64
// ASCII letters and digits, as Postfix's short (hex) and long
// (enable_long_queue_ids) queue IDs are; anything else is skipped.
func QueueIDs(fields []string) []string {
	var out []string
	for i, f := range fields {
		if i >= maxFields || len(out) >= MaxIDs {
			break
		}
		id := idOf(f)
		if id == "" {
			continue
		}
		dup := false
		for _, o := range out {
			if o == id {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, id)
		}
	}
	return out
}

// idOf returns the ID of one Received field: the word after the first
// "id" that follows a "with" clause (RFC 5321 section 4.4: "with" protocol,
// then "id"), compared case-insensitively, before the ";" date part.
func idOf(f string) string {
	if semi := strings.LastIndexByte(f, ';'); semi >= 0 {
		f = f[:semi]
	}
	words := strings.Fields(f)
	with := false
	for i := 0; i+1 < len(words); i++ {
		if strings.EqualFold(words[i], "with") {
			with = true
			continue
		}
		if !with || !strings.EqualFold(words[i], "id") {
			continue
		}
		id := words[i+1]
		if validID(id) {
			return id
		}
		return ""
	}
	return ""
}

func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}
