package resilient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/internal/clock"
	"github.com/resilient-go/resilient/internal/telemetry"
	"github.com/resilient-go/resilient/resilienttest"
)

// awaitHeld waits until h holds n requests at once, bounded by 5 s.
func awaitHeld(t *testing.T, h *resilienttest.HangFault, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Await(ctx, n); err != nil {
		t.Fatalf("%d of %d calls reached the server: %v", h.Waiting(), n, err)
	}
}

func bodyRT(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("hello")), Request: req}, nil
}

func TestBulkheadFullRejectsAtOnce(t *testing.T) {
	held := resilienttest.Hang()
	srv := resilienttest.NewServer(t, held)
	c := clientWith(resilient.Bulkhead(resilient.BulkheadPolicy{MaxConcurrent: 2}))
	defer c.CloseIdleConnections()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if _, err := getStatus(t, c, srv.URL); err != nil {
				t.Error(err)
			}
		})
	}
	awaitHeld(t, held, 2)
	start := time.Now()
	_, err := getStatus(t, c, srv.URL)
	el := time.Since(start)
	var bfe *resilient.BulkheadFullError
	if !errors.Is(err, resilient.ErrBulkheadFull) || !errors.As(err, &bfe) {
		t.Fatalf("third call: %v, want ErrBulkheadFull", err)
	}
	if bfe.Key != srv.URL || bfe.MaxConcurrent != 2 || !strings.HasPrefix(bfe.Error(), "resilient: ") {
		t.Errorf("error %+v / %q", bfe, bfe.Error())
	}
	if el > time.Second {
		t.Errorf("rejection took %v, want at once", el)
	}
	held.Release()
	wg.Wait()
	if _, err := getStatus(t, c, srv.URL); err != nil {
		t.Fatalf("after the calls ended: %v", err)
	}
	if n := srv.Count(); n != 3 {
		t.Errorf("server saw %d calls, want 3: the rejected one never sent", n)
	}
}

func TestBulkheadBodyHoldsSlot(t *testing.T) {
	base := resilienttest.NewTransport(resilienttest.Respond(200, "hello"))
	rt := resilient.Chain(base, resilient.Bulkhead(resilient.BulkheadPolicy{MaxConcurrent: 1}))
	call := func() (*http.Response, error) {
		return rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil))
	}
	first, err := call()
	if err != nil {
		t.Fatal(err)
	}
	gauge := func() int64 {
		var n int64
		rt.(telemetry.Gauge).Observe(func(k string, v int64) { n += v })
		return n
	}
	if gauge() != 1 {
		t.Errorf("gauge = %d with an open body, want 1", gauge())
	}
	if _, err := call(); !errors.Is(err, resilient.ErrBulkheadFull) {
		t.Fatalf("an unread open body should hold the slot, got %v", err)
	}
	first.Body.Close()
	second, err := call()
	if err != nil {
		t.Fatalf("closing the body should free the slot: %v", err)
	}
	first.Body.Close() // a second Close must not free a second slot
	if _, err := call(); !errors.Is(err, resilient.ErrBulkheadFull) {
		t.Fatalf("a second Close freed a slot: %v", err)
	}
	io.ReadAll(second.Body) // EOF frees it too
	third, err := call()
	if err != nil {
		t.Fatalf("reading to EOF should free the slot: %v", err)
	}
	third.Body.Close()
	if gauge() != 0 {
		t.Errorf("gauge = %d after all bodies closed, want 0", gauge())
	}
	if n := base.Count(); n != 3 {
		t.Errorf("transport saw %d calls, want 3: the rejected ones never sent", n)
	}
}

func TestBulkheadMaxWaitQueues(t *testing.T) {
	rt := resilient.Chain(resilienttest.NewTransport(resilienttest.Respond(200, "hello")), resilient.Bulkhead(resilient.BulkheadPolicy{MaxConcurrent: 1, MaxWait: 10 * time.Second}))
	first, err := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		resp, err := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil))
		if err == nil {
			resp.Body.Close()
		}
		got <- err
	}()
	waitFor(t, func() bool { return resilient.BulkheadWaiting(rt) == 1 })
	first.Body.Close()
	if err := <-got; err != nil {
		t.Fatalf("the queued call should get the freed slot: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBulkheadMaxWaitExpires(t *testing.T) {
	sink := &recordSink{}
	clk := clock.NewFake(0)
	p := resilient.BulkheadPolicy{MaxConcurrent: 1, MaxWait: 30 * time.Millisecond}
	resilient.SetBulkheadSink(&p, sink)
	resilient.SetBulkheadClock(&p, clk)
	rt := resilient.Chain(resilienttest.NewTransport(resilienttest.Respond(200, "hello")), resilient.Bulkhead(p))
	first, _ := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil))
	defer first.Body.Close()
	got := make(chan error, 1)
	go func() {
		_, err := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil))
		got <- err
	}()
	if !clk.WaitTimers(1, 5*time.Second) {
		t.Fatal("the second call never started waiting")
	}
	clk.Advance(29 * time.Millisecond)
	select {
	case err := <-got:
		t.Fatalf("gave up before MaxWait: %v", err)
	default:
	}
	clk.Advance(time.Millisecond)
	err := <-got
	var bfe *resilient.BulkheadFullError
	if !errors.As(err, &bfe) || bfe.Waited != 30*time.Millisecond || bfe.Err != nil {
		t.Fatalf("got %+v, want full after waiting 30ms", err)
	}
	evs := sink.kinds(telemetry.BulkheadRejected)
	if len(evs) != 1 || evs[0].Authority != "http://api.test:80" {
		t.Errorf("events %+v, want one BulkheadRejected", evs)
	}
}

func TestBulkheadWaitBoundedByDeadline(t *testing.T) {
	rt := resilient.Chain(resilienttest.NewTransport(resilienttest.Respond(200, "hello")), resilient.Bulkhead(resilient.BulkheadPolicy{MaxConcurrent: 1, MaxWait: time.Minute}))
	first, _ := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil))
	defer first.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil).WithContext(ctx))
	if !errors.Is(err, resilient.ErrBulkheadFull) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want full and the deadline", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("waited %v past a 30ms deadline", el)
	}
}

func TestBulkheadMaxQueue(t *testing.T) {
	rt := resilient.Chain(resilienttest.NewTransport(resilienttest.Respond(200, "hello")), resilient.Bulkhead(resilient.BulkheadPolicy{MaxConcurrent: 1, MaxWait: time.Minute, MaxQueue: 1}))
	first, _ := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil))
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() {
		_, err := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil).WithContext(ctx))
		got <- err
	}()
	waitFor(t, func() bool { return resilient.BulkheadWaiting(rt) == 1 })
	start := time.Now()
	_, err := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil))
	if !errors.Is(err, resilient.ErrBulkheadFull) || time.Since(start) > time.Second {
		t.Fatalf("a call past MaxQueue should be rejected at once, got %v", err)
	}
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled waiter: %v", err)
	}
	first.Body.Close()
	resp, err := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil))
	if err != nil {
		t.Fatalf("a cancelled waiter must not keep a slot: %v", err)
	}
	resp.Body.Close()
}

func TestBulkheadSlowHostLeavesHealthyAlone(t *testing.T) {
	held := resilienttest.Hang()
	slow := resilienttest.NewServer(t, held)
	healthy := resilienttest.NewServer(t)
	c := clientWith(resilient.Bulkhead(resilient.BulkheadPolicy{MaxConcurrent: 2}))
	defer c.CloseIdleConnections()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { getStatus(t, c, slow.URL) })
	}
	awaitHeld(t, held, 2)
	if _, err := getStatus(t, c, slow.URL); !errors.Is(err, resilient.ErrBulkheadFull) {
		t.Errorf("slow host: %v, want full", err)
	}
	for range 5 {
		if st, err := getStatus(t, c, healthy.URL); err != nil || st != 200 {
			t.Fatalf("healthy host: %d, %v", st, err)
		}
	}
	if n := healthy.Count(); n != 5 {
		t.Errorf("healthy host saw %d calls, want 5", n)
	}
	held.Release()
	wg.Wait()
}

func TestBulkheadFailuresRelease(t *testing.T) {
	var calls atomic.Int32
	rt := resilient.Chain(compartmentRT(func(req *http.Request) (*http.Response, error) {
		if calls.Add(1) == 3 {
			panic("boom")
		}
		return nil, errors.New("connection refused")
	}), resilient.Bulkhead(resilient.BulkheadPolicy{MaxConcurrent: 1}))
	for i := range 10 {
		func() {
			defer func() { recover() }()
			_, err := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil))
			if errors.Is(err, resilient.ErrBulkheadFull) {
				t.Fatalf("call %d: a failed call kept its slot", i+1)
			}
		}()
	}
	if n := calls.Load(); n != 10 {
		t.Errorf("transport saw %d calls, want 10", n)
	}
}

func TestBulkheadRejectionClosesRequestBody(t *testing.T) {
	rt := resilient.Chain(resilienttest.NewTransport(resilienttest.Respond(200, "hello")), resilient.Bulkhead(resilient.BulkheadPolicy{MaxConcurrent: 1}))
	first, _ := rt.RoundTrip(httptest.NewRequest("GET", "http://api.test/", nil))
	defer first.Body.Close()
	b := &closeBody{Reader: strings.NewReader("payload")}
	req := httptest.NewRequest("POST", "http://api.test/", nil)
	req.Body = b
	if _, err := rt.RoundTrip(req); !errors.Is(err, resilient.ErrBulkheadFull) {
		t.Fatal(err)
	}
	if !b.closed.Load() {
		t.Error("request body not closed on rejection")
	}
}

func TestBulkheadRegistryKeepsBusyPools(t *testing.T) {
	// Ad hoc: the kit's Transport records every request, which costs more
	// than the stage over 10000 calls, and the base is beside the point.
	rt := resilient.Chain(compartmentRT(bodyRT), resilient.Bulkhead(resilient.BulkheadPolicy{MaxConcurrent: 1, MaxKeys: 2}))
	held, err := rt.RoundTrip(httptest.NewRequest("GET", "http://busy.test/", nil))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10000 {
		resp, err := rt.RoundTrip(httptest.NewRequest("GET", fmt.Sprintf("http://h%d.test/", i), nil))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if _, err := rt.RoundTrip(httptest.NewRequest("GET", "http://busy.test/", nil)); !errors.Is(err, resilient.ErrBulkheadFull) {
		t.Fatalf("the busy pool was forgotten: %v", err)
	}
	n := 0
	rt.(telemetry.Gauge).Observe(func(string, int64) { n++ })
	if n > 2 {
		t.Errorf("%d pools kept, want at most 2", n)
	}
	held.Body.Close()
}

func TestBulkheadConcurrentNeverExceeds(t *testing.T) {
	// The latency gives the calls time to overlap.
	base := resilienttest.NewTransport(resilienttest.Latency(100 * time.Microsecond))
	rt := resilient.Chain(base, resilient.Bulkhead(resilient.BulkheadPolicy{MaxConcurrent: 3, MaxWait: 10 * time.Second, MaxQueue: 100, MaxKeys: 1}))
	var wg sync.WaitGroup
	for g := range 20 {
		wg.Go(func() {
			for i := range 20 {
				// Two keys with MaxKeys 1: pools are retired and remade all along.
				host := []string{"a.test", "b.test"}[(g+i)%2]
				resp, err := rt.RoundTrip(httptest.NewRequest("GET", "http://"+host+"/", nil))
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	if p := base.PeakInFlight(); p > 6 {
		t.Errorf("peak %d in flight over two keys of 3", p)
	}
}

func TestBulkheadPolicyPanics(t *testing.T) {
	for field, p := range map[string]resilient.BulkheadPolicy{
		"MaxConcurrent": {MaxConcurrent: -1},
		"MaxWait":       {MaxWait: -time.Second},
		"MaxQueue":      {MaxQueue: -1},
		"MaxKeys":       {MaxKeys: -1},
	} {
		func() {
			defer func() {
				msg := fmt.Sprint(recover())
				if !strings.Contains(msg, "resilient: BulkheadPolicy."+field) {
					t.Errorf("%s: panic %q should name the field", field, msg)
				}
			}()
			resilient.WithBulkhead(p)
		}()
	}
}

func ExampleBulkhead() {
	srv := resilienttest.StartServer(resilienttest.Respond(http.StatusOK, "hello"))
	defer srv.Close()

	client := &http.Client{Transport: resilient.Chain(nil,
		resilient.Bulkhead(resilient.BulkheadPolicy{MaxConcurrent: 1}))}
	defer client.CloseIdleConnections()

	first, _ := client.Get(srv.URL) // holds the only slot until its body is closed
	_, err := client.Get(srv.URL)
	fmt.Println("second call full:", errors.Is(err, resilient.ErrBulkheadFull))
	first.Body.Close()
	third, err := client.Get(srv.URL)
	fmt.Println("third call error:", err)
	third.Body.Close()
	// Output:
	// second call full: true
	// third call error: <nil>
}

func benchBulkhead(b *testing.B, parallel bool) {
	rt := resilient.Chain(staticRT(200), resilient.Bulkhead(resilient.BulkheadPolicy{MaxConcurrent: 1 << 20}))
	req := httptest.NewRequest("GET", "http://api.test/", nil)
	b.ReportAllocs()
	if !parallel {
		for b.Loop() {
			_, benchSink = rt.RoundTrip(req)
		}
		return
	}
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := rt.RoundTrip(req); err != nil {
				panic(err)
			}
		}
	})
}

func BenchmarkBulkheadHappy(b *testing.B)         { benchBulkhead(b, false) }
func BenchmarkBulkheadHappyParallel(b *testing.B) { benchBulkhead(b, true) }
