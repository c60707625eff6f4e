package bounded

import (
	"testing"
	"unsafe"
)

// Every call through a Timeout stage allocates one call: past 256 bytes it
// moves to the 288-byte size class, 32 bytes more a call on the happy path
// (a bool added to deadline.Context once did that).
func TestCallFitsItsSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(call{}); n > 256 {
		t.Errorf("a call is %d bytes, want at most 256", n)
	}
}
