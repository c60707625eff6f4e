package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package if a run leaves a goroutine behind: every
// server, connection and call of the demo must be gone when it returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// short is the demo's scenario shrunk to about five seconds for both runs.
// The sickness outlasts the users' patience, as in the demo, so the plain
// client's users give up.
var short = config{
	Rate:      100,
	Healthy:   250 * time.Millisecond,
	Sick:      2 * time.Second,
	Recovered: 250 * time.Millisecond,
	Patience:  time.Second,
	Tick:      250 * time.Millisecond,
}

func TestCascade(t *testing.T) {
	var out strings.Builder
	naive, robust, err := run(&out, short)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	sickFrom, sickUntil := short.Healthy, short.Healthy+short.Sick

	// The scenario hurts: without defences, users get no page.
	if naive.count(failed) == 0 {
		t.Errorf("plain client: no call failed; the scenario did not hurt")
	}
	if p95 := naive.percentile(0.95, sickFrom, sickUntil); p95 < short.Patience/2 {
		t.Errorf("plain client: p95 while sick = %v, want at least %v", p95, short.Patience/2)
	}

	// With resilient every user gets a page, most without recommendations.
	if n := robust.count(failed); n != 0 {
		t.Errorf("resilient client: %d of %d calls failed, want 0", n, len(robust.calls))
	}
	if got, want := robust.count(served)+robust.count(degraded), short.calls(); got != want {
		t.Errorf("resilient client: %d calls answered, want %d", got, want)
	}
	if robust.count(degraded) == 0 {
		t.Errorf("resilient client: no fallback served")
	}

	// Once the breaker is open, pages come back in milliseconds.
	opened := robust.firstOpen()
	if opened < sickFrom || opened >= sickUntil {
		t.Fatalf("breaker first opened at %v, want within the sickness [%v, %v); transitions: %v",
			opened, sickFrom, sickUntil, robust.transitions)
	}
	if p95 := robust.percentile(0.95, opened, sickUntil); p95 > 100*time.Millisecond {
		t.Errorf("resilient client: p95 with the breaker open = %v, want at most 100ms", p95)
	}

	// The sick service is left alone, and the caller holds fewer goroutines.
	if robust.reachedSick*3 > naive.reachedSick {
		t.Errorf("requests that reached the sick service: resilient %d, plain %d; want at most a third",
			robust.reachedSick, naive.reachedSick)
	}
	if robust.peakGoroutines >= naive.peakGoroutines {
		t.Errorf("goroutines at peak: resilient %d, plain %d; want fewer", robust.peakGoroutines, naive.peakGoroutines)
	}

	// The output keeps its shape: one chart line per tick for each run,
	// then the comparison.
	lines := regexp.MustCompile(`(?m)^ +[\d.]+-[\d.]+s +\d+ +\d+ +\d+ `).FindAllString(out.String(), -1)
	if len(lines) != 2*short.ticks() {
		t.Errorf("%d chart lines, want %d", len(lines), 2*short.ticks())
	}
	for _, row := range []string{"errors: the user got no page", "p95 from the breaker opening", "goroutines at peak", "  while it hung"} {
		if !strings.Contains(out.String(), row) {
			t.Errorf("comparison lacks the row %q", row)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	bad := map[string]func(*config){
		"no patience":                 func(c *config) { c.Patience = 0 },
		"fraction of a call per tick": func(c *config) { c.Rate = 3 },
		"no sickness":                 func(c *config) { c.Sick = 0 },
	}
	if err := short.validate(); err != nil {
		t.Fatalf("short config: %v", err)
	}
	for name, change := range bad {
		c := short
		change(&c)
		if c.validate() == nil {
			t.Errorf("%s: validate accepted %+v", name, c)
		}
	}
}

func TestBar(t *testing.T) {
	for _, tc := range []struct {
		n    [3]int
		full int
		want string
	}{
		{[3]int{200, 0, 0}, 200, strings.Repeat("█", 20)},
		{[3]int{76, 124, 0}, 200, strings.Repeat("█", 8) + strings.Repeat("░", 12)},
		{[3]int{0, 0, 5}, 200, "x"},
		{[3]int{10, 0, 10}, 200, "█x"},
		{[3]int{195, 0, 5}, 200, strings.Repeat("█", 19) + "x"}, // 5 errors still show
		{[3]int{0, 199, 1}, 200, strings.Repeat("░", 19) + "x"},
	} {
		if got := bar(tc.n, tc.full); got != tc.want {
			t.Errorf("bar(%v, %d) = %q, want %q", tc.n, tc.full, got, tc.want)
		}
	}
}
