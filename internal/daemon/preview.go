package daemon

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"github.com/mailbrake/mailbrake/internal/leakscan"
	"github.com/mailbrake/mailbrake/internal/milter"
)

// textPreview decodes what the milter kept of the body (the first
// PreviewLimit bytes) into readable text of at most limit bytes, with the
// MIME walk the password-leak scan makes (leakscan.Text). The raw bytes
// are used when no text comes out of it. The preview is stored for the
// reviewer; it is never logged.
func textPreview(msg *milter.Message, limit int) string {
	if limit <= 0 || len(msg.Preview) == 0 {
		return ""
	}
	var raw bytes.Buffer
	for _, h := range msg.Headers {
		if strings.EqualFold(h.Name, "Content-Type") || strings.EqualFold(h.Name, "Content-Transfer-Encoding") || strings.EqualFold(h.Name, "MIME-Version") {
			raw.WriteString(h.Name + ": " + h.Value + "\r\n")
		}
	}
	raw.WriteString("\r\n")
	raw.Write(msg.Preview)
	s := leakscan.Text(&raw, limit)
	if strings.TrimSpace(s) == "" {
		s = string(msg.Preview)
	}
	return bound(strings.ToValidUTF8(s, "\uFFFD"), limit)
}

func bound(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	s = s[:limit]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
