package web

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/mailbrake/mailbrake/internal/api"
)

// chart is a bar chart of hourly volume, drawn by the "chart" template as
// inline SVG: bars of messages with the held ones over them, a line of
// recipients and markers for events. Every coordinate is computed here, so
// the template only places numbers.
type chart struct {
	Label                  string // the accessible name
	Width, Height          float64
	Left, Top, Right, Base float64 // the plot area; Base is the zero line
	Bars                   []chartBar
	Line                   string // polyline points of recipients
	YTicks, XTicks         []chartTick
	Events                 []chartEvent
}

type chartBar struct {
	X, W, Y, H, HeldY, HeldH float64
	Title                    string
}

type chartTick struct {
	Pos   float64
	Label string
}

type chartEvent struct {
	X     float64
	Class string
	Title string
}

// Chart geometry in SVG units; the CSS scales the whole to the page width.
const (
	chartWidth  = 720
	chartHeight = 200
	chartLeft   = 48 // room for the y labels
	chartRight  = 8
	chartTop    = 10
	chartBottom = 24 // room for the x labels
)

// newChart lays out points (hourly, oldest first) and events; nil when there
// are no points.
func newChart(label string, points []api.VolumePoint, events []api.TimelineEvent) *chart {
	if len(points) == 0 {
		return nil
	}
	c := &chart{Label: label, Width: chartWidth, Height: chartHeight, Left: chartLeft, Top: chartTop,
		Right: chartWidth - chartRight, Base: chartHeight - chartBottom}
	var top int64
	for _, p := range points {
		top = max(top, p.Messages, p.Recipients, p.Held)
	}
	scale := niceCeil(top)
	y := func(v int64) float64 { return c.Base - float64(v)/float64(scale)*(c.Base-c.Top) }
	slot := (c.Right - c.Left) / float64(len(points))
	bar := math.Max(1, slot*0.7)
	line := make([]string, 0, len(points))
	// An x label every few hours: about six labels whatever the span.
	every := max(1, (len(points)+5)/6)
	for i, p := range points {
		x := c.Left + float64(i)*slot
		b := chartBar{X: x + (slot-bar)/2, W: bar, Y: y(p.Messages), HeldY: y(p.Held)}
		b.H, b.HeldH = c.Base-b.Y, c.Base-b.HeldY
		b.Title = fmt.Sprintf("%s: %d messages, %d recipients, %d held", formatTime(p.Time), p.Messages, p.Recipients, p.Held)
		c.Bars = append(c.Bars, b)
		line = append(line, fmt.Sprintf("%.1f,%.1f", x+slot/2, y(p.Recipients)))
		if i%every == 0 {
			c.XTicks = append(c.XTicks, chartTick{Pos: x + slot/2, Label: p.Time.UTC().Format("15:04")})
		}
	}
	c.Line = strings.Join(line, " ")
	for _, v := range []int64{0, scale / 2, scale} {
		c.YTicks = append(c.YTicks, chartTick{Pos: y(v), Label: fmt.Sprint(v)})
	}
	// Events sit on the time axis: from the first hour's start to the last
	// hour's end.
	step := time.Hour
	if len(points) > 1 {
		step = points[1].Time.Sub(points[0].Time)
	}
	start, end := points[0].Time, points[len(points)-1].Time.Add(step)
	if span := end.Sub(start); span > 0 {
		for _, e := range events {
			if e.Time.Before(start) || e.Time.After(end) {
				continue
			}
			x := c.Left + float64(e.Time.Sub(start))/float64(span)*(c.Right-c.Left)
			c.Events = append(c.Events, chartEvent{X: x, Class: eventClass(e.Kind), Title: formatTime(e.Time) + " " + e.Kind + ": " + e.Text})
		}
	}
	return c
}

// eventClass is the CSS class of an event marker; kinds come from data, so
// only known ones become class names.
func eventClass(kind string) string {
	switch kind {
	case "hold", "state", "incident":
		return "ev-" + kind
	}
	return "ev-other"
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 2, so
// the middle tick is a whole number).
func niceCeil(v int64) int64 {
	if v <= 2 {
		return 2
	}
	for p := int64(1); p <= math.MaxInt64/10; p *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if m*p >= v {
				return m * p
			}
		}
	}
	return v
}
