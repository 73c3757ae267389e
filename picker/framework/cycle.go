package framework

// Cycle is the state of one scheduling cycle: the request, the clock, a
// random seed and scratch space that plugins reuse. Cycles are pooled by the
// caller: a plugin must not keep references into one after its call returns.
type Cycle struct {
	Request *Request
	Now     int64  // collector.Now() at the start of the cycle
	Seed    uint64 // random per cycle; see Rand and TieBreak

	// Hashes holds the prompt's prefix block hashes once HashesReady is set.
	// They are computed at most once per cycle by whichever plugin needs
	// them first (the prefix scorer, then its recorder).
	Hashes      []uint64
	HashesReady bool

	// Floats is scratch for a picker (one per cycle, so one picker may use it).
	Floats []float64

	slots []int32
	rng   uint64
}

// Reset prepares c for a new request, keeping its buffers.
func (c *Cycle) Reset(req *Request, now int64, seed uint64) {
	c.Request = req
	c.Now = now
	c.Seed = seed
	c.rng = seed
	c.Hashes = c.Hashes[:0]
	c.HashesReady = false
}

// Slots returns a table from endpoint ID to position in eps (-1 for IDs not
// in eps), reusing the cycle's buffer.
func (c *Cycle) Slots(eps []Endpoint) []int32 {
	n := int32(0)
	for i := range eps {
		n = max(n, eps[i].ID+1)
	}
	if cap(c.slots) < int(n) {
		c.slots = make([]int32, n, n+n/4)
	}
	s := c.slots[:n]
	for i := range s {
		s[i] = -1
	}
	for i := range eps {
		s[eps[i].ID] = int32(i)
	}
	return s
}

// Rand returns the next number of the cycle's random sequence (SplitMix64),
// cheap and lock-free since every cycle has its own.
func (c *Cycle) Rand() uint64 {
	c.rng += 0x9e3779b97f4a7c15
	return Mix(c.rng)
}

// TieBreak orders endpoints with equal scores: random per cycle, stable
// within it.
func (c *Cycle) TieBreak(ep *Endpoint) uint64 { return Mix(c.Seed ^ ep.Key) }

// Mix is SplitMix64's finalizer: a cheap bijective 64-bit mixer.
func Mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
