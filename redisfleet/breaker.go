package redisfleet

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilient-go/resilient"
)

// The keys of breaker key K share the hash tag {prefix:b:K}, so that each
// script touches one Redis Cluster slot:
//
//	{prefix:b:K}:ev     hash instance → failures it reported (its evidence)
//	{prefix:b:K}:open   the fleet's probe time (ms, Redis clock) while open
//	{prefix:b:K}:probe  the probe lock: the instance that probes
//
// Times come from Redis TIME, so the fleet runs on one clock; what is
// pushed to processes is durations, so no process compares its own clock
// with another's.

// failScript counts one failure as evidence and opens the key when a
// quorum of instances has reported the threshold between them. Each
// instance counts for at most ceil(threshold/quorum): fewer than quorum
// instances never open the key, however many failures they see.
// KEYS: ev, open. ARGV: instance, after success (0/1), threshold, quorum,
// open for (ms), window (ms), channel, key.
// Returns {probe in, lapse} (ms) when the key is open, else {-1, 0}.
var failScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = tonumber(redis.call('GET', KEYS[2]))
if due then return {math.max(due - now, 0), redis.call('PTTL', KEYS[2])} end
if ARGV[2] == '1' then redis.call('DEL', KEYS[1]) end
local threshold, quorum = tonumber(ARGV[3]), tonumber(ARGV[4])
local mine = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if mine < math.ceil(threshold / quorum) then redis.call('HINCRBY', KEYS[1], ARGV[1], 1) end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
local counts = redis.call('HVALS', KEYS[1])
local total = 0
for _, n in ipairs(counts) do total = total + tonumber(n) end
if #counts < quorum or total < threshold then return {-1, 0} end
local openFor = tonumber(ARGV[5])
redis.call('SET', KEYS[2], now + openFor, 'PX', 2 * openFor)
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[7], 'o ' .. openFor .. ' ' .. 2 * openFor .. ' ' .. ARGV[8])
return {openFor, 2 * openFor}
`)

// probeScript takes the probe lock of an open key whose probe is due.
// KEYS: open, probe. ARGV: instance, ttl (ms).
// Returns -1 when the caller may probe, else how long to wait (ms).
var probeScript = redis.NewScript(`
local due = tonumber(redis.call('GET', KEYS[1]))
if not due then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if due > now then return due - now end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return -1 end
return math.max(redis.call('PTTL', KEYS[2]), 1)
`)

// resultScript publishes the probe's outcome, if the caller still holds
// the lock (a lapsed lock's result is another probe's to give).
// KEYS: ev, open, probe. ARGV: instance, success (0/1), open for (ms),
// channel, key.
var resultScript = redis.NewScript(`
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  redis.call('PUBLISH', ARGV[4], 'c ' .. ARGV[5])
  return 1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local openFor = tonumber(ARGV[3])
redis.call('SET', KEYS[2], now + openFor, 'PX', 2 * openFor)
redis.call('DEL', KEYS[3])
redis.call('PUBLISH', ARGV[4], 'o ' .. openFor .. ' ' .. 2 * openFor .. ' ' .. ARGV[5])
return 1
`)

// lookScript reads an open key. KEYS: open.
// Returns {probe in, lapse} (ms) when open, else {-1, 0}.
var lookScript = redis.NewScript(`
local due = tonumber(redis.call('GET', KEYS[1]))
if not due then return {-1, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {math.max(due - now, 0), redis.call('PTTL', KEYS[1])}
`)

func (f *Fleet) keys(key string) (ev, open, probe string) {
	tag := "{" + f.prefix + ":b:" + key + "}"
	return tag + ":ev", tag + ":open", tag + ":probe"
}

func ms(d time.Duration) int64 { return max(d.Milliseconds(), 1) }

type opKind uint8

const (
	opFailure opKind = iota
	opResult
	opLookup
)

// op is one report waiting for the reporter goroutine.
type op struct {
	kind    opKind
	key     string
	failure resilient.FleetFailure
	success bool
	openFor time.Duration
}

// enqueue hands o to the reporter without blocking; a full queue (Redis
// slow or away) or a closed Fleet drops it.
func (f *Fleet) enqueue(o op) {
	if f.ctx.Err() != nil {
		return
	}
	select {
	case f.ops <- o:
	default:
	}
}

// report sends queued reports to Redis, one at a time, until Close.
func (f *Fleet) report() {
	defer f.wg.Done()
	for {
		select {
		case <-f.ctx.Done():
			return
		case o := <-f.ops:
			f.send(o)
		}
	}
}

func (f *Fleet) send(o op) {
	ctx, cancel := f.bound(f.ctx)
	defer cancel()
	ev, open, probe := f.keys(o.key)
	switch o.kind {
	case opFailure:
		r := o.failure
		after := 0
		if r.AfterSuccess {
			after = 1
		}
		res, err := failScript.Run(ctx, f.rdb, []string{ev, open},
			f.id, after, r.Threshold, f.quorum, ms(r.OpenFor), ms(r.Window), f.channel, o.key).Int64Slice()
		f.learned(o.key, res, err)
	case opResult:
		success := 0
		if o.success {
			success = 1
		}
		_ = resultScript.Run(ctx, f.rdb, []string{ev, open, probe},
			f.id, success, ms(o.openFor), f.channel, o.key).Err()
	case opLookup:
		res, err := lookScript.Run(ctx, f.rdb, []string{open}).Int64Slice()
		if err != nil {
			f.mu.Lock()
			delete(f.known, o.key) // ask again next time
			f.mu.Unlock()
		}
		f.learned(o.key, res, err)
	}
}

// learned takes a script's {probe in, lapse} reply.
func (f *Fleet) learned(key string, res []int64, err error) {
	if err != nil || len(res) != 2 {
		return
	}
	if res[0] < 0 {
		f.setClosed(key)
		return
	}
	f.setOpen(key, res[0], res[1])
}

// ReportFailure implements resilient.Fleet: the report is sent by the
// Fleet's own goroutine.
func (f *Fleet) ReportFailure(r resilient.FleetFailure) {
	f.enqueue(op{kind: opFailure, key: r.Key, failure: r})
}

// ReportProbe implements resilient.Fleet, off the caller's path.
func (f *Fleet) ReportProbe(key string, success bool, openFor time.Duration) {
	f.enqueue(op{kind: opResult, key: key, success: success, openFor: openFor})
}

// AcquireProbe implements resilient.Fleet: one script call, bounded by
// Options.Timeout.
func (f *Fleet) AcquireProbe(ctx context.Context, key string, ttl time.Duration) (time.Duration, bool, error) {
	ctx, cancel := f.bound(ctx)
	defer cancel()
	_, open, probe := f.keys(key)
	wait, err := probeScript.Run(ctx, f.rdb, []string{open, probe}, f.id, ms(ttl)).Int64()
	if err != nil {
		return 0, false, err
	}
	if wait < 0 {
		return 0, true, nil
	}
	return time.Duration(wait) * time.Millisecond, false, nil
}
