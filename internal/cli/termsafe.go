package cli

import (
	"fmt"
	"io"
	"strings"
)

// safeWriter keeps what the CLI prints from acting on the admin's
// terminal: message subjects, headers and previews come from senders, and
// an ESC sequence or a carriage return in them would rewrite the screen.
// Every control character but newline and tab (C0, DEL, and the C1 range
// U+0080–U+009F) is written as a visible escape (\x1b, \u009b). JSON
// output has none left to escape.
type safeWriter struct {
	w      io.Writer
	pendC2 bool // the last Write ended in 0xC2, the first byte of a C1 control
}

func (s *safeWriter) Write(p []byte) (int, error) {
	out := make([]byte, 0, len(p)+8)
	for i := 0; i < len(p); i++ {
		c := p[i]
		if s.pendC2 {
			s.pendC2 = false
			if c >= 0x80 && c <= 0x9f {
				out = fmt.Appendf(out, `\u%04x`, rune(c))
				continue
			}
			out = append(out, 0xC2)
		}
		switch {
		case c == '\n' || c == '\t':
			out = append(out, c)
		case c < 0x20 || c == 0x7f:
			out = fmt.Appendf(out, `\x%02x`, c)
		case c == 0xC2:
			if i+1 < len(p) {
				if n := p[i+1]; n >= 0x80 && n <= 0x9f {
					out = fmt.Appendf(out, `\u%04x`, rune(n))
					i++
					continue
				}
				out = append(out, c)
			} else {
				s.pendC2 = true
			}
		default:
			out = append(out, c)
		}
	}
	if _, err := s.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// oneLine makes a sender-written value (a subject, an address) a single
// line: its line breaks are shown, not obeyed, so it cannot print fake
// lines under its own.
func oneLine(s string) string {
	return strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(s)
}
