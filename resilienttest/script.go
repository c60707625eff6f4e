package resilienttest

import (
	"fmt"
	"math"
	"sync/atomic"
)

// runScript runs faults in order until one answers, and reports whether
// one did.
func runScript(c *call, faults []Fault) bool {
	for _, f := range faults {
		if f != nil && f.apply(c) {
			return true
		}
	}
	return false
}

// checkScript panics, naming both faults and their positions, if a fault
// in faults can never run because one before it answers every request
// (Respond before Stall, Status before RetryAfter): left alone, the kit
// would skip it without a word and the test would pass for the wrong
// reason. fn is the constructor the script was given to. It reports
// whether the script answers every request.
func checkScript(fn string, faults []Fault) bool {
	first := -1 // the first fault that answers every request
	for i, f := range faults {
		if f == nil {
			continue
		}
		name, always := f.describe()
		if first >= 0 {
			answer, _ := faults[first].describe()
			panic(fmt.Sprintf("resilienttest: %s: fault %d, %s, can never run: fault %d, %s, answers every request before it; "+
				"put faults that wait, add headers or shape the body before the fault that answers",
				fn, i+1, name, first+1, answer))
		}
		if always {
			first = i
		}
	}
	return first >= 0
}

// OnRequests applies faults only to requests numbered from to to,
// inclusive; requests are numbered from 1 in order of arrival.
func OnRequests(from, to int, faults ...Fault) Fault {
	if from < 1 || to < from {
		panic(fmt.Sprintf("resilienttest: OnRequests: from = %d, to = %d, want 1 <= from <= to", from, to))
	}
	return when(fmt.Sprintf("OnRequests(%d, %d, ...)", from, to), from == 1 && to == math.MaxInt,
		func(c *call) bool { return c.n >= from && c.n <= to }, faults)
}

// After applies faults to every request after the nth: "the dependency
// goes down after n calls".
func After(n int, faults ...Fault) Fault {
	if n < 0 {
		panic(fmt.Sprintf("resilienttest: After: n = %d, want n >= 0", n))
	}
	return when(fmt.Sprintf("After(%d, ...)", n), n == 0, func(c *call) bool { return c.n > n }, faults)
}

// Every applies faults to requests n, 2n, 3n, ...
func Every(n int, faults ...Fault) Fault {
	if n < 1 {
		panic(fmt.Sprintf("resilienttest: Every: n = %d, want n >= 1", n))
	}
	return when(fmt.Sprintf("Every(%d, ...)", n), n == 1, func(c *call) bool { return c.n%n == 0 }, faults)
}

// OnMethod applies faults only to requests with the given method.
func OnMethod(method string, faults ...Fault) Fault {
	return when(fmt.Sprintf("OnMethod(%q, ...)", method), false, func(c *call) bool { return c.req.Method == method }, faults)
}

// OnPath applies faults only to requests for the given URL path.
func OnPath(path string, faults ...Fault) Fault {
	return when(fmt.Sprintf("OnPath(%q, ...)", path), false, func(c *call) bool { return c.req.URL.Path == path }, faults)
}

// SwitchFault applies its faults only while it is on, so a test can take a
// dependency down and bring it back between calls ("down now", "up
// again"). Create it with Switch. It is safe for concurrent use.
type SwitchFault struct {
	on     atomic.Bool
	faults []Fault
}

// Switch returns a fault, off at first, that applies faults while it is on.
func Switch(faults ...Fault) *SwitchFault {
	faults = append([]Fault(nil), faults...)
	checkScript("Switch", faults)
	return &SwitchFault{faults: faults}
}

// On applies the faults to the requests that arrive from now on.
func (s *SwitchFault) On() { s.on.Store(true) }

// Off lets the requests that arrive from now on pass the faults by.
func (s *SwitchFault) Off() { s.on.Store(false) }

// A switch is off at first, so it never answers every request.
func (s *SwitchFault) describe() (string, bool) { return "Switch(...)", false }

func (s *SwitchFault) apply(c *call) bool {
	if !s.on.Load() {
		return false
	}
	return runScript(c, s.faults)
}

// when is a selector named name that runs faults for the requests match
// picks; matchAll says that it picks every request.
func when(name string, matchAll bool, match func(*call) bool, faults []Fault) Fault {
	faults = append([]Fault(nil), faults...)
	always := checkScript(name, faults)
	return &fault{name: name, always: matchAll && always, fn: func(c *call) bool {
		if !match(c) {
			return false
		}
		return runScript(c, faults)
	}}
}
