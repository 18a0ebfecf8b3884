package loadgen

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Kinds of run, the values of Result.Kind.
const (
	KindPolicy = "policy"
	KindMilter = "milter"
)

// Why a run ended, the values of Result.Stopped.
const (
	StopDuration  = "duration"  // the measured time was over
	StopCount     = "count"     // N measured requests or messages were sent
	StopCancelled = "cancelled" // the caller's context was done
	StopWatchdog  = "watchdog"  // replies were still missing long after the end; connections were closed
)

// Latency summarises the measured latencies. Percentiles come from a
// log-linear histogram and are within 0.4 % of the exact value; Min, Mean
// and Max are exact.
type Latency struct {
	Min, Mean, P50, P90, P99, P999, Max time.Duration
}

// Result is the outcome of one run.
type Result struct {
	// Kind is KindPolicy or KindMilter.
	Kind  string
	Label string
	Addr  string
	// State is the protocol_state sent (RCPT, END-OF-MESSAGE or BOTH);
	// empty for a milter run.
	State string
	Conns int
	Users int
	Skew  float64
	Rcpts int
	// Started is when the clock started (after the connections were dialled).
	Started time.Time
	// Elapsed is the measured time: from the end of the warm-up to the
	// last reply, at most the requested duration.
	Elapsed time.Duration
	// Requests counts measured requests (policy) or messages (milter)
	// that got an answer; failed ones are counted in Errors instead.
	Requests int64
	// PerSecond is Requests per second of Elapsed.
	PerSecond float64
	Latency   Latency
	// Errors counts failed measured requests or messages by kind:
	// timeout, eof, reset, refused, broken_pipe, bad_reply, negotiate,
	// other, and dial_<kind> when a connection could not be re-opened.
	Errors map[string]int64
	// Outcomes counts answers. Policy: the action keyword (DUNNO,
	// DEFER_IF_PERMIT, HOLD, 450 …). Milter: what Postfix would do with the
	// message, with the stage when it was decided before end-of-message:
	// ACCEPT, QUARANTINE (accepted and held), TEMPFAIL(451)@eom, REJECT@rcpt …
	Outcomes map[string]int64
	// Connections counts the connections (milter: sessions) opened in
	// the whole run, warm-up and the ones dialled before the clock
	// included.
	Connections int64
	// Modifications counts milter modification actions received at
	// end-of-message, quarantine included.
	Modifications int64
	// Stopped says why the run ended: StopDuration, StopCount,
	// StopCancelled or StopWatchdog.
	Stopped string
}

// ErrorCount returns the total of Errors.
func (r *Result) ErrorCount() int64 {
	var n int64
	for _, v := range r.Errors {
		n += v
	}
	return n
}

// jsonResult is the JSON form of a Result: flat, latencies in
// milliseconds, like the bench harness's rows.
type jsonResult struct {
	Kind          string           `json:"kind"`
	Label         string           `json:"label"`
	Addr          string           `json:"addr"`
	State         string           `json:"state,omitempty"`
	Conns         int              `json:"conns"`
	Users         int              `json:"users"`
	Skew          float64          `json:"skew"`
	Rcpts         int              `json:"rcpts"`
	Started       time.Time        `json:"started"`
	Seconds       float64          `json:"seconds"`
	Requests      int64            `json:"requests"`
	PerSecond     float64          `json:"per_second"`
	MinMs         float64          `json:"min_ms"`
	MeanMs        float64          `json:"mean_ms"`
	P50Ms         float64          `json:"p50_ms"`
	P90Ms         float64          `json:"p90_ms"`
	P99Ms         float64          `json:"p99_ms"`
	P999Ms        float64          `json:"p999_ms"`
	MaxMs         float64          `json:"max_ms"`
	ErrorCount    int64            `json:"errors"`
	Errors        map[string]int64 `json:"error_kinds,omitempty"`
	Outcomes      map[string]int64 `json:"outcomes"`
	Connections   int64            `json:"connections"`
	Modifications int64            `json:"modifications,omitempty"`
	Stopped       string           `json:"stopped"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fromMs(f float64) time.Duration { return time.Duration(math.Round(f * float64(time.Millisecond))) }

// MarshalJSON encodes r flat, with latencies and Elapsed in (fractional)
// milliseconds and seconds.
func (r Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(jsonResult{
		Kind: r.Kind, Label: r.Label, Addr: r.Addr, State: r.State, Conns: r.Conns,
		Users: r.Users, Skew: r.Skew, Rcpts: r.Rcpts, Started: r.Started,
		Seconds: r.Elapsed.Seconds(), Requests: r.Requests, PerSecond: r.PerSecond,
		MinMs: ms(r.Latency.Min), MeanMs: ms(r.Latency.Mean), P50Ms: ms(r.Latency.P50),
		P90Ms: ms(r.Latency.P90), P99Ms: ms(r.Latency.P99), P999Ms: ms(r.Latency.P999),
		MaxMs: ms(r.Latency.Max), ErrorCount: r.ErrorCount(), Errors: r.Errors,
		Outcomes: r.Outcomes, Connections: r.Connections, Modifications: r.Modifications,
		Stopped: r.Stopped,
	})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (r *Result) UnmarshalJSON(b []byte) error {
	var j jsonResult
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = Result{
		Kind: j.Kind, Label: j.Label, Addr: j.Addr, State: j.State, Conns: j.Conns,
		Users: j.Users, Skew: j.Skew, Rcpts: j.Rcpts, Started: j.Started,
		Elapsed: time.Duration(math.Round(j.Seconds * float64(time.Second))), Requests: j.Requests,
		PerSecond: j.PerSecond,
		Latency: Latency{Min: fromMs(j.MinMs), Mean: fromMs(j.MeanMs), P50: fromMs(j.P50Ms),
			P90: fromMs(j.P90Ms), P99: fromMs(j.P99Ms), P999: fromMs(j.P999Ms), Max: fromMs(j.MaxMs)},
		Errors: j.Errors, Outcomes: j.Outcomes, Connections: j.Connections,
		Modifications: j.Modifications, Stopped: j.Stopped,
	}
	if r.Errors == nil {
		r.Errors = map[string]int64{}
	}
	if r.Outcomes == nil {
		r.Outcomes = map[string]int64{}
	}
	return nil
}

// WriteJSON writes r as one line of JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	return json.NewEncoder(w).Encode(r)
}

func (r *Result) unit() (noun, rate string) {
	if r.Kind == KindMilter {
		return "messages", "msg/s"
	}
	return "requests", "req/s"
}

// WriteText writes r for a person to read.
func (r *Result) WriteText(w io.Writer) error {
	noun, rate := r.unit()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: addr=%s", r.Kind, r.Label, r.Addr)
	if r.State != "" {
		fmt.Fprintf(&b, " state=%s", r.State)
	}
	fmt.Fprintf(&b, " conns=%d users=%d skew=%.2f rcpts=%d\n", r.Conns, r.Users, r.Skew, r.Rcpts)
	fmt.Fprintf(&b, "  %-9s %d in %.2fs = %.1f %s (stopped: %s)\n", noun, r.Requests, r.Elapsed.Seconds(), r.PerSecond, rate, r.Stopped)
	l := r.Latency
	fmt.Fprintf(&b, "  latency   min %.3fms mean %.3fms p50 %.3fms p90 %.3fms p99 %.3fms p99.9 %.3fms max %.3fms\n",
		ms(l.Min), ms(l.Mean), ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max))
	fmt.Fprintf(&b, "  errors    %s\n", r.errorsString())
	fmt.Fprintf(&b, "  outcomes  %s\n", r.outcomesString())
	if r.Kind == KindMilter {
		fmt.Fprintf(&b, "  sessions  %d, modifications %d\n", r.Connections, r.Modifications)
	} else {
		fmt.Fprintf(&b, "  connections %d\n", r.Connections)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMarkdownHeader writes the header of the table WriteMarkdownRow
// writes rows of, for kind (KindPolicy or KindMilter). The columns are
// those of the bench harness's tables, so rows can be added to them.
func WriteMarkdownHeader(w io.Writer, kind string) error {
	var err error
	if kind == KindMilter {
		_, err = io.WriteString(w, "| peer | conns | messages | msg/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | actions |\n"+
			"|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	} else {
		_, err = io.WriteString(w, "| peer | state | conns | requests | req/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | actions |\n"+
			"|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	}
	return err
}

// WriteMarkdownRow writes r as one row of a Markdown table (see
// WriteMarkdownHeader).
func (r *Result) WriteMarkdownRow(w io.Writer) error {
	l := r.Latency
	var err error
	if r.Kind == KindMilter {
		_, err = fmt.Fprintf(w, "| %s | %d | %d | %.0f | %.2f | %.2f | %.2f | %.2f | %s | %s |\n",
			mdEscape(r.Label), r.Conns, r.Requests, r.PerSecond, ms(l.P50), ms(l.P99), ms(l.P999), ms(l.Max),
			r.errorsString(), r.outcomesString())
	} else {
		_, err = fmt.Fprintf(w, "| %s | %s | %d | %d | %.0f | %.3f | %.3f | %.3f | %.3f | %s | %s |\n",
			mdEscape(r.Label), r.State, r.Conns, r.Requests, r.PerSecond, ms(l.P50), ms(l.P99), ms(l.P999), ms(l.Max),
			r.errorsString(), r.outcomesString())
	}
	return err
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// outcomesString lists outcomes by share, largest first.
func (r *Result) outcomesString() string {
	keys := slices.SortedFunc(maps.Keys(r.Outcomes), func(a, b string) int {
		return cmp.Or(cmp.Compare(r.Outcomes[b], r.Outcomes[a]), strings.Compare(a, b))
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.1f%%", k, 100*float64(r.Outcomes[k])/float64(max(r.Requests, 1))))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func (r *Result) errorsString() string {
	n := r.ErrorCount()
	if n == 0 {
		return "0"
	}
	parts := make([]string, 0, len(r.Errors))
	for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, r.Errors[k]))
	}
	return fmt.Sprintf("%d (%s)", n, strings.Join(parts, " "))
}

// Output says how a Result is written; it is the output half of the
// loadgen command line.
type Output struct {
	// Format is "text", "json" or "md" (one Markdown table row).
	Format string
	// MarkdownHeader writes the table header before an "md" row.
	MarkdownHeader bool
	// JSONFile, if set, also receives the result as JSON.
	JSONFile string
}

// AddFlags binds o's fields to --format, --md-header and --json-out.
func (o *Output) AddFlags(fs *pflag.FlagSet) {
	if o.Format == "" {
		o.Format = "text"
	}
	fs.StringVar(&o.Format, "format", o.Format, "output: text, json or md (a Markdown table row)")
	fs.BoolVar(&o.MarkdownHeader, "md-header", o.MarkdownHeader, "with --format md: write the table header first")
	fs.StringVar(&o.JSONFile, "json-out", o.JSONFile, "also write the result as JSON to this file")
}

// Check reports a bad Format, so a command can refuse it before a run.
func (o *Output) Check() error {
	switch o.Format {
	case "", "text", "json", "md":
		return nil
	}
	return fmt.Errorf("format: %q is not text, json or md", o.Format)
}

// Write writes r to w in o.Format and, if o.JSONFile is set, as JSON to
// that file.
func (o *Output) Write(w io.Writer, r *Result) error {
	if err := o.Check(); err != nil {
		return err
	}
	var err error
	switch o.Format {
	case "json":
		err = r.WriteJSON(w)
	case "md":
		if o.MarkdownHeader {
			err = WriteMarkdownHeader(w, r.Kind)
		}
		if err == nil {
			err = r.WriteMarkdownRow(w)
		}
	default:
		err = r.WriteText(w)
	}
	if err != nil {
		return fmt.Errorf("writing result: %w", err)
	}
	if o.JSONFile != "" {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding result: %w", err)
		}
		if err := os.WriteFile(o.JSONFile, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("writing result: %w", err)
		}
	}
	return nil
}
