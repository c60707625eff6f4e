// Package pad keeps fields that every call writes off the cache lines of
// fields that every call only reads. Without it, one core's counter update
// evicts the line another core is reading a pointer from, and a host's
// shared counters cost a cache miss per field per call (measured: the
// adaptive limiter cost 300 ns a call at 32 callers on 2 cores before it
// was laid out this way).
package pad

// Line is as long as two 64-byte cache lines: adjacent-line prefetch on
// x86 moves lines in pairs, and arm64 servers use 128-byte lines.
type Line [128]byte
