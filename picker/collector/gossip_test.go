package collector

import (
	"encoding/hex"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/internal/freeport"
)

// gossipSpec is the scrape spec of the gossip tests' targets (never
// scraped: the collectors are manual).
var gossipSpec = Spec{Path: "/metrics", Interval: time.Second, Concurrency: 1, UnhealthyAfter: 1, MaxBytes: 1 << 20}

// twoProxies are two processes' collectors, each with a target for the
// same endpoint, 10.9.0.1:8000.
func twoProxies() (a, b *Collector, ta, tb *Target) {
	a, b = NewManual(), NewManual()
	return a, b, a.Acquire("10.9.0.1:8000", gossipSpec), b.Acquire("10.9.0.1:8000", gossipSpec)
}

// gossiping makes a and b gossip with each other (each names the other),
// until the test ends.
func gossiping(t *testing.T, a, b *Collector) (ha, hb *GossipHandle) {
	t.Helper()
	pa, pb := freeport.UDP(t), freeport.UDP(t)
	ha, _ = gossipOn(t, a, pa, pb)
	hb, _ = gossipOn(t, b, pb, pa)
	t.Cleanup(func() { ha.Leave(); hb.Leave() })
	return ha, hb
}

func gossipOn(t *testing.T, c *Collector, port int, peers ...int) (*GossipHandle, Gossip) {
	t.Helper()
	g := Gossip{Listen: fmt.Sprintf("127.0.0.1:%d", port), Interval: "2ms"}
	for _, p := range peers {
		g.Peers = append(g.Peers, fmt.Sprintf("127.0.0.1:%d", p))
	}
	require.Empty(t, g.validate("g"))
	h, err := c.JoinGossip(g)
	require.NoError(t, err)
	return h, g
}

func TestGossipTellsPeersOurRequestsInFlight(t *testing.T) {
	spec := gossipSpec
	a, b, ta, tb := twoProxies()
	other := b.Acquire("10.9.0.2:8000", spec)
	pa, pb := freeport.UDP(t), freeport.UDP(t)
	// Each names both, itself included, as a headless Service's name would.
	ha, _ := gossipOn(t, a, pa, pa, pb)
	hb, _ := gossipOn(t, b, pb, pa, pb)
	defer hb.Leave()

	ta.Start()
	ta.Start()
	ta.Start()
	require.Eventually(t, func() bool { return tb.Peers() == 3 }, 2*time.Second, time.Millisecond)
	require.Zero(t, ta.Peers(), "our own datagrams come back and are not counted")
	require.Zero(t, other.Peers(), "another endpoint")
	require.Equal(t, int64(3), tb.Known()-tb.InFlight())

	tb.Start()
	require.Eventually(t, func() bool { return ta.Peers() == 1 }, 2*time.Second, time.Millisecond)
	ta.Finish(false)
	require.Eventually(t, func() bool { return tb.Peers() == 2 }, 2*time.Second, time.Millisecond)
	s := hb.Stats()
	require.Equal(t, 1, s.Peers)
	require.NotZero(t, s.Received)
	require.NotZero(t, s.Sent)

	// A proxy that stops is forgotten: the next scrape counts its requests.
	ha.Leave()
	require.Zero(t, ta.Peers(), "leaving clears what the peers told us")
	require.Eventually(t, func() bool { return tb.Peers() == 0 && hb.Stats().Peers == 0 }, 3*time.Second, 5*time.Millisecond)
}

func TestGossipRefuses(t *testing.T) {
	t.Run("a source that is not a peer", func(t *testing.T) {
		a, b, ta, tb := twoProxies()
		pa, pb := freeport.UDP(t), freeport.UDP(t)
		ha, _ := gossipOn(t, a, pa, pb)
		defer ha.Leave()
		// b takes datagrams only from 127.0.0.2; a sends from 127.0.0.1.
		hb, err := b.JoinGossip(Gossip{Listen: fmt.Sprintf("127.0.0.1:%d", pb), Peers: []string{fmt.Sprintf("127.0.0.2:%d", pa)}, Interval: "2ms"})
		require.NoError(t, err)
		defer hb.Leave()
		ta.Start()
		require.Eventually(t, func() bool { return hb.Stats().Refused > 5 }, 2*time.Second, time.Millisecond)
		require.Zero(t, tb.Peers())
		require.Zero(t, hb.Stats().Received)
		s := hb.Stats()
		require.Equal(t, s.Refused, s.RefusedBy[RefusedSource], "refused for its source: %v", s.RefusedBy)
	})
	t.Run("a datagram under another key", func(t *testing.T) {
		a, b, ta, tb := twoProxies()
		pa, pb := freeport.UDP(t), freeport.UDP(t)
		ga := Gossip{Listen: fmt.Sprintf("127.0.0.1:%d", pa), Peers: []string{fmt.Sprintf("127.0.0.1:%d", pb)}, Interval: "2ms", Key: "00112233445566778899aabbccddeeff"}
		gb := ga
		gb.Listen, gb.Peers, gb.Key = fmt.Sprintf("127.0.0.1:%d", pb), []string{fmt.Sprintf("127.0.0.1:%d", pa)}, "ffeeddccbbaa99887766554433221100"
		ha, err := a.JoinGossip(ga)
		require.NoError(t, err)
		defer ha.Leave()
		hb, err := b.JoinGossip(gb)
		require.NoError(t, err)
		defer hb.Leave()
		ta.Start()
		require.Eventually(t, func() bool { return hb.Stats().Refused > 5 }, 2*time.Second, time.Millisecond)
		require.Zero(t, tb.Peers())
		s := hb.Stats()
		require.Equal(t, s.Refused, s.RefusedBy[RefusedSignature], "refused for its MAC: %v", s.RefusedBy)
	})
	t.Run("the same socket with another key", func(t *testing.T) {
		c := NewManual()
		p := freeport.UDP(t)
		h, g := gossipOn(t, c, p, p)
		defer h.Leave()
		g.Key = "00112233445566778899aabbccddeeff"
		_, err := c.JoinGossip(g)
		require.ErrorContains(t, err, "different key, interval or replayWindow")
		g.Key = ""
		h2, err := c.JoinGossip(g)
		require.NoError(t, err, "the same config joins")
		h2.Leave()
	})
	t.Run("a listen address in use", func(t *testing.T) {
		busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		require.NoError(t, err)
		defer busy.Close()
		_, err = NewManual().JoinGossip(Gossip{Listen: busy.LocalAddr().String(), Peers: []string{"127.0.0.1:1"}})
		require.ErrorContains(t, err, "scrape.fleet.gossip.listen")
	})
}

func TestGossipValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		g     Gossip
		field string
	}{
		{"no listen", Gossip{Peers: []string{"a:1"}}, "g.listen"},
		{"listen without a port", Gossip{Listen: "0.0.0.0", Peers: []string{"a:1"}}, "g.listen"},
		{"listen port 0", Gossip{Listen: "0.0.0.0:0", Peers: []string{"a:1"}}, "g.listen"},
		{"no peers", Gossip{Listen: "0.0.0.0:9"}, "g.peers"},
		{"a peer without a port", Gossip{Listen: "0.0.0.0:9", Peers: []string{"a:1", "b"}}, "g.peers[1]"},
		{"a peer with an empty host", Gossip{Listen: "0.0.0.0:9", Peers: []string{":9"}}, "g.peers[0]"},
		{"interval not a duration", Gossip{Listen: "0.0.0.0:9", Peers: []string{"a:1"}, Interval: "fast"}, "g.interval"},
		{"interval too short", Gossip{Listen: "0.0.0.0:9", Peers: []string{"a:1"}, Interval: "100us"}, "g.interval"},
		{"interval too long", Gossip{Listen: "0.0.0.0:9", Peers: []string{"a:1"}, Interval: "2s"}, "g.interval"},
		{"key not hex", Gossip{Listen: "0.0.0.0:9", Peers: []string{"a:1"}, Key: "secret-secret-secret"}, "g.key"},
		{"key too short", Gossip{Listen: "0.0.0.0:9", Peers: []string{"a:1"}, Key: "00112233"}, "g.key"},
		{"replayWindow without a key", Gossip{Listen: "0.0.0.0:9", Peers: []string{"a:1"}, ReplayWindow: "1s"}, "g.replayWindow"},
		{"replayWindow not a duration", Gossip{Listen: "0.0.0.0:9", Peers: []string{"a:1"}, Key: "00112233445566778899aabbccddeeff", ReplayWindow: "soon"}, "g.replayWindow"},
		{"replayWindow too short", Gossip{Listen: "0.0.0.0:9", Peers: []string{"a:1"}, Key: "00112233445566778899aabbccddeeff", ReplayWindow: "1ms"}, "g.replayWindow"},
		{"replayWindow too long", Gossip{Listen: "0.0.0.0:9", Peers: []string{"a:1"}, Key: "00112233445566778899aabbccddeeff", ReplayWindow: "2m"}, "g.replayWindow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := tc.g.validate("g")
			require.Len(t, errs, 1, "%v", errs)
			require.Equal(t, tc.field, errs[0].Field)
		})
	}
	require.Empty(t, (&Gossip{Listen: "0.0.0.0:9902", Peers: []string{"envoy.ns.svc:9902", "[::1]:9902"}, Interval: "5ms", Key: "00112233445566778899aabbccddeeff"}).validate("g"))
	require.Empty(t, (&Gossip{Listen: "0.0.0.0:9902", Peers: []string{"a:1"}, Key: "00112233445566778899aabbccddeeff", ReplayWindow: "250ms"}).validate("g"))
}

// During an Envoy hot restart the old and the new process both bind the
// gossip port (SO_REUSEPORT); here two collectors stand in for them.
func TestGossipPortIsSharedWithARestartingProcess(t *testing.T) {
	p := freeport.UDP(t)
	g := Gossip{Listen: fmt.Sprintf("127.0.0.1:%d", p), Peers: []string{"127.0.0.1:1"}}
	old, err := NewManual().JoinGossip(g)
	require.NoError(t, err)
	defer old.Leave()
	next, err := NewManual().JoinGossip(g)
	require.NoError(t, err, "the new process binds while the old one drains")
	next.Leave()
}

// Peers named by host name (a headless Service's, here localhost) are
// resolved to every address, and datagrams from them are taken.
func TestGossipPeersByName(t *testing.T) {
	a, b, ta, tb := twoProxies()
	pa, pb := freeport.UDP(t), freeport.UDP(t)
	ha, err := a.JoinGossip(Gossip{Listen: fmt.Sprintf("127.0.0.1:%d", pa), Peers: []string{fmt.Sprintf("localhost:%d", pb)}, Interval: "2ms"})
	require.NoError(t, err)
	defer ha.Leave()
	hb, err := b.JoinGossip(Gossip{Listen: fmt.Sprintf("127.0.0.1:%d", pb), Peers: []string{fmt.Sprintf("localhost:%d", pa)}, Interval: "2ms"})
	require.NoError(t, err)
	defer hb.Leave()
	ta.Start()
	require.Eventually(t, func() bool { return tb.Peers() == 1 }, 2*time.Second, time.Millisecond)
	// (A datagram or two may be refused before b's sender first resolves.)
	require.NotZero(t, hb.Stats().Received)
}

// A panic while taking a datagram (a bug) is recovered and counted, the
// datagram refused, and the next datagrams are taken as before: the
// goroutine runs inside Envoy.
func TestGossipRecoversAPanic(t *testing.T) {
	a, b, ta, tb := twoProxies()
	var panicked atomic.Int64
	SetGossipReceiveHook(func([]byte) {
		if panicked.Add(1) <= 3 {
			panic("injected")
		}
	})
	defer SetGossipReceiveHook(nil)
	ha, hb := gossiping(t, a, b)
	ta.Start()
	require.Eventually(t, func() bool { return tb.Peers() == 1 }, 2*time.Second, time.Millisecond)
	s := hb.Stats()
	require.Equal(t, uint64(3), s.Panics+ha.Stats().Panics)
	require.GreaterOrEqual(t, s.Refused, uint64(1))
	require.Equal(t, s.Panics, s.RefusedBy[RefusedPanic])
}

// The peers' counts reach targets that appear after them, and a socket
// that leaves takes back only what it wrote: counts that do not change are
// not sent again as changes, so neither case may wait for one.
func TestGossipSumsReachEveryTargetOfTheirEndpoint(t *testing.T) {
	spec := gossipSpec
	other := spec
	other.Path = "/other" // another pool's scrape of the same endpoint: another target
	t.Run("a target that appears later", func(t *testing.T) {
		a, b, ta, tb := twoProxies()
		gossiping(t, a, b)
		ta.Start()
		ta.Start()
		require.Eventually(t, func() bool { return tb.Peers() == 2 }, 2*time.Second, time.Millisecond)
		late := b.Acquire("10.9.0.1:8000", other)
		require.Eventually(t, func() bool { return late.Peers() == 2 }, 2*time.Second, time.Millisecond)
		b.Release(late)
		again := b.Acquire("10.9.0.1:8000", other)
		require.Eventually(t, func() bool { return again.Peers() == 2 }, 2*time.Second, time.Millisecond,
			"a target released and acquired again")
	})
	t.Run("a socket that leaves", func(t *testing.T) {
		a1, a2, b := NewManual(), NewManual(), NewManual()
		x1, y2 := a1.Acquire("10.9.0.1:8000", spec), a2.Acquire("10.9.0.2:8000", spec)
		x, y := b.Acquire("10.9.0.1:8000", spec), b.Acquire("10.9.0.2:8000", spec)
		p1, p2, pb1, pb2 := freeport.UDP(t), freeport.UDP(t), freeport.UDP(t), freeport.UDP(t)
		h1, _ := gossipOn(t, a1, p1, pb1)
		defer h1.Leave()
		h2, _ := gossipOn(t, a2, p2, pb2)
		defer h2.Leave()
		// b has two sockets, each with one peer: a1 tells of x, a2 of y.
		hb1, _ := gossipOn(t, b, pb1, p1)
		hb2, _ := gossipOn(t, b, pb2, p2)
		defer hb2.Leave()
		x1.Start()
		y2.Start()
		y2.Start()
		require.Eventually(t, func() bool { return x.Peers() == 1 && y.Peers() == 2 }, 2*time.Second, time.Millisecond)
		hb1.Leave()
		require.Zero(t, x.Peers(), "what the leaving socket's peer told us")
		require.Equal(t, int64(2), y.Peers(), "what the other socket's peer told us stays")
	})
}

// A source that cycles sender ids (a peer's address forged without a key,
// or a bug) is tracked for at most a few ids per peer address: the table
// and the counts it adds stay bounded by the fleet, not by the datagrams.
func TestGossipSendersAreBoundedByThePeerList(t *testing.T) {
	spec := gossipSpec
	b := NewManual()
	tb := b.Acquire("10.9.0.1:8000", spec)
	forger, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer forger.Close()
	pb := freeport.UDP(t)
	// One peer: 127.0.0.1, where the forger sends from too.
	hb, _ := gossipOn(t, b, pb, forger.LocalAddr().(*net.UDPAddr).Port)
	defer hb.Leave()
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: pb}
	entry := []gossipEntryOf{{endpoint: endpointHash("10.9.0.1:8000"), inFlight: 1}}
	for id := uint64(1); id <= 50; id++ {
		_, err := forger.WriteToUDP(appendGossip(nil, id, 1, 0, entry, nil), to)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { s := hb.Stats(); return s.Received+s.Refused == 50 }, 2*time.Second, time.Millisecond)
	s := hb.Stats()
	require.Equal(t, uint64(sendersFor(1)), s.Received, "a few sender ids per peer address")
	require.Equal(t, 8, s.Peers)
	require.Equal(t, uint64(50-sendersFor(1)), s.RefusedBy[RefusedSenders])
	require.Eventually(t, func() bool { return tb.Peers() == int64(sendersFor(1)) }, time.Second, time.Millisecond)
}

// With a key, a recorded datagram cannot be played back: not while its
// sender runs (its rounds went on), not after it left (its last round is
// remembered for as long as the datagram's time would pass), and not once
// it is older than the replay window.
func TestGossipRefusesPlayback(t *testing.T) {
	const key = "00112233445566778899aabbccddeeff"
	k, _ := hex.DecodeString(key)
	a, b, ta, tb := twoProxies()
	recorder := udpConn(t)
	pa, pb := freeport.UDP(t), freeport.UDP(t)
	keyed := func(listen int, peers ...int) Gossip {
		g := Gossip{Listen: fmt.Sprintf("127.0.0.1:%d", listen), Interval: "2ms", Key: key}
		for _, p := range peers {
			g.Peers = append(g.Peers, fmt.Sprintf("127.0.0.1:%d", p))
		}
		return g
	}
	// a tells b, and the recorder (an eavesdropper on the wire), of its requests.
	ha, err := a.JoinGossip(keyed(pa, pb, recorder.LocalAddr().(*net.UDPAddr).Port))
	require.NoError(t, err)
	hb, err := b.JoinGossip(keyed(pb, pa))
	require.NoError(t, err)
	defer hb.Leave()
	for range 3 {
		ta.Start()
	}
	require.Eventually(t, func() bool { return tb.Peers() == 3 }, 2*time.Second, time.Millisecond)
	var recorded []byte
	for recorded == nil {
		buf := make([]byte, 2048)
		require.NoError(t, recorder.SetReadDeadline(time.Now().Add(2*time.Second)))
		n, err := recorder.Read(buf)
		require.NoError(t, err)
		var m gossipMessage
		require.NoError(t, decodeGossip(buf[:n], k, &m))
		if len(m.entries) == 1 && m.entries[0].inFlight == 3 {
			recorded = buf[:n]
		}
	}
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: pb}
	ha.Leave()
	require.Eventually(t, func() bool { return tb.Peers() == 0 && hb.Stats().Peers == 0 }, 3*time.Second, time.Millisecond, "a is forgotten")

	refused := hb.Stats().Refused
	for range 20 { // from a peer's address, as a forger would
		_, err := recorder.WriteToUDP(recorded, to)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return hb.Stats().Refused == refused+20 }, 2*time.Second, time.Millisecond)
	require.Equal(t, uint64(20), hb.Stats().RefusedBy[RefusedRound], "a forgotten sender's rounds")
	require.Zero(t, tb.Peers(), "the recording steers nothing")
	require.Zero(t, hb.Stats().Peers)

	// A datagram signed as sent two windows ago, or as far ahead, whoever sends it.
	entry := []gossipEntryOf{{endpoint: endpointHash("10.9.0.1:8000"), inFlight: 5}}
	for _, sentAt := range []int64{unixMilli() - 2*DefaultGossipReplayWindow.Milliseconds(), unixMilli() + 2*DefaultGossipReplayWindow.Milliseconds()} {
		_, err := recorder.WriteToUDP(appendGossip(nil, 99, 1, sentAt, entry, k), to)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return hb.Stats().Refused == refused+22 }, 2*time.Second, time.Millisecond)
	require.Equal(t, uint64(2), hb.Stats().RefusedBy[RefusedTime])
	require.Zero(t, tb.Peers())
	// The same, sent now, is taken: what was refused was its time.
	_, err = recorder.WriteToUDP(appendGossip(nil, 99, 1, unixMilli(), entry, k), to)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return tb.Peers() == 5 }, 2*time.Second, time.Millisecond)
}

func udpConn(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// Every holder of a socket takes its counts from one tally: each datagram
// is handed out once, whoever asks and however many ask at once.
func TestGossipTakeUnreportedHandsOutEachCountOnce(t *testing.T) {
	a, b, ta, tb := twoProxies()
	pa, pb := freeport.UDP(t), freeport.UDP(t)
	ha, _ := gossipOn(t, a, pa, pb)
	hb, g := gossipOn(t, b, pb, pa)
	defer hb.Leave()
	hb2, err := b.JoinGossip(g) // a second pool, or a reloaded config, on the same socket
	require.NoError(t, err)
	defer hb2.Leave()
	ta.Start()
	require.Eventually(t, func() bool { return tb.Peers() == 1 }, 2*time.Second, time.Millisecond)

	var taken atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, h := range []*GossipHandle{hb, hb2, hb, hb2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				taken.Add(h.TakeUnreported().Received)
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Microsecond):
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	ha.Leave() // no more datagrams; the last ones may still arrive
	time.Sleep(20 * time.Millisecond)
	taken.Add(hb.TakeUnreported().Received)
	require.Greater(t, taken.Load(), uint64(10))
	require.Equal(t, hb.Stats().Received, taken.Load(), "each datagram taken once")
	require.Zero(t, hb2.TakeUnreported().Received)
}
