package prefix

import "sync/atomic"

// seenKeys remembers the rendezvous keys of recent requests, one per slot
// (direct-mapped, lock-free; a collision forgets the older key). A key
// this proxy has not seen before is a prompt start that is unique so far
// (a one-off conversation, a new tenant): affinity for it would only pull
// one request onto a random server, so it goes by load alone, and so do
// its followers' placements stay agreed: every proxy prefers the same
// server from the second request on.
type seenKeys struct {
	slots [seenSlots]atomic.Uint64
}

// seenSlots bounds what is remembered: 32 KiB per pool.
const seenSlots = 4096

// seenBefore reports whether key was seen, and remembers it when remember
// is set (a dry pick only looks).
func (s *seenKeys) seenBefore(key uint64, remember bool) bool {
	key |= 1 // 0 marks an empty slot
	slot := &s.slots[(key>>1)&(seenSlots-1)]
	if slot.Load() == key {
		return true
	}
	if remember {
		slot.Store(key)
	}
	return false
}
