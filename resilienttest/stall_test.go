package resilienttest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/resilient-go/resilient/resilienttest"
)

// readStalled GETs f with a deadline d away and reads the whole body. It
// returns what was read, how long the call took and the read's error.
func readStalled(t *testing.T, f fake, d time.Duration) (string, time.Duration, error) {
	t.Helper()
	start := time.Now() // before the deadline is set, so took >= d when it ends the read
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("the header should arrive at once: %v", err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	// The announced length is never reached, so the body cannot look
	// complete.
	if resp.StatusCode != 200 || resp.ContentLength < int64(len("hello, world")) || resp.ContentLength <= int64(len(got)) {
		t.Errorf("got %d announcing %d bytes, read %d; want 200 announcing at least the whole body and more than was read",
			resp.StatusCode, resp.ContentLength, len(got))
	}
	return string(got), time.Since(start), err
}

func TestStall(t *testing.T) {
	forEachTarget(t, func(t *testing.T, start func(*testing.T, ...resilienttest.Fault) fake) {
		for _, tc := range []struct {
			name   string
			script []resilienttest.Fault
			want   string
		}{
			{"after 5 bytes", []resilienttest.Fault{resilienttest.Stall(5)}, "hello"},
			{"before any byte", []resilienttest.Fault{resilienttest.Stall(0)}, ""},
			{"after a dripped part", []resilienttest.Fault{resilienttest.Drip(2, time.Millisecond), resilienttest.Stall(5)}, "hello"},
			{"past the body's end", []resilienttest.Fault{resilienttest.Stall(100)}, "hello, world"},
		} {
			const d = 100 * time.Millisecond
			f := start(t, append(tc.script, resilienttest.Respond(200, "hello, world"))...)
			got, took, err := readStalled(t, f, d)
			if got != tc.want {
				t.Errorf("%s: read %q, want %q", tc.name, got, tc.want)
			}
			// Only the client's deadline ends the read: no EOF, no early
			// error.
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s: read ended with %v, want the client's deadline", tc.name, err)
			}
			if took < d {
				t.Errorf("%s: read ended after %v, before the %v deadline", tc.name, took, d)
			}
			eventually(t, "the stalled request ends when its client goes away", func() bool { return f.rec.InFlight() == 0 })
		}

		// A response without a body has nothing to stall: it is sent whole.
		f := start(t, resilienttest.Stall(1))
		req, _ := http.NewRequest(http.MethodHead, f.url, nil)
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || f.rec.InFlight() != 0 {
			t.Errorf("HEAD: got %d with %d in flight, want 200 and none", resp.StatusCode, f.rec.InFlight())
		}
	})
}

func TestStallEndsAtServerClose(t *testing.T) {
	srv := resilienttest.StartServer(resilienttest.Stall(2), resilienttest.Respond(200, "hello"))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 2)
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "he" {
		t.Fatalf("read %q, %v; want the 2 bytes before the stall", first, err)
	}
	srv.Close() // must return although the client still waits
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("a body stalled at Close read to a clean end, want an error")
	}
	if n := srv.InFlight(); n != 0 {
		t.Errorf("InFlight() = %d after Close", n)
	}
}
