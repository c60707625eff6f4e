package body

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type counter struct{ n atomic.Int32 }

func (c *counter) Release() { c.n.Add(1) }

func respWith(rc io.ReadCloser) *http.Response {
	return &http.Response{StatusCode: 200, Body: rc}
}

func TestReleaseOnceOnEOFThenClose(t *testing.T) {
	var c counter
	resp := respWith(io.NopCloser(strings.NewReader("hello")))
	Track(resp, &c)
	if c.n.Load() != 0 {
		t.Fatal("released before the body was read")
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil || string(got) != "hello" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	resp.Body.Close()
	resp.Body.Close()
	if n := c.n.Load(); n != 1 {
		t.Errorf("released %d times, want 1", n)
	}
}

func TestReleaseOnClose(t *testing.T) {
	var c counter
	resp := respWith(io.NopCloser(strings.NewReader("unread")))
	Track(resp, &c)
	resp.Body.Close()
	if n := c.n.Load(); n != 1 {
		t.Errorf("released %d times after Close, want 1", n)
	}
}

type failing struct{ err error }

func (f failing) Read([]byte) (int, error) { return 0, f.err }
func (f failing) Close() error             { return nil }

type mapper struct{ counter }

var errMapped = errors.New("mapped")

func (m *mapper) MapReadError(error) error { return errMapped }

func TestReadErrorIsMappedAndReleases(t *testing.T) {
	var m mapper
	resp := respWith(failing{errors.New("boom")})
	Track(resp, &m)
	_, err := resp.Body.Read(make([]byte, 4))
	if !errors.Is(err, errMapped) {
		t.Errorf("Read error = %v, want the mapper's", err)
	}
	if n := m.n.Load(); n != 1 {
		t.Errorf("released %d times after a read error, want 1", n)
	}
}

func TestJoinSharesOneWrapper(t *testing.T) {
	var a, b counter
	resp := respWith(io.NopCloser(strings.NewReader("x")))
	Track(resp, &a)
	first := resp.Body
	Track(resp, &b)
	if resp.Body != first {
		t.Error("second Track allocated a second wrapper instead of joining")
	}
	resp.Body.Close()
	if a.n.Load() != 1 || b.n.Load() != 1 {
		t.Errorf("releases = %d, %d; want 1, 1", a.n.Load(), b.n.Load())
	}
}

func TestJoinPastCapacityStacks(t *testing.T) {
	cs := make([]counter, maxReleasers+2)
	resp := respWith(io.NopCloser(strings.NewReader("x")))
	for i := range cs {
		Track(resp, &cs[i])
	}
	resp.Body.Close()
	for i := range cs {
		if n := cs[i].n.Load(); n != 1 {
			t.Errorf("releaser %d ran %d times, want 1", i, n)
		}
	}
}

func TestNoBodyReleasesAtOnce(t *testing.T) {
	for _, rc := range []io.ReadCloser{nil, http.NoBody} {
		var c counter
		resp := respWith(rc)
		Track(resp, &c)
		if c.n.Load() != 1 {
			t.Errorf("body %v: not released at once", rc)
		}
	}
}

type rwc struct {
	io.Reader
	written strings.Builder
}

func (r *rwc) Write(p []byte) (int, error) { return r.written.Write(p) }
func (r *rwc) Close() error                { return nil }

func TestSwitchingProtocolsKeepsWriter(t *testing.T) {
	var c counter
	conn := &rwc{Reader: strings.NewReader("")}
	resp := &http.Response{StatusCode: http.StatusSwitchingProtocols, Body: conn}
	Track(resp, &c)
	w, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatal("101 body lost io.Writer")
	}
	io.WriteString(w, "ping")
	if conn.written.String() != "ping" {
		t.Errorf("write reached %q", conn.written.String())
	}
	var d counter
	Track(resp, &d) // joins through the switching wrapper
	w.Close()
	if c.n.Load() != 1 || d.n.Load() != 1 {
		t.Errorf("releases = %d, %d; want 1, 1", c.n.Load(), d.n.Load())
	}
}
