package framework

import "math"

// Cycle is the state of one scheduling cycle: the request, the clock, a
// random seed and scratch space that plugins reuse. Cycles are pooled by the
// caller: a plugin must not keep references into one after its call returns.
type Cycle struct {
	Request *Request
	Now     int64  // collector.Now() at the start of the cycle
	Seed    uint64 // random per cycle; see Rand and TieBreak
	// Others is set when the candidates may carry Endpoint.Others (the
	// pool estimates other proxies' requests), so a plugin that must leave
	// them out knows without a pass over the candidates.
	Others bool
	// Dry is set for a pick that only looks (the first of a probed pick):
	// plugins must leave no trace of it (no PickObserver call, no state
	// they learn from requests, such as the prefix scorer's seen keys).
	Dry bool

	// Hashes holds the prompt's prefix block hashes once HashesReady is set.
	// They are computed at most once per cycle by whichever plugin needs
	// them first (the prefix scorer, then its recorder).
	Hashes      []uint64
	HashesReady bool

	// Floats is scratch for a picker (one per cycle, so one picker may use it).
	Floats []float64
	// Scratch is scratch for a scorer during its call (scorers run one
	// after another, so each may use it in turn).
	Scratch []float64

	qb   queueBounds
	ownQ []float64 // OwnQueues' buffer
	ad   adapterRuns
	ties []uint64 // TopK's tie keys

	slots Slots
	rng   uint64
}

// Reset prepares c for a new request, keeping its buffers.
func (c *Cycle) Reset(req *Request, now int64, seed uint64) {
	c.Request = req
	c.Now = now
	c.Seed = seed
	c.rng = seed
	c.Others = false
	c.Dry = false
	c.Hashes = c.Hashes[:0]
	c.HashesReady = false
	c.qb = queueBounds{queues: c.qb.queues}
	c.ad.first = nil
}

// queueBounds caches each endpoint's Queue() of one candidate list and
// their shortest and longest, the list identified by its first element and
// length: filters change the length of what they pass on, scorers do not
// change eps.
type queueBounds struct {
	first  *Endpoint
	n      int
	lo, hi float64
	queues []float64 // queues[i] = eps[i].Queue(); a buffer reused across cycles
}

// QueueBounds returns the shortest and longest Queue() among eps (0, 0 for
// none). The saturation filter, the queue scorer and the prefix scorer all
// need them; they are computed at most once per candidate list (see Queues).
func (c *Cycle) QueueBounds(eps []Endpoint) (lo, hi float64) {
	if len(eps) == 0 {
		return 0, 0
	}
	c.Queues(eps)
	return c.qb.lo, c.qb.hi
}

// Queues returns eps[i].Queue() for each i, computed at most once per
// candidate list (usually by the filter, SetQueues). The list is known by
// its first element and length until the next Reset, so whoever changes an
// endpoint's load fields within a cycle must Reset it (the pipeline never
// does: scorers do not write eps). The slice is the cycle's: read it
// during the call only.
func (c *Cycle) Queues(eps []Endpoint) []float64 {
	if len(eps) == 0 {
		return nil
	}
	if c.qb.first == &eps[0] && c.qb.n == len(eps) {
		return c.qb.queues[:len(eps)]
	}
	qs := c.QueueScratch(len(eps))
	lo := eps[0].Queue()
	hi := lo
	qs[0] = lo
	for i := 1; i < len(eps); i++ {
		q := eps[i].Queue()
		qs[i] = q
		if q < lo {
			lo = q
		} else if q > hi {
			hi = q
		}
	}
	c.SetQueues(eps, lo, hi)
	return qs
}

// QueueScratch returns the cycle's queue buffer resized to n, for a filter
// to write the queues of the endpoints it keeps at their new positions
// before SetQueues.
func (c *Cycle) QueueScratch(n int) []float64 {
	if cap(c.qb.queues) < n {
		c.qb.queues = make([]float64, n)
	}
	c.qb.queues = c.qb.queues[:n]
	return c.qb.queues
}

// SetQueues records, for a filter that computed them while filtering, that
// QueueScratch's first len(eps) entries are the queues of eps and lo, hi
// their bounds. eps must not be empty.
func (c *Cycle) SetQueues(eps []Endpoint, lo, hi float64) {
	c.qb.first, c.qb.n, c.qb.lo, c.qb.hi = &eps[0], len(eps), lo, hi
}

// OwnQueues returns eps[i].OwnQueue() for each i, and the shortest, in a
// buffer of the cycle's (read it during the call only). Not cached: only
// the prefix scorer's affinity limit asks, once per cycle.
func (c *Cycle) OwnQueues(eps []Endpoint) (qs []float64, shortest float64) {
	if cap(c.ownQ) < len(eps) {
		c.ownQ = make([]float64, len(eps))
	}
	qs = c.ownQ[:len(eps)]
	shortest = math.Inf(1)
	for i := range eps {
		qs[i] = eps[i].OwnQueue()
		shortest = min(shortest, qs[i])
	}
	return qs, shortest
}

// ScratchFloats returns Scratch resized to n (contents undefined).
func (c *Cycle) ScratchFloats(n int) []float64 {
	if cap(c.Scratch) < n {
		c.Scratch = make([]float64, n)
	}
	return c.Scratch[:n]
}

// Slots maps endpoint IDs to positions in eps for the rest of the cycle (a
// later call replaces the mapping), reusing the cycle's table.
func (c *Cycle) Slots(eps []Endpoint) *Slots {
	c.slots.set(eps)
	return &c.slots
}

// Slots maps endpoint IDs to positions in one cycle's endpoint list.
//
// Each entry is stamped with the generation that wrote it, and each set
// starts a new generation, so entries of earlier cycles read as absent
// without the table being cleared: a set writes one entry per endpoint
// rather than one per ID ever used.
type Slots struct {
	tab []slotEntry
	gen uint32 // 0 is never current: zeroed entries are absent
}

type slotEntry struct {
	gen uint32
	pos int32
}

func (s *Slots) set(eps []Endpoint) {
	s.gen++
	if s.gen == 0 { // wrapped: stamps of 2^32 sets ago would read as current
		clear(s.tab)
		s.gen = 1
	}
	for i := range eps {
		id := eps[i].ID
		if int(id) >= len(s.tab) {
			s.grow(int(id) + 1)
		}
		s.tab[id] = slotEntry{gen: s.gen, pos: int32(i)}
	}
}

func (s *Slots) grow(n int) {
	tab := make([]slotEntry, n+n/4) // zero stamps: absent
	copy(tab, s.tab)
	s.tab = tab
}

// Of returns the position of endpoint id in the list, or -1 when it is not
// in it.
func (s *Slots) Of(id int32) int {
	if uint(id) < uint(len(s.tab)) && s.tab[id].gen == s.gen {
		return int(s.tab[id].pos)
	}
	return -1
}

// Rand returns the next number of the cycle's random sequence (SplitMix64),
// cheap and lock-free since every cycle has its own.
func (c *Cycle) Rand() uint64 {
	c.rng += 0x9e3779b97f4a7c15
	return Mix(c.rng)
}

// Float64 is a random number in [0,1) from Rand.
func (c *Cycle) Float64() float64 { return float64(c.Rand()>>11) / (1 << 53) }

// TieBreak orders endpoints with equal scores: random per cycle, stable
// within it.
func (c *Cycle) TieBreak(ep *Endpoint) uint64 { return Mix(c.Seed ^ ep.Key) }

// Mix is SplitMix64's finalizer: a cheap bijective 64-bit mixer.
func Mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
