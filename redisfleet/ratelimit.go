package redisfleet

import (
	"context"
	"math"
	"time"

	"github.com/redis/go-redis/v9"
)

// rateScript is GCRA as resilient.RateLimit runs it in one process, on
// Redis's clock and in microseconds: a turn is free when the next is due
// no more than the tolerance ahead; taking it moves the due time on by one
// interval. The key lapses when the schedule is back to idle.
// KEYS: the schedule. ARGV: interval, tolerance, max wait (µs).
// Returns {1, wait} when a turn is reserved, {0, wait} when not.
var rateScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
local wait = tat - now - tolerance
if wait > tonumber(ARGV[3]) then return {0, wait} end
local due = tat + interval
redis.call('SET', KEYS[1], string.format('%d', due), 'PX', math.floor((due - now) / 1000) + 1)
return {1, wait}
`)

// TakeRate implements resilient.Fleet: one script call, bounded by
// Options.Timeout. Rates above a million a second count as a million
// (the schedule is kept in microseconds).
func (f *Fleet) TakeRate(ctx context.Context, key string, rate float64, burst int, maxWait time.Duration) (time.Duration, bool, error) {
	ctx, cancel := f.bound(ctx)
	defer cancel()
	interval := max(math.Round(1e6/rate), 1)
	tolerance := interval * float64(max(burst-1, 0))
	res, err := rateScript.Run(ctx, f.rdb, []string{"{" + f.prefix + ":r:" + key + "}"},
		int64(interval), int64(tolerance), maxWait.Microseconds()).Int64Slice()
	if err != nil {
		return 0, false, err
	}
	wait := time.Duration(res[1]) * time.Microsecond
	if res[0] == 1 {
		return max(wait, 0), true, nil
	}
	return wait, false, nil
}
