package collector

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
)

// GossipStats are one gossip socket's counters.
type GossipStats struct {
	Listen   string
	Peers    int    // senders heard from within the expiry
	Sent     uint64 // datagrams sent
	Received uint64 // datagrams taken
	Refused  uint64 // datagrams dropped, for any reason (RefusedBy)
	// RefusedBy is Refused by reason: unknown source, malformed, bad MAC,
	// outside the replay window, stale round, too many senders, a panic.
	RefusedBy [NumGossipRefusals]uint64
	Panics    uint64 // panics recovered in the gossip's goroutines (a bug; the datagram or round is dropped)
}

// gossipNode is one UDP socket of the fleet's gossip, shared by the pools
// that name its listen address. Its sender goroutine tells the peers this
// process's requests in flight per endpoint every interval; its receiver
// goroutine keeps the peers' counts (gossipTable) and writes their sums
// into the targets (Target.SetPeers).
type gossipNode struct {
	c        *Collector
	conn     *net.UDPConn
	listen   string
	id       uint64
	key      []byte
	interval time.Duration
	window   time.Duration // replay window, with a key
	refs     int           // guarded by c.mu

	peers        atomic.Pointer[gossipPeers] // resolved; empty until the sender's first resolve
	cfgPeers     atomic.Pointer[[]string]    // as configured
	peersChanged atomic.Bool                 // cfgPeers changed: resolve at the next round

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	sent, received, panics atomic.Uint64
	refused                [NumGossipRefusals]atomic.Uint64
	heard                  atomic.Int64
	// What TakeUnreported handed out so far, whoever asked.
	reportedReceived, reportedPanics atomic.Uint64
	reportedRefused                  [NumGossipRefusals]atomic.Uint64

	// Owned by the receiver goroutine (and by Leave once it has ended).
	table *gossipTable
	gen   uint64 // the collector's gossipGen at the last publish
}

// gossipPeers are the peers' resolved addresses: where to send, and the
// sources datagrams are taken from.
type gossipPeers struct {
	to      []netip.AddrPort
	sources map[netip.Addr]bool
	// senders is how many sender ids the receiver tracks at once: a few
	// per peer address (a restarted process has a new id; during an Envoy
	// hot restart two processes send from one address), so a source that
	// cycles ids, or forges a peer's address without a key, cannot grow
	// the table past what the fleet needs.
	senders int
}

// gossipMaxSenders bounds senders whatever the peer list.
const gossipMaxSenders = 1024

func sendersFor(addresses int) int { return min(gossipMaxSenders, 4*addresses+4) }

// GossipHandle is a pool's hold on a gossip socket.
type GossipHandle struct{ n *gossipNode }

// JoinGossip starts, or joins, the gossip socket g.Listen of c. A pool
// that joins a running socket with other peers replaces its peer list
// (the newer config wins); a different key or interval on the same
// socket is refused. g must have been validated.
func (c *Collector) JoinGossip(g Gossip) (*GossipHandle, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.gossips[g.Listen]; n != nil {
		if string(n.key) != string(g.key()) || n.interval != g.interval() || n.window != g.replayWindow() {
			return nil, fmt.Errorf("scrape.fleet.gossip: another pool gossips on %s with a different key, interval or replayWindow", g.Listen)
		}
		n.refs++
		n.setPeers(g.Peers)
		return &GossipHandle{n}, nil
	}
	conn, err := listenGossip(g.Listen)
	if err != nil {
		return nil, fmt.Errorf("scrape.fleet.gossip.listen: %w", err)
	}
	n := &gossipNode{c: c, conn: conn, listen: g.Listen, id: rand.Uint64() | 1, key: g.key(), interval: g.interval(), window: g.replayWindow(), refs: 1}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.peers.Store(&gossipPeers{sources: map[netip.Addr]bool{}, senders: sendersFor(0)})
	n.setPeers(g.Peers)
	if c.gossips == nil {
		c.gossips = map[string]*gossipNode{}
	}
	c.gossips[g.Listen] = n
	n.table = newGossipTable(n.id, gossipMaxSenders, int64(n.expireAfter()), n.window.Milliseconds())
	n.wg.Add(2)
	go n.sendLoop()
	go n.receiveLoop()
	return &GossipHandle{n}, nil
}

// Leave drops the pool's hold; the last one closes the socket.
func (h *GossipHandle) Leave() {
	n := h.n
	c := n.c
	c.mu.Lock()
	n.refs--
	last := n.refs == 0
	if last {
		delete(c.gossips, n.listen)
	}
	c.mu.Unlock()
	if last {
		n.cancel()
		n.conn.Close()
		n.wg.Wait()
		// What this socket's peers told us no longer holds: the scrape
		// counts it. Only the endpoints it wrote; another socket that
		// wrote some of them too writes them again (gossipGen).
		c.mu.Lock()
		for ep := range n.table.sums {
			for _, t := range c.byHash[ep] {
				t.SetPeers(0)
			}
		}
		c.gossipGen++
		c.mu.Unlock()
	}
}

// Stats returns the socket's counters.
func (h *GossipHandle) Stats() GossipStats {
	n := h.n
	s := GossipStats{Listen: n.listen, Peers: int(n.heard.Load()), Sent: n.sent.Load(), Received: n.received.Load(), Panics: n.panics.Load()}
	for r := range s.RefusedBy {
		s.RefusedBy[r] = n.refused[r].Load()
		s.Refused += s.RefusedBy[r]
	}
	return s
}

// GossipCounts are a socket's counters counted since they were last taken.
type GossipCounts struct {
	Received, Panics uint64
	Refused          [NumGossipRefusals]uint64 // by reason
}

// TakeUnreported returns what the socket counted since the last call by
// any holder of it, so each datagram and panic reaches Envoy's counters
// once: pools that share the socket, and the filter configs of a config
// reload (the new one joins the socket before the old one leaves), would
// each report the socket's totals otherwise.
func (h *GossipHandle) TakeUnreported() GossipCounts {
	n := h.n
	c := GossipCounts{
		Received: takeSince(&n.received, &n.reportedReceived),
		Panics:   takeSince(&n.panics, &n.reportedPanics),
	}
	for r := range c.Refused {
		c.Refused[r] = takeSince(&n.refused[r], &n.reportedRefused[r])
	}
	return c
}

// takeSince moves reported up to counter and returns by how much; a
// concurrent taker gets the rest, never the same counts (counter only grows).
func takeSince(counter, reported *atomic.Uint64) uint64 {
	for {
		prev, cur := reported.Load(), counter.Load()
		if cur <= prev {
			return 0
		}
		if reported.CompareAndSwap(prev, cur) {
			return cur - prev
		}
	}
}

// setPeers installs the configured peers; the sender resolves them before
// its next round, off the caller's thread (a config load must not wait on
// DNS, nor hold the collector's lock while it does).
func (n *gossipNode) setPeers(peers []string) {
	p := slices.Clone(peers)
	n.cfgPeers.Store(&p)
	if slices.ContainsFunc(p, func(hp string) bool {
		host, _, _ := net.SplitHostPort(hp)
		_, err := netip.ParseAddr(host)
		return err != nil
	}) {
		n.peersChanged.Store(true) // names: the sender resolves them
		return
	}
	n.resolve() // addresses only: no lookup, taken from the first datagram on
}

// resolve turns the configured peers into addresses. A name that does not
// resolve keeps its previous addresses: a DNS hiccup must not cut the
// fleet apart.
func (n *gossipNode) resolve() {
	old := n.peers.Load()
	next := &gossipPeers{sources: map[netip.Addr]bool{}}
	ctx, cancel := context.WithTimeout(n.ctx, 2*time.Second)
	defer cancel()
	for _, hp := range *n.cfgPeers.Load() {
		host, portStr, err := net.SplitHostPort(hp)
		if err != nil {
			continue
		}
		port, err := net.LookupPort("udp", portStr)
		if err != nil {
			continue
		}
		var ips []netip.Addr
		if ip, err := netip.ParseAddr(host); err == nil {
			ips = []netip.Addr{ip}
		} else if ips, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host); err != nil && old != nil {
			for _, ap := range old.to {
				if ap.Port() == uint16(port) {
					ips = append(ips, ap.Addr()) // keep what we had
				}
			}
		}
		for _, ip := range ips {
			ip = ip.Unmap()
			if ap := netip.AddrPortFrom(ip, uint16(port)); !slices.Contains(next.to, ap) {
				next.to = append(next.to, ap)
			}
			next.sources[ip] = true
		}
	}
	next.senders = sendersFor(len(next.to))
	n.peers.Store(next)
}

// sendLoop sends this process's requests in flight per endpoint to every
// peer, every interval, and re-resolves the peers now and then.
func (n *gossipNode) sendLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(n.interval)
	defer tick.Stop()
	st := gossipSender{resolved: time.Now()}
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		}
		n.sendRoundSafely(&st)
	}
}

// gossipSender is the sender goroutine's state between rounds.
type gossipSender struct {
	entries             []gossipEntryOf
	buf                 []byte
	round               uint64
	lastRound, resolved time.Time
}

// sendRoundSafely is sendRound with a panic counted (Panics) and the round
// dropped: this goroutine runs inside Envoy.
func (n *gossipNode) sendRoundSafely(st *gossipSender) {
	defer func() {
		if r := recover(); r != nil {
			n.panics.Add(1)
		}
	}()
	n.sendRound(st)
}

// sendRound re-resolves the peers when due and sends them our counts.
func (n *gossipNode) sendRound(st *gossipSender) {
	if n.peersChanged.Swap(false) || time.Since(st.resolved) >= gossipResolveEvery {
		n.resolve()
		st.resolved = time.Now()
	}
	st.entries = n.c.inFlightByEndpoint(st.entries[:0])
	peers := n.peers.Load()
	if len(st.entries) == 0 || len(peers.to) == 0 {
		return
	}
	// A large fleet of large pools stretches the rounds instead of
	// flooding: at most gossipMaxDatagrams a second out (and so, from
	// every peer doing the same, about as many in).
	datagrams := (len(st.entries) + gossipMaxEntries - 1) / gossipMaxEntries * len(peers.to)
	if gap := time.Duration(float64(datagrams) / gossipMaxDatagrams * float64(time.Second)); time.Since(st.lastRound) < gap {
		return
	}
	st.lastRound = time.Now()
	st.round++
	for start := 0; start < len(st.entries); start += gossipMaxEntries {
		st.buf = appendGossip(st.buf[:0], n.id, st.round, unixMilli(), st.entries[start:min(start+gossipMaxEntries, len(st.entries))], n.key)
		for _, to := range peers.to {
			if _, err := n.conn.WriteToUDPAddrPort(st.buf, to); err == nil {
				n.sent.Add(1)
			}
		}
	}
}

// receiveLoop takes the peers' datagrams into the table and the table's
// sums into the targets, and forgets peers that went quiet.
func (n *gossipNode) receiveLoop() {
	defer n.wg.Done()
	expireAfter := n.expireAfter()
	table := n.table
	buf := make([]byte, 64<<10)
	var msg gossipMessage
	lastExpire := Now()
	for {
		n.conn.SetReadDeadline(time.Now().Add(expireAfter / 2))
		size, from, err := n.conn.ReadFromUDPAddrPort(buf)
		if n.ctx.Err() != nil {
			return
		}
		now := Now()
		if err == nil {
			n.takeSafely(table, buf[:size], from, now, &msg)
		}
		if now-lastExpire >= int64(expireAfter/2) {
			table.expire(now)
			n.publish(table)
			lastExpire = now
		}
	}
}

// expireAfter is how long a quiet peer is remembered.
func (n *gossipNode) expireAfter() time.Duration { return max(20*n.interval, 250*time.Millisecond) }

// gossipReceiveHook, when set (tests), sees every datagram before take.
var gossipReceiveHook atomic.Pointer[func([]byte)]

// SetGossipReceiveHook makes f see every datagram a gossip socket of the
// process receives, before it is checked: for tests and the test build of
// the library (which panics from it), never for the shipped one. Set it
// nil removes it.
func SetGossipReceiveHook(f func([]byte)) {
	if f == nil {
		gossipReceiveHook.Store(nil)
		return
	}
	gossipReceiveHook.Store(&f)
}

// takeSafely is take with a panic counted (Panics) and the datagram
// refused: this goroutine runs inside Envoy, where an unrecovered panic
// ends the process. The table stays usable: apply's lock is released by
// a defer, and a half-applied datagram is overwritten by the sender's next.
func (n *gossipNode) takeSafely(table *gossipTable, b []byte, from netip.AddrPort, now int64, msg *gossipMessage) {
	defer func() {
		if r := recover(); r != nil {
			n.panics.Add(1)
			n.refused[RefusedPanic].Add(1)
		}
	}()
	if hook := gossipReceiveHook.Load(); hook != nil {
		(*hook)(b)
	}
	n.take(table, b, from, now, msg)
}

func (n *gossipNode) take(table *gossipTable, b []byte, from netip.AddrPort, now int64, msg *gossipMessage) {
	peers := n.peers.Load()
	if !peers.sources[from.Addr().Unmap()] {
		n.refused[RefusedSource].Add(1)
		return
	}
	if err := decodeGossip(b, n.key, msg); err != nil {
		n.refused[refusalOf(err)].Add(1)
		return
	}
	table.maxPeers = peers.senders // senders already tracked past a lowered bound expire
	why, ok := func() (GossipRefusal, bool) {
		n.c.mu.Lock()
		defer n.c.mu.Unlock()
		return table.apply(msg, now, unixMilli(), func(ep uint64) bool { return len(n.c.byHash[ep]) > 0 })
	}()
	if !ok {
		if why != refusedOwn {
			n.refused[why].Add(1)
		}
		return
	}
	n.received.Add(1)
	n.publish(table)
}

// publish writes the changed sums into the targets; all of them when a
// target appeared or another socket left since the last publish.
func (n *gossipNode) publish(table *gossipTable) {
	n.c.mu.Lock()
	defer n.c.mu.Unlock()
	if n.gen != n.c.gossipGen {
		n.gen = n.c.gossipGen
		table.markAllChanged()
	}
	table.takeChanged(func(ep uint64, sum int64) {
		ts := n.c.byHash[ep]
		if len(ts) == 0 {
			table.forget(ep)
			return
		}
		for _, t := range ts {
			t.SetPeers(sum)
		}
	})
	n.heard.Store(int64(table.peerCount()))
}

// inFlightByEndpoint appends this process's requests in flight per
// endpoint (summed over the targets of one address) to dst.
func (c *Collector) inFlightByEndpoint(dst []gossipEntryOf) []gossipEntryOf {
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, ts := range c.byHash {
		var sum int64
		for _, t := range ts {
			sum += t.InFlight()
		}
		dst = append(dst, gossipEntryOf{endpoint: h, inFlight: uint32(min(max(sum, 0), gossipMaxInFlight))})
	}
	return dst
}

func unixMilli() int64 { return time.Now().UnixMilli() }

// endpointHash identifies an endpoint in gossip: the same on every proxy
// that names it the same way.
func endpointHash(addr string) uint64 { return xxhash.Sum64String(addr) }
