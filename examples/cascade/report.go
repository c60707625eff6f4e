package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/resilient-go/resilient"
)

const barWidth = 20 // characters for one tick's calls

func writeIntro(w io.Writer, cfg config) {
	fmt.Fprintf(w, "A product page calls \"recommendations\", which answers in %v until its\n", queryTime)
	fmt.Fprintf(w, "query hangs, from %s to %s of a %s run. %d users a second ask for the page;\n",
		seconds(cfg.Healthy), seconds(cfg.Healthy+cfg.Sick), seconds(cfg.length()), cfg.Rate)
	fmt.Fprintf(w, "each waits at most %v. All on 127.0.0.1; the same load runs twice.\n", cfg.Patience)
}

func writeChartHeader(w io.Writer) {
	fmt.Fprintf(w, "%10s %5s %9s %6s %7s %9s   %s\n",
		"arrived", "ok", "fallback", "error", "p95", "recs got", "█ ok  ░ fallback  x error")
}

// writeChartLine writes tick k: what happened to the calls that arrived in
// it, how many requests recommendations received in it, and what changed.
func writeChartLine(w io.Writer, cfg config, k int, calls []call, reached int, moves []transition) {
	var n [3]int
	lat := make([]time.Duration, 0, len(calls))
	for _, c := range calls {
		n[c.outcome]++
		lat = append(lat, c.latency)
	}
	from, to := time.Duration(k)*cfg.Tick, min(time.Duration(k+1)*cfg.Tick, cfg.length())
	span := strconv.FormatFloat(from.Seconds(), 'f', -1, 64) + "-" + seconds(to)
	line := fmt.Sprintf("%10s %5d %9d %6d %7s %9d   %-*s", span, n[served], n[degraded], n[failed],
		duration(percentile(lat, 0.95)), reached, barWidth, bar(n, cfg.perTick()))
	if notes := tickNotes(cfg, from, to, moves); notes != "" {
		line += "  " + notes
	}
	fmt.Fprintln(w, strings.TrimRight(line, " "))
}

// bar draws the outcomes n as barWidth characters for full calls.
func bar(n [3]int, full int) string {
	var width [3]int
	sum, drawn := 0, 0
	for o, count := range n {
		sum += count
		upto := int(math.Round(float64(sum) * barWidth / float64(full)))
		width[o], drawn = upto-drawn, upto
	}
	// An outcome that happened at all shows: it takes a mark from the widest.
	for o, count := range n {
		if count > 0 && width[o] == 0 {
			widest := 0
			for i := range width {
				if width[i] > width[widest] {
					widest = i
				}
			}
			width[widest]--
			width[o]++
		}
	}
	marks := [3]string{served: "█", degraded: "░", failed: "x"}
	var b strings.Builder
	for o, w := range width {
		b.WriteString(strings.Repeat(marks[o], w))
	}
	return b.String()
}

// tickNotes says what changed in [from, to): the dependency's health and
// the breaker's state.
func tickNotes(cfg config, from, to time.Duration, moves []transition) string {
	var notes []string
	in := func(t time.Duration) bool { return t >= from && t < to }
	if in(cfg.Healthy) {
		notes = append(notes, "recommendations hangs")
	}
	if in(cfg.Healthy + cfg.Sick) {
		notes = append(notes, "recommendations recovers")
	}
	if len(moves) > 0 {
		states := []string{moves[0].from.String()}
		for _, m := range moves {
			states = append(states, m.to.String())
		}
		notes = append(notes, "breaker "+strings.Join(states, " → "))
	}
	return strings.Join(notes, "; ")
}

// writeComparison writes the two runs side by side.
func writeComparison(w io.Writer, cfg config, a, b *result) {
	row := func(label, x, y string) { fmt.Fprintf(w, "%-44s %13s %21s\n", label, x, y) }
	count := func(r *result, o outcome) string { return strconv.Itoa(r.count(o)) }
	sickUntil := cfg.Healthy + cfg.Sick

	row("", a.name, b.name)
	row("product pages asked for", strconv.Itoa(len(a.calls)), strconv.Itoa(len(b.calls)))
	row("  served with recommendations", count(a, served), count(b, served))
	row("  served without them (fallback)", count(a, degraded), count(b, degraded))
	row("  errors: the user got no page", count(a, failed), count(b, failed))
	for _, p := range []float64{0.50, 0.95, 0.99} {
		label := fmt.Sprintf("latency p%.0f", p*100)
		row(label, duration(a.percentile(p, 0, cfg.length())), duration(b.percentile(p, 0, cfg.length())))
	}
	row("  p95 from the breaker opening to recovery", a.p95Open(sickUntil), b.p95Open(sickUntil))
	row("goroutines at peak (whole process)", strconv.Itoa(a.peakGoroutines), strconv.Itoa(b.peakGoroutines))
	row("requests that reached recommendations", strconv.Itoa(a.reachedTotal()), strconv.Itoa(b.reachedTotal()))
	row("  while it hung", strconv.Itoa(a.reachedSick), strconv.Itoa(b.reachedSick))
}

// p95Open is the p95 latency of the calls that arrived from the breaker's
// first opening until until, or "-" if it never opened.
func (r *result) p95Open(until time.Duration) string {
	opened := r.firstOpen()
	if opened < 0 || opened >= until {
		return "-"
	}
	return duration(r.percentile(0.95, opened, until))
}

// firstOpen returns when the breaker first opened, or -1.
func (r *result) firstOpen() time.Duration {
	for _, t := range r.transitions {
		if t.to == resilient.StateOpen {
			return t.at
		}
	}
	return -1
}

func (r *result) count(o outcome) int {
	n := 0
	for _, c := range r.calls {
		if c.outcome == o {
			n++
		}
	}
	return n
}

func (r *result) reachedTotal() int {
	n := 0
	for _, k := range r.reached {
		n += k
	}
	return n
}

// percentile is the p-th latency percentile of the calls that arrived in
// [from, to).
func (r *result) percentile(p float64, from, to time.Duration) time.Duration {
	var lat []time.Duration
	for _, c := range r.calls {
		if c.arrived >= from && c.arrived < to {
			lat = append(lat, c.latency)
		}
	}
	return percentile(lat, p)
}

// percentile returns the nearest-rank p-th percentile of lat, which it
// sorts; zero for none.
func percentile(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	i := int(math.Ceil(p*float64(len(lat)))) - 1
	return lat[max(i, 0)]
}

// duration formats d with three significant digits at most.
func duration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return strconv.FormatInt(d.Microseconds(), 10) + "µs"
	case d < 10*time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
}

// seconds formats d as a plain number of seconds: "2s", "0.25s".
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}
