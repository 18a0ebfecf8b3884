package daemon

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // charset conversion for previews

	"github.com/mailbrake/mailbrake/internal/milter"
)

// maxPreviewParts bounds the MIME walk of a preview.
const maxPreviewParts = 32

// textPreview decodes what the milter kept of the body (the first
// PreviewLimit bytes) into readable text of at most limit bytes: text parts
// after transfer decoding and charset conversion, HTML reduced to text.
// The raw bytes are used when the MIME structure cannot be read. The
// preview is stored for the reviewer; it is never logged.
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
	var out strings.Builder
	e, err := message.Read(&raw)
	if e != nil && (err == nil || message.IsUnknownCharset(err) || message.IsUnknownEncoding(err)) {
		walkText(e, &out, limit, 0)
	}
	s := out.String()
	if strings.TrimSpace(s) == "" {
		s = string(msg.Preview)
	}
	return bound(strings.ToValidUTF8(s, "\uFFFD"), limit)
}

func walkText(e *message.Entity, out *strings.Builder, limit, depth int) {
	if depth > 5 || out.Len() >= limit {
		return
	}
	if mr := e.MultipartReader(); mr != nil {
		for i := 0; i < maxPreviewParts && out.Len() < limit; i++ {
			p, err := mr.NextPart()
			if p == nil || (err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err)) {
				return
			}
			walkText(p, out, limit, depth+1)
		}
		return
	}
	ct, _, _ := e.Header.ContentType()
	if ct != "" && !strings.HasPrefix(ct, "text/") {
		return
	}
	b, _ := io.ReadAll(io.LimitReader(e.Body, int64(limit-out.Len()+1)))
	text := string(b)
	if ct == "text/html" {
		text = htmlToText(text)
	}
	if out.Len() > 0 {
		out.WriteString("\n")
	}
	out.WriteString(text)
}

var (
	htmlDrop  = regexp.MustCompile(`(?is)<(script|style|head)\b.*?</(script|style|head)>`)
	htmlBreak = regexp.MustCompile(`(?i)<(br|/p|/div|/tr|/li|/h[1-6])\b[^>]*>`)
	htmlTag   = regexp.MustCompile(`(?s)<[^>]*>`)
	blankRuns = regexp.MustCompile(`\n[ \t]*\n([ \t]*\n)+`)
)

var htmlEntities = strings.NewReplacer("&nbsp;", " ", "&amp;", "&", "&lt;", "<", "&gt;", ">", "&quot;", `"`, "&#39;", "'")

// htmlToText reduces HTML to readable text for a preview.
func htmlToText(s string) string {
	s = htmlDrop.ReplaceAllString(s, "")
	s = htmlBreak.ReplaceAllString(s, "\n")
	s = htmlTag.ReplaceAllString(s, "")
	s = htmlEntities.Replace(s)
	return blankRuns.ReplaceAllString(s, "\n\n")
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
