package clock

import (
	"time"
	"unsafe"
)

// SkewOriginWall makes the origin's wall reading d (whole seconds) later,
// keeping its monotonic one: as if the wall clock had been stepped back by
// d since the process started. It returns a func that undoes it. For tests
// of code that mixes wall-only and monotonic times; time.Time has no API
// for this, hence unsafe. Not safe while other goroutines read the clock.
func SkewOriginWall(d time.Duration) (undo func(), ok bool) {
	saved := origin
	p := (*struct{ wall uint64 })(unsafe.Pointer(&origin))
	p.wall += uint64(d/time.Second) << 30 // seconds sit above 30 bits of nanoseconds
	undo = func() { origin = saved }
	if origin.Sub(saved) != 0 || origin.Round(0).Sub(saved.Round(0)) != d {
		undo()
		return func() {}, false
	}
	return undo, true
}
