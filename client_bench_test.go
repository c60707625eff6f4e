package resilient_test

import (
	"testing"

	"github.com/resilient-go/resilient"
)

// BenchmarkChain measures the standard pipeline's happy path over an
// in-memory transport, next to the bare transport.
func BenchmarkChain(b *testing.B) {
	b.Run("raw", func(b *testing.B) { benchRoundTrip(b, memTransport{}) })
	b.Run("standard", func(b *testing.B) { benchRoundTrip(b, resilient.NewTransport(memTransport{})) })
}
