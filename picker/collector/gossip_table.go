package collector

// gossipTable is what the fleet's other proxies last told us: each one's
// requests in flight per endpoint, and their sums per endpoint. It is
// owned by the goroutine that receives the datagrams.
type gossipTable struct {
	self        uint64 // our own sender id: our datagrams come back through DNS peers
	maxPeers    int    // senders tracked at once; a source rotating ids cannot grow the table
	expireAfter int64  // a sender not heard from for this long is forgotten (ns)

	peers   map[uint64]*gossipPeer
	sums    map[uint64]int64    // endpoint → the sum of every peer's count
	changed map[uint64]struct{} // endpoints whose sum changed since takeChanged
}

type gossipPeer struct {
	round  uint64
	seen   int64
	counts map[uint64]uint32
}

func newGossipTable(self uint64, maxPeers int, expireAfter int64) *gossipTable {
	return &gossipTable{
		self: self, maxPeers: maxPeers, expireAfter: expireAfter,
		peers:   map[uint64]*gossipPeer{},
		sums:    map[uint64]int64{},
		changed: map[uint64]struct{}{},
	}
}

// apply folds one datagram in at now; known says whether an endpoint is
// one we scrape (others are not kept: a peer cannot grow the table with
// endpoints we will never route to). It reports whether the datagram was
// taken: not ours, not from a round older than the sender's last, and not
// from a new sender past maxPeers.
func (t *gossipTable) apply(m *gossipMessage, now int64, known func(uint64) bool) bool {
	if m.sender == t.self {
		return false
	}
	p := t.peers[m.sender]
	if p == nil {
		if len(t.peers) >= t.maxPeers {
			return false
		}
		p = &gossipPeer{round: m.round, counts: map[uint64]uint32{}}
		t.peers[m.sender] = p
	}
	if m.round < p.round {
		return false // reordered: a newer round already told us
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
	return true
}

// expire forgets the senders not heard from since now-expireAfter: a
// proxy that stopped or lost its way; the next scrape counts its requests.
func (t *gossipTable) expire(now int64) {
	for id, p := range t.peers {
		if now-p.seen <= t.expireAfter {
			continue
		}
		for ep, n := range p.counts {
			t.add(ep, -int64(n))
		}
		delete(t.peers, id)
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
