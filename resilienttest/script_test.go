package resilienttest_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/resilient-go/resilient"
	"github.com/resilient-go/resilient/resilienttest"
)

// panicOf runs f and returns what it panicked with, "" if it did not.
func panicOf(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	f()
	return ""
}

func TestScriptRefusesFaultThatCanNeverRun(t *testing.T) {
	rf := resilienttest.RetryAfter(time.Second)
	for _, tc := range []struct {
		name   string
		script []resilienttest.Fault
		want   []string // in the message: the unreachable fault, then the one that answers
	}{
		{"Respond then Stall", []resilienttest.Fault{resilienttest.Respond(200, "hello"), resilienttest.Stall(3)},
			[]string{"fault 2, Stall(3)", `fault 1, Respond(200, "hello")`}},
		{"Status then RetryAfter", []resilienttest.Fault{resilienttest.Header("X", "y"), resilienttest.Status(503), rf},
			[]string{"fault 3, RetryAfter(1s)", "fault 2, Status(503)"}},
		{"ResetConn then Latency", []resilienttest.Fault{resilienttest.ResetConn(), nil, resilienttest.Latency(time.Millisecond)},
			[]string{"fault 3, Latency(1ms)", "fault 1, ResetConn()"}},
		{"FailFraction 1", []resilienttest.Fault{resilienttest.FailFraction(1, 503, 7), resilienttest.Status(200)},
			[]string{"fault 2, Status(200)", "fault 1, FailFraction(1, 503, 7)"}},
		{"Handle then Drip", []resilienttest.Fault{resilienttest.Handle(func(http.ResponseWriter, *http.Request) {}), resilienttest.Drip(1, 0)},
			[]string{"fault 2, Drip(1, 0s)", "fault 1, Handle(...)"}},
		{"After 0", []resilienttest.Fault{resilienttest.After(0, resilienttest.Status(500)), resilienttest.Truncate(2)},
			[]string{"fault 2, Truncate(2)", "fault 1, After(0, ...)"}},
		{"Every 1", []resilienttest.Fault{resilienttest.Every(1, resilienttest.ResetConn()), resilienttest.Hang()},
			[]string{"fault 2, Hang()", "fault 1, Every(1, ...)"}},
	} {
		for _, tg := range []struct {
			fn    string
			build func(...resilienttest.Fault)
		}{
			{"NewServer", func(f ...resilienttest.Fault) { resilienttest.NewServer(t, f...) }},
			{"StartServer", func(f ...resilienttest.Fault) { resilienttest.StartServer(f...).Close() }},
			{"NewTransport", func(f ...resilienttest.Fault) { resilienttest.NewTransport(f...) }},
		} {
			t.Run(tc.name+"/"+tg.fn, func(t *testing.T) {
				msg := panicOf(func() { tg.build(tc.script...) })
				for _, w := range append([]string{"resilienttest: " + tg.fn + ": "}, tc.want...) {
					if !strings.Contains(msg, w) {
						t.Errorf("panic %q, want it to contain %q", msg, w)
					}
				}
			})
		}
	}
}

// Inside a selector or a Switch the same mistake is refused where the group
// is built.
func TestSelectorRefusesFaultThatCanNeverRun(t *testing.T) {
	for name, build := range map[string]func(){
		"OnPath":     func() { resilienttest.OnPath("/a", resilienttest.Status(503), resilienttest.RetryAfter(time.Second)) },
		"OnRequests": func() { resilienttest.OnRequests(1, 2, resilienttest.ResetConn(), resilienttest.Stall(0)) },
		"Switch":     func() { resilienttest.Switch(resilienttest.Respond(500, ""), resilienttest.Header("A", "b")) },
	} {
		msg := panicOf(build)
		if !strings.HasPrefix(msg, "resilienttest: "+name) || !strings.Contains(msg, "fault 2, ") || !strings.Contains(msg, "fault 1, ") {
			t.Errorf("%s: panic %q, want one naming %s, fault 2 and fault 1", name, msg, name)
		}
	}
}

// Scripts whose answering faults let some requests pass are accepted: the
// faults after them run for those requests.
func TestScriptAcceptsConditionalAnswers(t *testing.T) {
	for name, script := range map[string][]resilienttest.Fault{
		"FailFirst":   {resilienttest.FailFirst(2, 503), resilienttest.RetryAfter(time.Second)},
		"OnPath":      {resilienttest.OnPath("/a", resilienttest.Status(503)), resilienttest.Respond(200, "b")},
		"Every 2":     {resilienttest.Every(2, resilienttest.Status(503)), resilienttest.Status(200)},
		"After 1":     {resilienttest.After(1, resilienttest.Status(503)), resilienttest.Status(200)},
		"Fraction":    {resilienttest.FailFraction(0.5, 503, 1), resilienttest.Status(200)},
		"Switch":      {resilienttest.Switch(resilienttest.Status(503)), resilienttest.Status(200)},
		"Hang":        {resilienttest.Hang(), resilienttest.Status(200)},
		"answer last": {resilienttest.RetryAfter(time.Second), resilienttest.Stall(1), resilienttest.Status(503)},
	} {
		if msg := panicOf(func() { resilienttest.NewTransport(script...) }); msg != "" {
			t.Errorf("%s: refused: %s", name, msg)
		}
	}
}

func TestHandle(t *testing.T) {
	forEachTarget(t, func(t *testing.T, start func(*testing.T, ...resilienttest.Fault) fake) {
		f := start(t,
			resilienttest.Header("X-Before", "1"),
			resilienttest.Handle(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				w.Header().Set("X-Seen-Before", w.Header().Get("X-Before"))
				w.WriteHeader(http.StatusCreated)
				w.Header().Set("X-Too-Late", "1") // after WriteHeader: not sent
				fmt.Fprintf(w, "%s %s %s q=%s body=%s", r.Method, r.RequestURI, r.Header.Get("X-Req"), r.URL.Query().Get("q"), body)
			}))
		req, _ := http.NewRequest("POST", f.url+"/items?q=7", strings.NewReader("abc"))
		req.Header.Set("X-Req", "r1")
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if got, want := fmt.Sprintf("%d %s", resp.StatusCode, b), "201 POST /items?q=7 r1 q=7 body=abc"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
		if resp.Header.Get("X-Seen-Before") != "1" || resp.Header.Get("X-Before") != "1" || resp.Header.Get("X-Too-Late") != "" {
			t.Errorf("headers %v: want X-Before and X-Seen-Before, no X-Too-Late", resp.Header)
		}
		if rs := f.rec.Requests(); len(rs) != 1 || string(rs[0].Body) != "abc" {
			t.Errorf("recorded %+v, want one request with body abc", rs)
		}
	})
}

// A handler's response is shaped by the faults before it, and a handler
// that writes nothing answers 200 with an empty body.
func TestHandleShapedAndEmpty(t *testing.T) {
	forEachTarget(t, func(t *testing.T, start func(*testing.T, ...resilienttest.Fault) fake) {
		f := start(t,
			resilienttest.OnPath("/cut", resilienttest.Truncate(3)),
			resilienttest.Handle(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/cut" {
					_, _ = io.WriteString(w, "abcdef")
				}
			}))
		resp, err := f.client.Get(f.url + "/cut")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "abc" || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("truncated body: got %q, %v; want \"abc\", unexpected EOF", b, err)
		}
		if code, body := get(t, f, "/empty"); code != 200 || body != "" {
			t.Errorf("empty handler: got %d %q, want 200 \"\"", code, body)
		}
	})
}

func TestResetCounts(t *testing.T) {
	forEachTarget(t, func(t *testing.T, start func(*testing.T, ...resilienttest.Fault) fake) {
		f := start(t, resilienttest.FailFirst(1, 503))
		r := f.rec.(interface{ ResetCounts() })
		for phase := 1; phase <= 2; phase++ {
			for i, want := range []int{503, 200, 200} {
				if code, _ := get(t, f, "/"); code != want {
					t.Errorf("phase %d, request %d: %d, want %d", phase, i+1, code, want)
				}
			}
			rs := f.rec.Requests()
			if f.rec.Count() != 3 || len(rs) != 3 || rs[0].N != 1 || rs[2].N != 3 || f.rec.PeakInFlight() != 1 {
				t.Errorf("phase %d: Count %d, %d requests, PeakInFlight %d; want 3, 3 numbered 1 to 3, 1",
					phase, f.rec.Count(), len(rs), f.rec.PeakInFlight())
			}
			r.ResetCounts()
			if f.rec.Count() != 0 || len(f.rec.Requests()) != 0 || f.rec.PeakInFlight() != 0 {
				t.Errorf("after ResetCounts: Count %d, %d requests, PeakInFlight %d; want 0",
					f.rec.Count(), len(f.rec.Requests()), f.rec.PeakInFlight())
			}
		}
	})
}

func TestServerResetCountsConns(t *testing.T) {
	srv := resilienttest.NewServer(t)
	get(t, fake{srv.Client(), srv.URL, srv}, "/")
	if srv.Conns() != 1 {
		t.Fatalf("Conns() = %d, want 1", srv.Conns())
	}
	srv.ResetCounts()
	if srv.Conns() != 0 {
		t.Errorf("Conns() after ResetCounts = %d, want 0", srv.Conns())
	}
}

// The README's snippet: the 503s carry the Retry-After, and the standard
// pipeline honours it and gets through on the third request.
func TestREADMESnippet(t *testing.T) {
	srv := resilienttest.NewServer(t,
		resilienttest.RetryAfter(time.Second),                     // a header on every response,
		resilienttest.FailFirst(2, http.StatusServiceUnavailable), // 503 to requests 1 and 2
	)
	client := resilient.NewClient()
	defer client.CloseIdleConnections()
	start := time.Now()
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || srv.Count() != 3 {
		t.Errorf("got %d after %d requests, want 200 after 3", resp.StatusCode, srv.Count())
	}
	// Two waits of the whole Retry-After: the backoff alone is far shorter.
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("took %v, want at least the two Retry-After waits (2s)", d)
	}
}
