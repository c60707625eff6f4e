package bench

import (
	"fmt"
	"net/http"
	"testing"
)

// BenchmarkHappy is a GET answered 200 on the first try: what a library
// costs on the common path, over an in-memory transport (the library
// alone) and a loopback server, from one caller and from 32 at once.
func BenchmarkHappy(b *testing.B) {
	libs := append([]lib{libRaw, libResilient}, peers...)
	for _, tr := range []string{"mem", "loopback"} {
		for _, callers := range []int{1, 32} {
			for _, l := range libs {
				b.Run(fmt.Sprintf("transport=%s/callers=%d/lib=%s", tr, callers, l.name), func(b *testing.B) {
					benchHappy(b, l, tr, callers)
				})
			}
		}
	}
}

func benchHappy(b *testing.B, l lib, tr string, callers int) {
	var base http.RoundTripper = memTransport{http.StatusOK}
	url := "http://example.test/"
	var srv *server
	if tr == "loopback" {
		srv = newServer(b, serverOpts{})
		base, url = srv.client, srv.URL
	}
	rt := l.wrap(base, cfg{})
	if rt == nil {
		b.Skip("not configurable yet")
	}
	b.ReportAllocs()
	if callers == 1 {
		req := newGet(b, url)
		for b.Loop() {
			if st, err := do(rt, req); err != nil || st != http.StatusOK {
				b.Fatalf("got %d, %v; want 200", st, err)
			}
		}
	} else {
		setGoroutines(b, callers)
		b.RunParallel(func(pb *testing.PB) {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			for pb.Next() {
				if st, err := do(rt, req); err != nil || st != http.StatusOK {
					b.Errorf("got %d, %v; want 200", st, err)
					return
				}
			}
		})
	}
	if srv != nil {
		perCall(b, srv.conns.Load(), "conns/op")
	}
}
