package resilient

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestLatencyEstimatorConvergesToP95(t *testing.T) {
	var e latencyEstimator
	if d := e.delay(); d != DefaultHedgeDelay {
		t.Fatalf("no samples: delay %v, want %v", d, DefaultHedgeDelay)
	}
	// 1..100 ms in random order: the nearest-rank p95 is 95 ms.
	r := rand.New(rand.NewPCG(1, 2))
	ms := r.Perm(100)
	for i, v := range ms {
		e.record(time.Duration(v+1) * time.Millisecond)
		if i+1 < hedgeMinSamples && e.delay() != DefaultHedgeDelay {
			t.Fatalf("after %d samples: delay %v, want the default", i+1, e.delay())
		}
	}
	if d := e.delay(); d != 95*time.Millisecond {
		t.Errorf("1..100 ms: delay %v, want 95ms", d)
	}

	// A full ring of 4 % slow calls among fast ones: p95 sits at the top of
	// the fast ones, and the estimate follows a shift in latency.
	for i := range 4 * hedgeSamples {
		d := 20 * time.Millisecond
		if i%25 == 0 {
			d = time.Second
		}
		e.record(d)
	}
	if d := e.delay(); d != 20*time.Millisecond {
		t.Errorf("4 %% at 1 s: delay %v, want 20ms", d)
	}
	for range hedgeSamples {
		e.record(300 * time.Millisecond)
	}
	if d := e.delay(); d != 300*time.Millisecond {
		t.Errorf("after a shift to 300 ms: delay %v, want 300ms", d)
	}
	// 10 % slow: the p95 is the slow latency.
	for i := range hedgeSamples {
		d := 20 * time.Millisecond
		if i%10 == 0 {
			d = 400 * time.Millisecond
		}
		e.record(d)
	}
	if d := e.delay(); d != 400*time.Millisecond {
		t.Errorf("10 %% at 400 ms: delay %v, want 400ms", d)
	}
}

func TestLatencyEstimatorFloor(t *testing.T) {
	var e latencyEstimator
	for range hedgeMinSamples {
		e.record(time.Millisecond)
	}
	if d := e.delay(); d != MinHedgeDelay {
		t.Errorf("1 ms calls: delay %v, want the floor %v", d, MinHedgeDelay)
	}
}

func TestLatencyEstimatorComputeMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for n := hedgeMinSamples; n <= hedgeSamples; n++ {
		var e latencyEstimator
		vals := make([]int64, n)
		for i := range vals {
			vals[i] = r.Int64N(50)
			e.ring[i].Store(vals[i])
		}
		// Nearest rank by counting: the smallest v with at least
		// ceil(0.95n) samples <= v.
		rank := (95*n + 99) / 100
		var want int64 = -1
		for v := int64(0); v < 50 && want < 0; v++ {
			c := 0
			for _, x := range vals {
				if x <= v {
					c++
				}
			}
			if c >= rank {
				want = v
			}
		}
		if got := e.compute(n); int64(got) != want {
			t.Fatalf("n=%d: compute %d, want %d", n, got, want)
		}
	}
}
