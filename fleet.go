package resilient

import (
	"context"
	"time"
)

// Fleet is state shared by the processes of a fleet, so that a quota holds
// for the fleet rather than for each process. A nil Fleet in a policy
// means this process alone. The core package holds the interface and no
// store; the redisfleet module implements it on Redis.
//
// Implementations must be safe for concurrent use, and must bound every
// call to their store with a short timeout of their own: a stage that gets
// an error goes on with its own local state, so a store that is away never
// fails or stalls a call.
type Fleet interface {
	// TakeRate asks for the next turn of key under a GCRA limit of rate
	// calls a second with burst calls at once, as RateLimit does locally.
	// If the turn comes within maxWait it is reserved, and wait is how
	// long the caller must wait for it (zero: go now). Otherwise nothing
	// is reserved, ok is false, and wait is how long until a turn would
	// come. The store's clock is the fleet's clock: the caller passes no
	// time, so processes whose clocks disagree still share one schedule.
	TakeRate(ctx context.Context, key string, rate float64, burst int, maxWait time.Duration) (wait time.Duration, ok bool, err error)
}
