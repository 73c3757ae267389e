package collector

import "time"

// gossipTable is what the fleet's other proxies last told us: each one's
// requests in flight per endpoint, and their sums per endpoint. It is
// owned by the goroutine that receives the datagrams.
type gossipTable struct {
	self        uint64 // our own sender id: our datagrams come back through DNS peers
	maxPeers    int    // senders tracked at once; a source rotating ids cannot grow the table
	expireAfter int64  // a sender not heard from for this long is forgotten (ns)
	// window (ms), with a key: a datagram is taken only if its sentAt is
	// within window of our clock, and a forgotten sender's rounds are
	// remembered (gone) for as long as its datagrams could still pass that
	// check, so none of them can be played back. 0 without a key, where
	// anything can be forged and nothing is gained.
	window int64

	peers   map[uint64]*gossipPeer
	gone    map[uint64]gossipGone // forgotten senders, with a window
	sums    map[uint64]int64      // endpoint → the sum of every peer's count
	changed map[uint64]struct{}   // endpoints whose sum changed since takeChanged
}

type gossipPeer struct {
	round  uint64
	seen   int64
	counts map[uint64]uint32
}

// gossipGone is a forgotten sender's last round, kept until (ns).
type gossipGone struct {
	round uint64
	until int64
}

func newGossipTable(self uint64, maxPeers int, expireAfter, window int64) *gossipTable {
	return &gossipTable{
		self: self, maxPeers: maxPeers, expireAfter: expireAfter, window: window,
		peers:   map[uint64]*gossipPeer{},
		gone:    map[uint64]gossipGone{},
		sums:    map[uint64]int64{},
		changed: map[uint64]struct{}{},
	}
}

// apply folds one datagram in at now (ns, the collector's clock; wall is
// Unix ms); known says whether an endpoint is one we scrape (others are
// not kept: a peer cannot grow the table with endpoints we will never
// route to). It reports whether the datagram was taken, and if not why:
// ours (refusedOwn), sent outside the window (with one), from a round
// older than the sender's last (even a forgotten sender's, with a
// window), or from a new sender past maxPeers.
func (t *gossipTable) apply(m *gossipMessage, now, wall int64, known func(uint64) bool) (GossipRefusal, bool) {
	if m.sender == t.self {
		return refusedOwn, false
	}
	if t.window > 0 && (m.sentAt < wall-t.window || m.sentAt > wall+t.window) {
		return RefusedTime, false // played back, or the clocks are further apart than the window
	}
	p := t.peers[m.sender]
	if p == nil {
		if g, ok := t.gone[m.sender]; ok && m.round <= g.round {
			return RefusedRound, false // a forgotten sender's datagram played back
		}
		if len(t.peers) >= t.maxPeers {
			return RefusedSenders, false
		}
		delete(t.gone, m.sender)
		p = &gossipPeer{round: m.round, counts: map[uint64]uint32{}}
		t.peers[m.sender] = p
	}
	if m.round < p.round {
		return RefusedRound, false // reordered: a newer round already told us
	}
	p.round, p.seen = m.round, now
	for _, e := range m.entries {
		if !known(e.endpoint) {
			continue
		}
		old := p.counts[e.endpoint]
		if old == e.inFlight {
			continue
		}
		if e.inFlight == 0 {
			delete(p.counts, e.endpoint)
		} else {
			p.counts[e.endpoint] = e.inFlight
		}
		t.add(e.endpoint, int64(e.inFlight)-int64(old))
	}
	return 0, true
}

// expire forgets the senders not heard from since now-expireAfter: a
// proxy that stopped or lost its way; the next scrape counts its requests.
func (t *gossipTable) expire(now int64) {
	for id, g := range t.gone {
		if now > g.until {
			delete(t.gone, id)
		}
	}
	for id, p := range t.peers {
		if now-p.seen <= t.expireAfter {
			continue
		}
		for ep, n := range p.counts {
			t.add(ep, -int64(n))
		}
		delete(t.peers, id)
		if t.window > 0 && len(t.gone) < gossipMaxSenders {
			// Its last datagram was sent at most window before we took
			// it, and is refused once older than window: 2 windows from
			// now it cannot pass.
			t.gone[id] = gossipGone{round: p.round, until: now + 2*t.window*int64(time.Millisecond)}
		}
	}
}

// forget drops an endpoint we no longer scrape from every peer.
func (t *gossipTable) forget(ep uint64) {
	for _, p := range t.peers {
		delete(p.counts, ep)
	}
	delete(t.sums, ep)
	delete(t.changed, ep)
}

func (t *gossipTable) add(ep uint64, d int64) {
	if d == 0 {
		return
	}
	if s := t.sums[ep] + d; s != 0 {
		t.sums[ep] = s
	} else {
		delete(t.sums, ep)
	}
	t.changed[ep] = struct{}{}
}

// sum is the peers' requests in flight to ep.
func (t *gossipTable) sum(ep uint64) int64 { return t.sums[ep] }

// takeChanged calls f with each endpoint whose sum changed since the last
// call, and its sum.
func (t *gossipTable) takeChanged(f func(ep uint64, sum int64)) {
	for ep := range t.changed {
		f(ep, t.sums[ep])
	}
	clear(t.changed)
}

// markAllChanged makes the next takeChanged report every sum.
func (t *gossipTable) markAllChanged() {
	for ep := range t.sums {
		t.changed[ep] = struct{}{}
	}
}

// peerCount is the senders currently tracked.
func (t *gossipTable) peerCount() int { return len(t.peers) }
