package resilient_test

import (
	"context"
	"sync"

	"github.com/resilient-go/resilient/internal/telemetry"
)

// recordSink is a telemetry.Sink that keeps the events it receives.
type recordSink struct {
	mu  sync.Mutex
	evs []telemetry.Event
}

func (s *recordSink) Record(_ context.Context, ev telemetry.Event) {
	s.mu.Lock()
	s.evs = append(s.evs, ev)
	s.mu.Unlock()
}

// kinds returns the events of kind k, in order.
func (s *recordSink) kinds(k telemetry.Kind) []telemetry.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []telemetry.Event
	for _, ev := range s.evs {
		if ev.Kind == k {
			out = append(out, ev)
		}
	}
	return out
}

// count returns how many events of kind k arrived.
func (s *recordSink) count(k telemetry.Kind) int { return len(s.kinds(k)) }
