// Package redisfleet shares resilient's circuit breakers and rate limits
// between the processes of a fleet through one Redis (or a Redis Cluster,
// through redis.UniversalClient).
//
// A healthy call sends nothing to Redis: each process keeps its own
// breaker, and what Redis carries is evidence (failures), verdicts (a key
// opened or closed, pushed by pub/sub), the one probe lock per open key,
// and one Lua call per rate-limited call (the quota must be exact, so it
// is counted where all processes see it). Every Redis call is bounded by
// Options.Timeout; while Redis is away, each process runs on its own
// state.
package redisfleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilient-go/resilient"
)

// Defaults of Options.
const (
	DefaultPrefix  = "resilient"
	DefaultTimeout = 50 * time.Millisecond
	DefaultQuorum  = 2
)

// queueSize bounds the reports waiting for Redis: a failure storm while
// Redis is slow drops reports rather than memory or calls.
const queueSize = 1024

// Options configure a Fleet. The zero value is the default.
type Options struct {
	// Prefix namespaces every key and the pub/sub channel, so that
	// fleets (or tests) share a Redis without seeing each other. Zero
	// means "resilient".
	Prefix string
	// Timeout bounds every Redis call. A call that takes longer counts as
	// Redis being away: the stage goes on with its local state. Zero
	// means 50 ms. The client should honour contexts: with go-redis, set
	// ContextTimeoutEnabled (or ReadTimeout and WriteTimeout as short).
	Timeout time.Duration
	// Quorum is how many distinct processes must have reported failures
	// before the fleet opens a key; each counts for at most
	// ceil(threshold/Quorum) failures, so fewer processes, however many
	// failures they see, never open it. Zero means 2; 1 lets a single
	// process open the key for all.
	Quorum int
	// InstanceID names this process in the evidence. Zero means a random
	// one; two Fleets must never share one.
	InstanceID string
}

// Fleet is a resilient.Fleet on Redis. Safe for concurrent use. New starts
// two goroutines (the pub/sub listener and the reporter); Close stops
// them.
type Fleet struct {
	rdb     redis.UniversalClient
	prefix  string
	channel string
	timeout time.Duration
	quorum  int
	id      string

	epoch atomic.Uint64
	mu    sync.Mutex
	open  map[string]verdict // guarded by mu: keys the fleet holds open
	known map[string]bool    // guarded by mu: keys learned or being learned

	ops       chan op
	ctx       context.Context
	cancel    context.CancelFunc
	ps        *redis.PubSub
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var _ resilient.Fleet = (*Fleet)(nil)

// verdict is the fleet's open state of a key, on this process's clock.
type verdict struct {
	probeAt time.Time // the fleet's probe may go
	expires time.Time // the open key lapses in Redis unless renewed
}

// New returns a Fleet on client. The client stays the caller's: Close
// does not close it.
func New(client redis.UniversalClient, opts Options) *Fleet {
	f := &Fleet{
		rdb:     client,
		prefix:  opts.Prefix,
		timeout: opts.Timeout,
		quorum:  opts.Quorum,
		id:      opts.InstanceID,
		open:    map[string]verdict{},
		known:   map[string]bool{},
		ops:     make(chan op, queueSize),
	}
	if f.prefix == "" {
		f.prefix = DefaultPrefix
	}
	if f.timeout <= 0 {
		f.timeout = DefaultTimeout
	}
	if f.quorum <= 0 {
		f.quorum = DefaultQuorum
	}
	if f.id == "" {
		var b [8]byte
		_, _ = rand.Read(b[:]) // never fails (crypto/rand)
		f.id = hex.EncodeToString(b[:])
	}
	f.channel = f.prefix + ":breaker"
	f.epoch.Store(1) // a new breaker (epoch 0) asks once
	f.ctx, f.cancel = context.WithCancel(context.Background())
	// Subscribe returns at once; the subscription is made, and remade
	// after an outage, by the listener's Receive.
	f.ps = client.Subscribe(f.ctx, f.channel)
	f.wg.Add(2)
	go f.listen()
	go f.report()
	return f
}

// Close stops the Fleet's goroutines and waits for them. Reports not yet
// sent are dropped. It returns nil; calling it again does nothing.
func (f *Fleet) Close() error {
	f.closeOnce.Do(func() {
		f.cancel()
		_ = f.ps.Close() // unblocks Receive
		f.wg.Wait()
	})
	return nil
}

// bound is ctx with the Fleet's timeout, and also ended by Close.
func (f *Fleet) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	stop := context.AfterFunc(f.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// listen applies pushed verdicts until Close.
func (f *Fleet) listen() {
	defer f.wg.Done()
	backoff := 50 * time.Millisecond
	for {
		msg, err := f.ps.Receive(f.ctx)
		if f.ctx.Err() != nil {
			return
		}
		if err != nil {
			// Redis is away; go-redis redials on the next Receive.
			t := time.NewTimer(backoff)
			select {
			case <-f.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			// (Re)subscribed: what was pushed while away is lost, so
			// every key is learned again when next asked about.
			f.mu.Lock()
			clear(f.known)
			f.mu.Unlock()
			f.epoch.Add(1)
		case *redis.Message:
			f.apply(m.Payload)
		}
	}
}

// apply takes a pushed verdict: "o <probe in ms> <lapse in ms> <key>" or
// "c <key>".
func (f *Fleet) apply(payload string) {
	kind, rest, _ := strings.Cut(payload, " ")
	switch kind {
	case "o":
		in, rest, _ := strings.Cut(rest, " ")
		lapse, key, _ := strings.Cut(rest, " ")
		probeIn, err1 := strconv.ParseInt(in, 10, 64)
		ttl, err2 := strconv.ParseInt(lapse, 10, 64)
		if err1 == nil && err2 == nil {
			f.setOpen(key, probeIn, ttl)
		}
	case "c":
		f.setClosed(rest)
	}
}

func (f *Fleet) setOpen(key string, probeInMS, lapseMS int64) {
	now := time.Now()
	f.mu.Lock()
	f.known[key] = true
	f.open[key] = verdict{
		probeAt: now.Add(time.Duration(probeInMS) * time.Millisecond),
		expires: now.Add(time.Duration(lapseMS) * time.Millisecond),
	}
	f.mu.Unlock()
	f.epoch.Add(1)
}

func (f *Fleet) setClosed(key string) {
	f.mu.Lock()
	f.known[key] = true
	_, was := f.open[key]
	delete(f.open, key)
	f.mu.Unlock()
	if was {
		f.epoch.Add(1)
	}
}

// Epoch implements resilient.Fleet: one atomic load.
func (f *Fleet) Epoch() uint64 { return f.epoch.Load() }

// BreakerOpen implements resilient.Fleet from memory. A key not asked
// about before is looked up in the background.
func (f *Fleet) BreakerOpen(key string) (time.Duration, bool) {
	now := time.Now()
	f.mu.Lock()
	v, open := f.open[key]
	learn := !f.known[key]
	f.known[key] = true
	f.mu.Unlock()
	if learn {
		f.enqueue(op{kind: opLookup, key: key})
	}
	if !open || !now.Before(v.expires) {
		return 0, false
	}
	return max(v.probeAt.Sub(now), 0), true
}
