package replay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"sort"
	"time"
)

// maxReportAccounts bounds the report: the accounts with holds or state
// changes first, then the busiest.
const maxReportAccounts = 30

type reportEvent struct {
	t      time.Time
	rcpts  int
	action string
	state  string
}

// Report collects replay output lines (it is an io.Writer for them) and
// renders a self-contained HTML report with a sending timeline per account.
type Report struct {
	partial  []byte
	accounts map[string][]reportEvent
}

// NewReport returns an empty report.
func NewReport() *Report { return &Report{accounts: map[string][]reportEvent{}} }

// Write takes replay output (JSON Lines).
func (r *Report) Write(p []byte) (int, error) {
	r.partial = append(r.partial, p...)
	for {
		i := bytes.IndexByte(r.partial, '\n')
		if i < 0 {
			break
		}
		var o Output
		if json.Unmarshal(r.partial[:i], &o) == nil && o.Error == "" && o.Direction != "inbound" {
			if t, err := time.Parse(time.RFC3339, o.Time); err == nil {
				r.accounts[o.Account] = append(r.accounts[o.Account], reportEvent{t, o.Recipients, o.Action, o.AccountState})
			}
		}
		r.partial = r.partial[i+1:]
	}
	return len(p), nil
}

type chart struct {
	Account  string
	Messages int
	Held     int
	States   string
	SVG      template.HTML
}

// WriteHTML renders the report.
func (r *Report) WriteHTML(w io.Writer, sum *Summary) error {
	type acc struct {
		name          string
		ev            []reportEvent
		held, changes int
	}
	var list []acc
	for name, ev := range r.accounts {
		a := acc{name: name, ev: ev}
		prev := "normal"
		for _, e := range ev {
			if e.action != "allow" && e.action != "tag" {
				a.held++
			}
			if e.state != prev {
				a.changes++
				prev = e.state
			}
		}
		list = append(list, a)
	}
	sort.Slice(list, func(i, j int) bool {
		ai, aj := list[i].held+list[i].changes, list[j].held+list[j].changes
		if (ai > 0) != (aj > 0) {
			return ai > 0
		}
		if len(list[i].ev) != len(list[j].ev) {
			return len(list[i].ev) > len(list[j].ev)
		}
		return list[i].name < list[j].name
	})
	if len(list) > maxReportAccounts {
		list = list[:maxReportAccounts]
	}
	var charts []chart
	for _, a := range list {
		charts = append(charts, chart{Account: a.name, Messages: len(a.ev), Held: a.held, States: statePath(a.ev), SVG: timeline(a.ev)})
	}
	return reportTmpl.Execute(w, map[string]any{"Summary": sum, "Charts": charts, "Shown": len(charts), "Total": len(r.accounts)})
}

func statePath(ev []reportEvent) string {
	out, prev := "normal", "normal"
	for _, e := range ev {
		if e.state != prev && e.state != "" {
			out += " → " + e.state
			prev = e.state
		}
	}
	return out
}

// timeline draws recipients per message over time: grey allowed, red held
// (or deferred/rejected), with a vertical line at every state change.
func timeline(ev []reportEvent) template.HTML {
	const wdt, hgt, pad = 900.0, 120.0, 4.0
	if len(ev) == 0 {
		return ""
	}
	t0, t1 := ev[0].t, ev[len(ev)-1].t
	span := t1.Sub(t0).Seconds()
	if span <= 0 {
		span = 1
	}
	maxR := 1
	for _, e := range ev {
		maxR = max(maxR, e.rcpts)
	}
	x := func(t time.Time) float64 { return pad + (wdt-2*pad)*t.Sub(t0).Seconds()/span }
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img"><rect width="100%%" height="100%%" fill="#fafafa"/>`, wdt, hgt+16, wdt, hgt+16)
	prev := "normal"
	for _, e := range ev {
		h := (hgt - 2*pad) * float64(e.rcpts) / float64(maxR)
		color := "#999"
		if e.action != "allow" && e.action != "tag" {
			color = "#d33"
		}
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5"><title>%s %d recipients: %s</title></line>`,
			x(e.t), x(e.t), hgt-pad, hgt-pad-h, color, e.t.Format(time.RFC3339), e.rcpts, template.HTMLEscapeString(e.action))
		if e.state != prev && e.state != "" {
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="0" y2="%.0f" stroke="#36c" stroke-dasharray="3,2"/><text x="%.1f" y="%.0f" font-size="10" fill="#36c">%s</text>`, x(e.t),
				x(e.t), hgt, x(e.t)+2, hgt+12, template.HTMLEscapeString(e.state))
			prev = e.state
		}
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="10" font-size="10" fill="#666">max %d recipients/message · %s – %s</text></svg>`, pad, maxR, t0.Format("2006-01-02"), t1.Format("2006-01-02"))
	return template.HTML(b.String())
}

var reportTmpl = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mailbrake replay report</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}td,th{padding:2px 10px;text-align:left}
h2{font-size:15px;margin:1.5em 0 .3em}.k{color:#666}</style></head><body>
<h1>mailbrake replay report</h1>
<p>{{.Summary.Lines}} lines: {{.Summary.Messages}} outbound messages, {{.Summary.Inbound}} inbound, {{.Summary.Errors}} errors.</p>
<table><tr><th>verdict</th><th>messages</th></tr>{{range $k, $v := .Summary.Actions}}<tr><td>{{$k}}</td><td>{{$v}}</td></tr>{{end}}</table>
<table><tr><th>reason</th><th>findings</th></tr>{{range $k, $v := .Summary.Reasons}}<tr><td>{{$k}}</td><td>{{$v}}</td></tr>{{end}}</table>
<table><tr><th>account state</th><th>accounts</th></tr>{{range $k, $v := .Summary.AccountsByState}}<tr><td>{{$k}}</td><td>{{$v}}</td></tr>{{end}}</table>
<p class="k">Timelines: recipients per message over time; red = held, deferred or rejected; blue dashed = account state change. {{.Shown}} of {{.Total}} accounts shown (those with holds or state changes first).</p>
{{range .Charts}}<h2>{{.Account}}</h2><div class="k">{{.Messages}} messages, {{.Held}} not allowed; {{.States}}</div>{{.SVG}}{{end}}
</body></html>
`))
