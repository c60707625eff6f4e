// Package registry is a bounded map from a key (an authority, or a user's
// key) to per-key state (a breaker, a pool), shared by the Breaker and
// Bulkhead stages. Lookups of a present key take no lock, allocate nothing
// and write no shared memory, so many goroutines calling one host do not
// contend; inserting a new key takes one lock and may evict another.
package registry

import (
	"sync"
	"sync/atomic"
)

// DefaultMax is the number of keys a Map keeps when New is given zero.
const DefaultMax = 1024

// Policy tells a Map how to make and retire values. All funcs run under the
// Map's insert lock and must not call back into it.
type Policy[K comparable, V any] struct {
	// Max bounds the number of keys. Zero means DefaultMax.
	Max int
	// New makes the value for a key seen for the first time.
	New func(K) V
	// Idle reports whether v is cheap to forget (a closed breaker, an
	// empty pool); idle values are evicted first. Nil means all are idle.
	Idle func(V) bool
	// Retire is asked to give v up; it returns false if v must stay (a
	// pool with slots in use). Once it returns true, v is removed and must
	// refuse new users. Nil means every value may go.
	Retire func(V) bool
}

// Map is a bounded concurrent map. It keeps at most Max keys, except while
// every value refuses to retire: then it grows rather than drop state in
// use, and shrinks back on later inserts. Eviction is CLOCK-like: a key looked
// up again since the last sweep gets a second chance, so one-off keys (a
// million webhook hosts) go before the hosts a client calls all the time.
type Map[K comparable, V any] struct {
	p Policy[K, V]
	m sync.Map // K -> *entry[K, V]

	// last is the entry found last: most transports call one host, and
	// comparing one key is far cheaper than hashing it into m.
	last atomic.Pointer[entry[K, V]]

	mu sync.Mutex // serialises inserts and evictions
	n  int        // guarded by mu
}

type entry[K comparable, V any] struct {
	k    K
	v    V
	used atomic.Bool // looked up since the last sweep
	gone atomic.Bool // evicted: last must not hand it out

	// The raw strings GetHinted made k from, if it inserted the entry.
	hinted       bool
	hint1, hint2 string
}

// New returns an empty Map.
func New[K comparable, V any](p Policy[K, V]) *Map[K, V] {
	if p.Max <= 0 {
		p.Max = DefaultMax
	}
	if p.New == nil {
		panic("registry: Policy.New is nil")
	}
	return &Map[K, V]{p: p}
}

// Get returns the value for k, making it if k is new.
func (m *Map[K, V]) Get(k K) V {
	if e := m.last.Load(); e != nil && e.k == k && !e.gone.Load() {
		e.touch()
		return e.v
	}
	return m.lookup(k, false, "", "")
}

// GetHinted is Get for the key mk makes from two raw strings (a request's
// scheme and host) and nothing else: when they are the ones the last
// entry was made from, mk is skipped, and building a key costs more than
// comparing two strings.
func (m *Map[K, V]) GetHinted(hint1, hint2 string, mk func() K) V {
	if e := m.last.Load(); e != nil && e.hinted && e.hint1 == hint1 && e.hint2 == hint2 && !e.gone.Load() {
		e.touch()
		return e.v
	}
	k := mk()
	if e := m.last.Load(); e != nil && e.k == k && !e.gone.Load() {
		e.touch()
		return e.v
	}
	return m.lookup(k, true, hint1, hint2)
}

func (m *Map[K, V]) lookup(k K, hinted bool, hint1, hint2 string) V {
	if e, ok := m.m.Load(k); ok {
		e := e.(*entry[K, V])
		m.last.Store(e)
		e.touch()
		return e.v
	}
	return m.insert(k, hinted, hint1, hint2)
}

// touch marks e used. Only the first lookup after a sweep writes: steady
// traffic to a hot key leaves its cache line shared.
func (e *entry[K, V]) touch() {
	if !e.used.Load() {
		e.used.Store(true)
	}
}

func (m *Map[K, V]) insert(k K, hinted bool, hint1, hint2 string) V {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.m.Load(k); ok {
		return e.(*entry[K, V]).v
	}
	for m.n >= m.p.Max && m.evictOne() {
	}
	e := &entry[K, V]{k: k, v: m.p.New(k), hinted: hinted, hint1: hint1, hint2: hint2}
	m.m.Store(k, e)
	m.last.Store(e)
	m.n++
	return e.v
}

// evictOne removes one entry, preferring idle ones not used since the last
// sweep, then idle ones, then any that agrees to retire. It reports false if
// none would go. Requires mu held.
func (m *Map[K, V]) evictOne() bool {
	passes := [...]func(e *entry[K, V]) bool{
		// Clears the used bits it passes, as a CLOCK hand does.
		func(e *entry[K, V]) bool { return !e.used.Swap(false) && m.idle(e.v) },
		func(e *entry[K, V]) bool { return m.idle(e.v) },
		func(*entry[K, V]) bool { return true },
	}
	for _, want := range passes {
		evicted := false
		m.m.Range(func(k, v any) bool {
			e := v.(*entry[K, V])
			if !want(e) || !m.retire(e.v) {
				return true
			}
			e.gone.Store(true)
			m.m.Delete(k)
			m.n--
			evicted = true
			return false
		})
		if evicted {
			return true
		}
	}
	return false
}

func (m *Map[K, V]) idle(v V) bool { return m.p.Idle == nil || m.p.Idle(v) }

func (m *Map[K, V]) retire(v V) bool { return m.p.Retire == nil || m.p.Retire(v) }

// Len returns the number of keys.
func (m *Map[K, V]) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n
}

// Range calls f for each key and value until f returns false. It takes no
// lock: entries inserted or evicted meanwhile may or may not be seen.
func (m *Map[K, V]) Range(f func(K, V) bool) {
	m.m.Range(func(k, v any) bool {
		return f(k.(K), v.(*entry[K, V]).v)
	})
}
