package bench

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"testing"

	"go.uber.org/goleak"
)

// leakOpts ignores what hystrix-go, which heimdall's breaker uses, leaves
// by design: two metrics goroutines per command that never end.
var leakOpts = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/afex/hystrix-go/hystrix.(*metricExchange).Monitor"),
	goleak.IgnoreTopFunction("github.com/afex/hystrix-go/hystrix.(*poolMetrics).Monitor"),
}

// TestMain fails the package if a test leaves a goroutine behind.
//
// A benchmark run is only reported, not failed: failsafe-go neither reads
// nor closes the responses it retries, so each one holds a connection's
// goroutines forever (the conns/op of BenchmarkFailedCall). That is a
// finding to report, not a reason to throw the figures away.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		goleak.VerifyTestMain(m, leakOpts...)
		return
	}
	code := m.Run()
	if err := goleak.Find(leakOpts...); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %d goroutines were left behind by the benchmarks (run one -bench at a time to see whose)\n", runtime.NumGoroutine()-1)
	}
	os.Exit(code)
}
