package registry

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

type val struct {
	key     int
	busy    bool
	retired bool
}

func newMap(max int) *Map[int, *val] {
	return New(Policy[int, *val]{
		Max:  max,
		New:  func(k int) *val { return &val{key: k} },
		Idle: func(v *val) bool { return !v.busy },
		Retire: func(v *val) bool {
			if v.busy {
				return false
			}
			v.retired = true
			return true
		},
	})
}

func keys(m *Map[int, *val]) map[int]bool {
	got := map[int]bool{}
	m.Range(func(k int, v *val) bool {
		if k != v.key {
			panic("key mismatch")
		}
		got[k] = true
		return true
	})
	return got
}

func TestGetReturnsSameValue(t *testing.T) {
	m := newMap(4)
	a := m.Get(1)
	if b := m.Get(1); a != b {
		t.Fatal("second Get made a new value")
	}
	if m.Len() != 1 {
		t.Fatalf("Len = %d, want 1", m.Len())
	}
}

func TestDefaultMax(t *testing.T) {
	m := New(Policy[int, int]{New: func(k int) int { return k }})
	for i := range 3 * DefaultMax {
		m.Get(i)
	}
	if m.Len() != DefaultMax {
		t.Fatalf("Len = %d, want %d", m.Len(), DefaultMax)
	}
}

func TestBoundedUnderChurn(t *testing.T) {
	m := newMap(16)
	for i := range 10000 {
		m.Get(i)
		if n := m.Len(); n > 16 {
			t.Fatalf("after %d keys Len = %d, want <= 16", i+1, n)
		}
	}
	if n := len(keys(m)); n != 16 {
		t.Fatalf("Range saw %d keys, want 16", n)
	}
}

func TestHotKeySurvivesChurn(t *testing.T) {
	m := newMap(8)
	hot := m.Get(-1)
	for i := range 1000 {
		m.Get(-1) // looked up between every insert: always has its second chance
		m.Get(i)
	}
	if m.Get(-1) != hot {
		t.Fatal("a key used all the time was evicted by one-off keys")
	}
}

func TestIdleEvictedFirst(t *testing.T) {
	m := newMap(4)
	for i := range 4 {
		v := m.Get(i)
		v.busy = i != 2
	}
	m.Get(100)
	got := keys(m)
	if got[2] || !got[0] || !got[1] || !got[3] || !got[100] {
		t.Fatalf("keys = %v, want 2 evicted (the only idle one)", got)
	}
}

func TestNeverRetiresBusyValue(t *testing.T) {
	m := newMap(2)
	a, b := m.Get(1), m.Get(2)
	a.busy, b.busy = true, true
	m.Get(3) // nothing may go: the map grows past Max rather than drop a busy value
	if a.retired || b.retired {
		t.Fatal("a busy value was retired")
	}
	if n := m.Len(); n != 3 {
		t.Fatalf("Len = %d, want 3", n)
	}
	a.busy, b.busy = false, false
	m.Get(4) // shrinks back to Max once values are free
	if n := m.Len(); n != 2 {
		t.Fatalf("Len = %d, want back at 2", n)
	}
}

func TestBusyFallbackWhenNoIdle(t *testing.T) {
	// With Idle false for all but Retire allowed (breakers that are open),
	// the map still stays bounded.
	m := New(Policy[int, int]{
		Max:  3,
		New:  func(k int) int { return k },
		Idle: func(int) bool { return false },
	})
	for i := range 100 {
		m.Get(i)
	}
	if n := m.Len(); n != 3 {
		t.Fatalf("Len = %d, want 3", n)
	}
}

func TestConcurrentGet(t *testing.T) {
	var made atomic.Int32
	m := New(Policy[string, *int]{
		Max: 64,
		New: func(string) *int { made.Add(1); return new(int) },
	})
	var wg sync.WaitGroup
	vals := make([]*int, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				m.Get(fmt.Sprint(i % 50)) // with "shared", fewer keys than Max: nothing is evicted
			}
			vals[g] = m.Get("shared")
		})
	}
	wg.Wait()
	for _, v := range vals[1:] {
		if v != vals[0] {
			t.Fatal("goroutines got different values for one key")
		}
	}
	if n := m.Len(); n > 64 {
		t.Fatalf("Len = %d, want <= 64", n)
	}
}

func TestNewPanicsWithoutNew(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	New(Policy[int, int]{})
}

type key struct{ scheme, host, port string }

func BenchmarkGetHit(b *testing.B) {
	m := New(Policy[key, *int]{New: func(key) *int { return new(int) }})
	host := "api.example.com"
	m.Get(key{"https", host, "443"})
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Get(key{"https", host, "443"})
		}
	})
}

// The one-entry cache in front of the map must never hand out a value the
// map has evicted.
func TestLastLookupCacheForgetsEvicted(t *testing.T) {
	m := newMap(1)
	a := m.Get(1)
	m.Get(2) // evicts 1
	// Put the evicted entry back in the cache, as a lookup racing the
	// eviction could.
	stale := &entry[int, *val]{k: 1, v: a}
	stale.gone.Store(true)
	m.last.Store(stale)
	if !a.retired {
		t.Fatal("key 1 was not evicted")
	}
	if again := m.Get(1); again == a || again.retired {
		t.Error("Get returned the evicted value from its cache")
	}
}

// hintedKey makes the key for hints as a caller of GetHinted would, and
// counts how often it is asked to.
type hintedKey struct{ made int }

func (h *hintedKey) mk(hint1, hint2 string) func() int {
	return func() int {
		h.made++
		var k int
		fmt.Sscan(hint1+hint2, &k)
		return k
	}
}

func TestGetHintedSkipsKeyForSameHints(t *testing.T) {
	m := newMap(4)
	var h hintedKey
	a := m.GetHinted("1", "0", h.mk("1", "0"))
	for range 3 {
		if b := m.GetHinted("1", "0", h.mk("1", "0")); b != a {
			t.Fatal("same hints gave another value")
		}
	}
	if h.made != 1 {
		t.Errorf("key made %d times for four lookups with the same hints, want 1", h.made)
	}
	// Other hints naming the same key find the same value; other keys
	// other values.
	if b := m.GetHinted("10", "", h.mk("10", "")); b != a {
		t.Error("other hints for key 10 gave another value")
	}
	if c := m.GetHinted("2", "0", h.mk("2", "0")); c == a || c.key != 20 {
		t.Errorf("hints for key 20 gave key %d's value", c.key)
	}
	if got := m.Get(10); got != a {
		t.Error("Get(10) disagrees with GetHinted")
	}
}

// An entry Get made carries no hints, so a hinted lookup never matches it
// by hints, not even empty ones.
func TestGetHintedIgnoresUnhintedEntries(t *testing.T) {
	m := newMap(4)
	a := m.Get(7)
	var h hintedKey
	if b := m.GetHinted("", "", h.mk("", "")); b == a || b.key != 0 {
		t.Errorf("empty hints for key 0 gave key %d's value", b.key)
	}
	if h.made != 1 {
		t.Errorf("key made %d times, want 1", h.made)
	}
}

func TestGetHintedForgetsEvicted(t *testing.T) {
	m := newMap(1)
	var h hintedKey
	a := m.GetHinted("1", "", h.mk("1", ""))
	m.Get(2) // evicts 1
	if !a.retired {
		t.Fatal("key 1 was not evicted")
	}
	// Put the evicted entry back in the cache, as a lookup racing the
	// eviction could.
	stale := &entry[int, *val]{k: 1, v: a, hinted: true, hint1: "1"}
	stale.gone.Store(true)
	m.last.Store(stale)
	if again := m.GetHinted("1", "", h.mk("1", "")); again == a || again.retired {
		t.Error("GetHinted returned the evicted value from its cache")
	}
}
