package resilient

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/resilient-go/resilient/internal/breaker"
	"github.com/resilient-go/resilient/internal/clock"
)

// fleetLink is what one key's breaker remembers of its Fleet. The breaker
// itself stays the one source of truth for this process's state; the link
// only records why it is the way it is.
type fleetLink struct {
	epoch  atomic.Uint64 // the Fleet's Epoch when this breaker last asked it
	held   atomic.Bool   // open because the fleet said so
	lastOK atomic.Bool   // this process's last call on the key succeeded
	probe  atomic.Bool   // this process holds the fleet's probe
}

// fleetSync brings the fleet's verdict on b's key into b. On the happy
// path it is one call to Epoch and one atomic load.
func (t *breakerTransport) fleetSync(b *keyedBreaker) {
	if e := t.p.Fleet.Epoch(); b.fleet.epoch.Load() != e {
		t.fleetLearn(b, e)
	}
}

func (t *breakerTransport) fleetLearn(b *keyedBreaker, epoch uint64) {
	b.fleet.epoch.Store(epoch)
	probeIn, open := t.p.Fleet.BreakerOpen(b.key)
	now := t.settings.Clock.Now()
	switch {
	case open:
		// A probe already due is the probe lock's to time: a process
		// that was refused the lock keeps the wait the lock gave it,
		// rather than asking again on every push.
		if wasHeld := b.fleet.held.Swap(true); probeIn > 0 || !wasHeld {
			b.HoldOpen(clock.Add(now, probeIn))
		}
	case b.fleet.held.Swap(false):
		// The fleet's probe succeeded: this process probes for itself at
		// once rather than waiting out an interval the fleet has ended.
		b.HoldOpen(now)
	}
}

// fleetProbe decides whether a local probe may go. While the fleet holds
// the key open only the process that takes the fleet's probe lock sends
// it; the others stay open until the result is pushed (or the lock
// lapses). A store that does not answer gets asked again a quarter
// interval later rather than every process probing at once (a slow store
// is not an away one); if it stays away, the fleet's verdict lapses and
// this process probes on its own.
func (t *breakerTransport) fleetProbe(req *http.Request, b *keyedBreaker, ticket breaker.Ticket) (time.Duration, bool) {
	if _, open := t.p.Fleet.BreakerOpen(b.key); !open {
		return 0, true
	}
	wait, ok, err := t.p.Fleet.AcquireProbe(req.Context(), b.key, t.p.OpenTimeout)
	if ok {
		b.fleet.probe.Store(true)
		return 0, true
	}
	if err != nil {
		wait = t.p.OpenTimeout / 4
	}
	b.Done(ticket, breaker.Ignored, t.settings.Clock.Now())
	b.HoldOpen(clock.Add(t.settings.Clock.Now(), wait))
	return wait, false
}

// fleetDone reports what the fleet needs of an outcome. A success while
// closed, the happy path, costs one atomic load.
func (t *breakerTransport) fleetDone(b *keyedBreaker, ticket breaker.Ticket, o breaker.Outcome) {
	if ticket.Probe() {
		if b.fleet.probe.Swap(false) && o != breaker.Ignored {
			// An ignored probe (the caller gave up) says nothing; its
			// lock lapses on its own.
			t.p.Fleet.ReportProbe(b.key, o == breaker.Success, t.p.OpenTimeout)
		}
		if o == breaker.Success {
			b.fleet.lastOK.Store(true)
		}
		return
	}
	switch o {
	case breaker.Success:
		if !b.fleet.lastOK.Load() {
			b.fleet.lastOK.Store(true)
		}
	case breaker.Failure:
		t.p.Fleet.ReportFailure(FleetFailure{
			Key:          b.key,
			AfterSuccess: b.fleet.lastOK.Swap(false),
			Threshold:    t.p.ConsecutiveFailures,
			OpenFor:      t.p.OpenTimeout,
			Window:       t.p.Window,
		})
	}
}
