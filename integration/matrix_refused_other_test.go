//go:build !unix

package integration

import (
	"net"
	"testing"
)

// refusedAddr returns a 127.0.0.1 address nothing listens on: the port of
// a listener just closed. Unlike the unix version it does not hold the
// port, so another listener could take it in the meantime.
func refusedAddr(t *testing.T) (addr string, release func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	_ = ln.Close()
	return addr, func() {}
}
