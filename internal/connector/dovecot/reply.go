package dovecot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Reply kinds: the first element of a reply entry.
const (
	kindResponse = "doveadmResponse"
	kindError    = "error"
)

// reply is one parsed entry of a doveadm HTTP API answer.
type reply struct {
	// Kind is kindResponse or kindError.
	Kind string
	// Rows are the rows of a doveadmResponse: one object per line of the
	// command's formatted output, every value as text.
	Rows []map[string]string
	// ErrType and ExitCode describe an error entry: ErrType "exitCode"
	// with the command's exit code, or "unknownMethod" / "invalidRequest"
	// (with exit code 0) when the request was not understood.
	ErrType  string
	ExitCode int
	// Tag is the request's tag, echoed.
	Tag string
}

// errorBody is the second element of an error entry. Dovecot writes
// {"type":"exitCode", "exitCode":68}.
type errorBody struct {
	Type     string      `json:"type"`
	ExitCode json.Number `json:"exitCode"`
}

// parseReply parses the body of a 200 answer to a single command:
// exactly one [kind, data, tag] entry.
func parseReply(data []byte) (reply, error) {
	var entries []json.RawMessage
	if err := json.Unmarshal(data, &entries); err != nil {
		return reply{}, fmt.Errorf("reply is not a JSON array: %w", err)
	}
	if len(entries) != 1 {
		return reply{}, fmt.Errorf("reply has %d entries, want 1", len(entries))
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(entries[0], &parts); err != nil {
		return reply{}, fmt.Errorf("reply entry is not an array: %w", err)
	}
	if len(parts) != 3 {
		return reply{}, fmt.Errorf("reply entry has %d elements, want 3 (kind, data, tag)", len(parts))
	}
	var r reply
	if err := json.Unmarshal(parts[0], &r.Kind); err != nil {
		return reply{}, fmt.Errorf("reply kind: %w", err)
	}
	if err := json.Unmarshal(parts[2], &r.Tag); err != nil {
		return reply{}, fmt.Errorf("reply tag: %w", err)
	}
	switch r.Kind {
	case kindResponse:
		rows, err := parseRows(parts[1])
		if err != nil {
			return reply{}, err
		}
		r.Rows = rows
	case kindError:
		var eb errorBody
		dec := json.NewDecoder(bytes.NewReader(parts[1]))
		dec.UseNumber()
		if err := dec.Decode(&eb); err != nil {
			return reply{}, fmt.Errorf("error entry: %w", err)
		}
		if eb.Type == "" {
			return reply{}, errors.New("error entry without a type")
		}
		r.ErrType = eb.Type
		if eb.ExitCode != "" {
			code, err := strconv.Atoi(string(eb.ExitCode))
			if err != nil {
				return reply{}, fmt.Errorf("error entry: exit code %q", eb.ExitCode)
			}
			r.ExitCode = code
		}
	default:
		return reply{}, fmt.Errorf("unknown reply kind %q", r.Kind)
	}
	return r, nil
}

// parseRows parses a doveadmResponse's data: an array of objects. doveadm
// writes every value as a JSON string; other values are kept as their JSON
// text, with invalid UTF-8 replaced by U+FFFD.
func parseRows(data json.RawMessage) ([]map[string]string, error) {
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("response data is not an array of objects: %w", err)
	}
	rows := make([]map[string]string, 0, len(raw))
	for _, obj := range raw {
		if obj == nil {
			return nil, errors.New("response row is null")
		}
		row := make(map[string]string, len(obj))
		for k, v := range obj {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				// A non-string value is kept as its JSON text, made valid
				// UTF-8 as every decoded string is (a raw value may hold
				// invalid bytes inside a nested string).
				s = strings.ToValidUTF8(string(bytes.TrimSpace(v)), "\uFFFD")
			}
			row[k] = s
		}
		rows = append(rows, row)
	}
	return rows, nil
}
