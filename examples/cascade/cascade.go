package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resilient-go/resilient"
)

// config is one scenario. The load is open: Rate calls arrive every second
// whatever happened to the earlier ones, as users do.
type config struct {
	Rate      int           // product-page calls per second
	Healthy   time.Duration // recommendations answers normally for this long,
	Sick      time.Duration // then its query hangs for this long,
	Recovered time.Duration // then it answers normally again.
	Patience  time.Duration // a user gives up on a product page after this long
	Tick      time.Duration // the chart has one line per Tick
}

func (c config) length() time.Duration { return c.Healthy + c.Sick + c.Recovered }

func (c config) ticks() int { return int((c.length() + c.Tick - 1) / c.Tick) }

// calls is how many users arrive in the whole run, perTick in each tick.
func (c config) calls() int   { return int(int64(c.length()) * int64(c.Rate) / int64(time.Second)) }
func (c config) perTick() int { return int(int64(c.Tick) * int64(c.Rate) / int64(time.Second)) }

func (c config) validate() error {
	switch {
	case c.Rate <= 0 || c.Tick <= 0 || c.Patience <= 0:
		return errors.New("config: Rate, Tick and Patience must be positive")
	case int64(c.Tick)*int64(c.Rate)%int64(time.Second) != 0:
		return errors.New("config: Rate·Tick must be a whole number of calls")
	case c.Healthy < 0 || c.Sick <= 0 || c.Recovered < 0:
		return errors.New("config: Sick must be positive, Healthy and Recovered not negative")
	}
	return nil
}

// queryTime is how long recommendations takes when it is healthy.
const queryTime = 3 * time.Millisecond

// pageBudget is the share of the user's patience the product page gives
// recommendations: what is left renders the page.
const pageBudget = 0.8

// Headers that carry "this answer is a fallback" from the resilient client
// to the product page, and from the product page to the user.
const (
	fallbackHeader = "X-Fallback"
	degradedHeader = "X-Degraded"
)

// resilientClient is the client of run (b): the defaults, nothing tuned,
// and a fallback. The breaker policy only reports state changes to the
// chart.
func resilientClient(onState func(from, to resilient.State)) *http.Client {
	return resilient.NewClient(
		resilient.WithBreaker(resilient.BreakerPolicy{
			OnStateChange: func(_ string, from, to resilient.State) {
				onState(from, to)
			},
		}),
		// Recommendations are optional: "none" is a good answer.
		resilient.WithFallback(resilient.StaticFallback(http.StatusOK,
			http.Header{fallbackHeader: {"static"}}, `[]`)),
	)
}

// outcome is what a user got from a product page.
type outcome uint8

const (
	served   outcome = iota // a page with recommendations
	degraded                // a page without them, from the fallback
	failed                  // no page: an error status, or the user gave up
)

// call is one product-page call as its user saw it.
type call struct {
	arrived time.Duration // since the run began
	latency time.Duration // from arrival to the last byte, or to giving up
	outcome outcome
}

// transition is a breaker state change.
type transition struct {
	at       time.Duration
	from, to resilient.State
}

// result is what one run measured.
type result struct {
	name           string
	calls          []call       // in order of arrival
	reached        []int        // requests recommendations received, per tick
	reachedSick    int          // of which while it was sick
	peakGoroutines int          // the whole process, sampled
	transitions    []transition // of the resilient client's breaker
}

// run plays the scenario with a plain client, then with a resilient one,
// and writes the charts and the comparison to w.
func run(w io.Writer, cfg config) (naive, robust *result, err error) {
	if err = cfg.validate(); err != nil {
		return nil, nil, err
	}
	writeIntro(w, cfg)

	fmt.Fprintf(w, "\n(a) http.Client{}: no timeout, no fallback\n")
	naive = playOnce(w, cfg, "http.Client{}", func(func(from, to resilient.State)) *http.Client {
		return &http.Client{}
	})

	fmt.Fprintf(w, "\n(b) resilient.NewClient: the defaults and a static fallback\n")
	robust = playOnce(w, cfg, "resilient.NewClient", resilientClient)

	fmt.Fprintln(w)
	writeComparison(w, cfg, naive, robust)
	return naive, robust, nil
}

// playOnce runs the scenario once, with the client newClient returns
// calling recommendations, and charts it on w as it goes.
func playOnce(w io.Writer, cfg config, name string, newClient func(onState func(from, to resilient.State)) *http.Client) *result {
	res := &result{name: name, reached: make([]int, cfg.ticks())}
	epoch := time.Now()
	since := func() time.Duration { return time.Since(epoch) }

	var mu sync.Mutex // guards res.transitions
	client := newClient(func(from, to resilient.State) {
		mu.Lock()
		res.transitions = append(res.transitions, transition{since(), from, to})
		mu.Unlock()
	})
	recs := &recommendations{cfg: cfg, since: since, reached: make([]atomic.Int64, cfg.ticks())}
	recsSrv := httptest.NewServer(recs)
	productSrv := httptest.NewServer(productPage(client, recsSrv.URL, time.Duration(pageBudget*float64(cfg.Patience))))

	stopSampler := sampleGoroutines(&res.peakGoroutines)
	users := newUsers(cfg, epoch, productSrv.URL)
	go users.arrive()

	writeChartHeader(w)
	for k := range cfg.ticks() {
		calls := users.awaitTick(k)
		if k < cfg.ticks()-1 {
			// Requests to recommendations are counted by when they arrive:
			// wait out the tick, so none still comes in for it.
			time.Sleep(time.Duration(k+1)*cfg.Tick - since())
		} else {
			// The last line also counts stragglers: wait for the servers.
			productSrv.Close()
			recsSrv.Close()
		}
		mu.Lock()
		moves := transitionsIn(res.transitions, time.Duration(k)*cfg.Tick, time.Duration(k+1)*cfg.Tick)
		mu.Unlock()
		writeChartLine(w, cfg, k, calls, int(recs.reached[k].Load()), moves)
	}

	client.CloseIdleConnections()
	users.client.CloseIdleConnections()
	stopSampler()
	res.calls = users.calls
	for k := range res.reached {
		res.reached[k] = int(recs.reached[k].Load())
	}
	res.reachedSick = int(recs.reachedSick.Load())
	return res
}

// transitionsIn returns the transitions in [from, to).
func transitionsIn(ts []transition, from, to time.Duration) []transition {
	var in []transition
	for _, t := range ts {
		if t.at >= from && t.at < to {
			in = append(in, t)
		}
	}
	return in
}

// recommendations is the sick service: it answers in queryTime, except
// while it is sick, when its query hangs until the sickness ends or the
// caller goes away.
type recommendations struct {
	cfg         config
	since       func() time.Duration
	reached     []atomic.Int64 // requests received, per tick
	reachedSick atomic.Int64
}

func (s *recommendations) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := s.since()
	s.reached[min(int(now/s.cfg.Tick), len(s.reached)-1)].Add(1)
	sickFrom, sickUntil := s.cfg.Healthy, s.cfg.Healthy+s.cfg.Sick
	if now >= sickFrom && now < sickUntil {
		s.reachedSick.Add(1)
		healed := time.NewTimer(sickUntil - now)
		defer healed.Stop()
		select {
		case <-healed.C:
		case <-r.Context().Done():
			return
		}
	}
	time.Sleep(queryTime)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `["p-17","p-23","p-58"]`)
}

// productPage renders product 42 with its recommendations, fetched with
// recs. It is the same handler in both runs and it does the right things:
// it passes its request's context on, gives recommendations budget of the
// user's patience, and answers 502 if recommendations fails. Only the
// client differs.
func productPage(recs *http.Client, recsURL string, budget time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), budget)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, recsURL+"/recommendations?product=42", nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp, err := recs.Do(req)
		if err != nil {
			http.Error(w, "recommendations: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		list, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			http.Error(w, "recommendations failed", http.StatusBadGateway)
			return
		}
		if resp.Header.Get(fallbackHeader) != "" {
			w.Header().Set(degradedHeader, "recommendations")
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"product":42,"name":"Espresso cup","recommendations":%s}`, list)
	})
}

// users is the load: Rate arrivals a second, each a user who asks for a
// product page and waits at most Patience for it.
type users struct {
	cfg    config
	epoch  time.Time
	url    string
	client *http.Client

	calls    []call           // one per arrival; each written by its own goroutine
	tickDone []sync.WaitGroup // the calls that arrived in each tick
	launched []chan struct{}  // closed when every call of a tick has arrived
}

func newUsers(cfg config, epoch time.Time, productURL string) *users {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 1000 // the load generator must not be the bottleneck
	u := &users{
		cfg:      cfg,
		epoch:    epoch,
		url:      productURL + "/product/42",
		client:   &http.Client{Transport: tr},
		calls:    make([]call, cfg.calls()),
		tickDone: make([]sync.WaitGroup, cfg.ticks()),
		launched: make([]chan struct{}, cfg.ticks()),
	}
	for k := range u.launched {
		u.launched[k] = make(chan struct{})
	}
	return u
}

// arrive starts the calls on schedule. A call arrives at its scheduled
// time even if this loop runs late, so lateness counts in its latency.
func (u *users) arrive() {
	closed := 0 // ticks whose calls have all arrived
	for i := range u.calls {
		k := min(i/u.cfg.perTick(), len(u.launched)-1)
		for ; closed < k; closed++ {
			close(u.launched[closed])
		}
		at := time.Duration(int64(i) * int64(time.Second) / int64(u.cfg.Rate))
		if d := at - time.Since(u.epoch); d > 0 {
			time.Sleep(d)
		}
		u.tickDone[k].Add(1)
		go func() {
			defer u.tickDone[k].Done()
			u.calls[i] = u.visit(at)
		}()
	}
	for ; closed < len(u.launched); closed++ {
		close(u.launched[closed])
	}
}

// awaitTick waits until every call that arrived in tick k has ended and
// returns them.
func (u *users) awaitTick(k int) []call {
	<-u.launched[k]
	u.tickDone[k].Wait()
	from, to := k*u.cfg.perTick(), (k+1)*u.cfg.perTick()
	if k == len(u.launched)-1 {
		to = len(u.calls)
	}
	return u.calls[min(from, len(u.calls)):min(to, len(u.calls))]
}

// visit is one user asking for the product page at time at.
func (u *users) visit(at time.Duration) call {
	arrived := u.epoch.Add(at)
	ctx, cancel := context.WithDeadline(context.Background(), arrived.Add(u.cfg.Patience))
	defer cancel()
	c := call{arrived: at, outcome: failed}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.url, nil)
	if err != nil {
		panic(err) // the URL is ours
	}
	resp, err := u.client.Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch {
		case err != nil || resp.StatusCode != http.StatusOK:
		case resp.Header.Get(degradedHeader) != "":
			c.outcome = degraded
		default:
			c.outcome = served
		}
	}
	c.latency = time.Since(arrived)
	return c
}

// sampleGoroutines records the most goroutines seen in *peak until the
// returned stop is called.
func sampleGoroutines(peak *int) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			*peak = max(*peak, runtime.NumGoroutine())
			select {
			case <-t.C:
			case <-done:
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
