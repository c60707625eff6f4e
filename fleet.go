package resilient

import (
	"context"
	"time"
)

// Fleet is state shared by the processes of a fleet, so that a quota holds
// for the fleet rather than for each process, and a dependency the fleet
// has found dead is not rediscovered by every process. A nil Fleet in a
// policy means this process alone. The core package holds the interface
// and no store; the redisfleet module implements it on Redis.
//
// Implementations must be safe for concurrent use, and must bound every
// call to their store with a short timeout of their own: a stage that gets
// an error goes on with its own local state, so a store that is away never
// fails or stalls a call.
//
// # Breakers
//
// Each process keeps its own breaker, and a healthy call never leaves the
// process: the stage reads Epoch (one atomic load) and goes on. What is
// shared is evidence and its verdict. A failure seen while the local
// breaker is closed is reported (ReportFailure, off the caller's path);
// the fleet opens a key only when the failures come from at least a quorum
// of distinct processes, each counted up to a share of the threshold, so
// one broken process cannot open the key for the rest. The verdict comes
// back by push: Epoch moves, the stage asks BreakerOpen, and holds its
// local breaker open until the fleet's probe time. Then one process in the
// fleet probes (AcquireProbe is a lock) and reports the result
// (ReportProbe): success closes the key everywhere, after which each
// process sends its own probe before it closes; failure opens the key for
// another interval. While the store is away, each process has only its
// own breaker, as without a Fleet.
type Fleet interface {
	// TakeRate asks for the next turn of key under a GCRA limit of rate
	// calls a second with burst calls at once, as RateLimit does locally.
	// If the turn comes within maxWait it is reserved, and wait is how
	// long the caller must wait for it (zero: go now). Otherwise nothing
	// is reserved, ok is false, and wait is how long until a turn would
	// come. The store's clock is the fleet's clock: the caller passes no
	// time, so processes whose clocks disagree still share one schedule.
	TakeRate(ctx context.Context, key string, rate float64, burst int, maxWait time.Duration) (wait time.Duration, ok bool, err error)

	// Epoch changes whenever what BreakerOpen would answer for some key
	// may have changed (and when a key not asked about before is asked
	// about). The breaker stage reads it on every call, so it must cost
	// no more than an atomic load.
	Epoch() uint64
	// BreakerOpen reports whether the fleet holds key open, and the time
	// until the fleet's probe may go (zero once it is due). It answers
	// from memory: a key it does not know yet reads closed while it is
	// learned in the background, and Epoch moves when it is known.
	BreakerOpen(key string) (probeIn time.Duration, open bool)
	// ReportFailure reports a failure this process saw on f.Key while its
	// own breaker was closed. It must not block: the report is sent off
	// the caller's path, and dropped when the store is away.
	ReportFailure(f FleetFailure)
	// AcquireProbe asks to be the fleet's one probe of key while the
	// fleet holds it open, for at most ttl. If another process holds the
	// probe, ok is false and wait is how long its lock may still last.
	// A key the fleet does not hold open may be probed by anyone (ok).
	AcquireProbe(ctx context.Context, key string, ttl time.Duration) (wait time.Duration, ok bool, err error)
	// ReportProbe reports the outcome of the probe AcquireProbe granted:
	// success closes key in the fleet, failure holds it open for openFor.
	// Like ReportFailure it must not block.
	ReportProbe(key string, success bool, openFor time.Duration)
}

// FleetFailure is one failure a breaker reports to its Fleet, with the
// numbers the fleet opens the key on: the breaker's own.
type FleetFailure struct {
	Key string
	// AfterSuccess is true when this process's previous call on Key
	// succeeded: the fleet's run of failures starts again, as a local
	// breaker's consecutive count does.
	AfterSuccess bool
	// Threshold is BreakerPolicy.ConsecutiveFailures: the failures, in
	// all the fleet, that open the key.
	Threshold int
	// OpenFor is BreakerPolicy.OpenTimeout; Window is how long a failure
	// counts as evidence (BreakerPolicy.Window).
	OpenFor, Window time.Duration
}
