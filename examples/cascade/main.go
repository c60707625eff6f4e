// Command cascade replays a classic outage on loopback, twice.
//
// A product page calls a "recommendations" service, which is nice to have
// but not needed to sell anything. Its database query turns slow: every
// call to it hangs. Users keep arriving at the same rate whether or not the
// site is slow, and give up after a second.
//
// Run (a) calls recommendations with a plain http.Client: every product
// page waits on the hung query until its user gives up, so a non-critical
// service takes the product pages down with it, and the sick service gets
// the full load the whole time. Run (b) calls it with resilient.NewClient,
// its defaults and a static fallback, nothing tuned: the first calls run
// slow for the host and answer with the fallback before the page's
// deadline, the breaker opens, and from then on every page is served at
// once without recommendations, while the sick service gets a probe after
// each wait (1 s, then a quarter of the outage so far) until it recovers.
//
// Everything runs on 127.0.0.1 in one process and takes about 25 seconds:
//
//	go run ./examples/cascade
package main

import (
	"fmt"
	"os"
	"time"
)

// demo is the scenario the README shows: 200 calls/s, 2 s healthy, 6 s
// sick, 4 s recovered, users who wait 1 s.
var demo = config{
	Rate:      200,
	Healthy:   2 * time.Second,
	Sick:      6 * time.Second,
	Recovered: 4 * time.Second,
	Patience:  time.Second,
	Tick:      time.Second,
}

func main() {
	if _, _, err := run(os.Stdout, demo); err != nil {
		fmt.Fprintln(os.Stderr, "cascade:", err)
		os.Exit(1)
	}
}
