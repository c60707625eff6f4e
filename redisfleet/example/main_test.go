package main

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// go-redis's background redial after a refused dial: the client's.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

// TestRunSmall runs every part of the example at a small scale (the
// multi-process run re-executes the test binary, so it is left out).
func TestRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	var out strings.Builder
	c := config{instances: 8, procs: 0, open: 200 * time.Millisecond, simN: 20, simRate: 400, phase: 200 * time.Millisecond}
	if err := run(&out, c); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	for _, want := range []string{"probes per interval", "healthy", "flapping"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
