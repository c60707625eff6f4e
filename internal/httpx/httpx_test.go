package httpx

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAuthorityOf(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"http://h/x", "http://h:80"},
		{"https://h/x", "https://h:443"},
		{"http://h:8080/x", "http://h:8080"},
		{"http://127.0.0.1:1/", "http://127.0.0.1:1"},
		{"http://[::1]:9/", "http://[::1]:9"},
		{"https://[::1]/", "https://[::1]:443"},
		{"http://API.Example.TEST:81/x", "http://api.example.test:81"},
		{"HTTPS://Host/", "https://host:443"},
	} {
		req, err := http.NewRequest("GET", tc.in, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := AuthorityOf(req).String(); got != tc.want {
			t.Errorf("AuthorityOf(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	a, _ := http.NewRequest("GET", "http://h/", nil)
	b, _ := http.NewRequest("GET", "http://h:80/other", nil)
	if AuthorityOf(a) != AuthorityOf(b) {
		t.Error("implicit and explicit default port differ")
	}
}

func TestAuthorityOfDoesNotAllocate(t *testing.T) {
	req, _ := http.NewRequest("GET", "http://h/x", nil)
	if n := testing.AllocsPerRun(100, func() { _ = AuthorityOf(req) }); n != 0 {
		t.Errorf("AuthorityOf allocates %v times", n)
	}
}

func FuzzAuthorityOf(f *testing.F) {
	for _, s := range []string{"h", "h:80", "[::1]:9", "[::1]", "h:", ":", "]:1", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		req := &http.Request{URL: &url.URL{Scheme: "http", Host: host}}
		a := AuthorityOf(req)
		if a.Port == "" {
			t.Errorf("host %q gave no port", host)
		}
		if !strings.HasPrefix(a.String(), "http://") {
			t.Errorf("host %q formats as %q", host, a.String())
		}
	})
}

func TestRewindGivesFreshBody(t *testing.T) {
	req, _ := http.NewRequest("PUT", "http://h/", bytes.NewReader([]byte("payload")))
	io.ReadAll(req.Body)
	again, err := Rewind(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(again.Body)
	if string(got) != "payload" {
		t.Errorf("rewound body = %q", got)
	}
	if again == req {
		t.Error("Rewind changed the caller's request in place")
	}
}

type closeCounter struct {
	io.Reader
	mu     sync.Mutex
	closed int
	read   int
}

func (c *closeCounter) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.Reader.Read(p)
	c.read += n
	return n, err
}
func (c *closeCounter) Close() error { c.mu.Lock(); c.closed++; c.mu.Unlock(); return nil }

// stalledBody sends nothing until it is closed, as a server that stopped
// mid-body would.
type stalledBody struct{ closed chan struct{} }

func (b *stalledBody) Read([]byte) (int, error) { <-b.closed; return 0, errors.New("closed") }
func (b *stalledBody) Close() error {
	select {
	case <-b.closed:
	default:
		close(b.closed)
	}
	return nil
}

func TestDiscardDoesNotWaitOnAStalledBody(t *testing.T) {
	body := &stalledBody{closed: make(chan struct{})}
	start := time.Now()
	Discard(&http.Response{Body: body})
	if el := time.Since(start); el > time.Second {
		t.Errorf("Discard waited %v on a stalled body, want about %v", el, DrainTime)
	}
	select {
	case <-body.closed:
	default:
		t.Error("stalled body not closed")
	}
}

func TestDiscardDrainsBoundedAndCloses(t *testing.T) {
	big := &closeCounter{Reader: bytes.NewReader(make([]byte, 10*DrainLimit))}
	Discard(&http.Response{Body: big})
	if big.closed < 1 {
		t.Errorf("closed %d times", big.closed)
	}
	if big.read > DrainLimit {
		t.Errorf("read %d bytes of a huge body, want at most %d", big.read, DrainLimit)
	}
	Discard(nil)
}
