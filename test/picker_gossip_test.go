package test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// gossipDatagram is an unsigned datagram of another proxy of the fleet.
func gossipDatagram(sender, round uint64, inFlight map[string]uint32) []byte {
	return harness.GossipDatagram(nil, sender, round, 0, inFlight)
}

// readGossip decodes one datagram the library sent: endpoint hash → count.
func readGossip(t *testing.T, c *net.UDPConn) (sender uint64, counts map[uint64]uint32) {
	t.Helper()
	buf := make([]byte, 2048)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(2*time.Second)))
	n, _, err := c.ReadFromUDP(buf)
	require.NoError(t, err, "the library sends its counts to its peers")
	b := buf[:n]
	require.Equal(t, "IPG1", string(b[:4]))
	k := int(binary.LittleEndian.Uint16(b[20:]))
	require.Len(t, b, 22+12*k)
	counts = map[uint64]uint32{}
	for i := range k {
		e := b[22+12*i:]
		counts[binary.LittleEndian.Uint64(e)] = binary.LittleEndian.Uint32(e[8:])
	}
	return binary.LittleEndian.Uint64(b[4:]), counts
}

func udpOn(t *testing.T, ip string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// onceScrapedServers are n model servers whose metrics are served once,
// all alike, and refused after: the picker keeps that one sample (a huge
// unhealthyAfter), so every request counted since it stays counted, and a
// test controls what the picker knows. A chat body containing "slow" is
// answered after a second.
func onceScrapedServers(t *testing.T, n int) []string {
	t.Helper()
	expo, err := os.ReadFile("../picker/testdata/vllm_metrics_sim_v0.10.2.txt")
	require.NoError(t, err)
	answer := []byte(`{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	var addrs []string
	for range n {
		var scraped atomic.Bool
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/metrics" {
				if scraped.Swap(true) {
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				_, _ = w.Write(expo)
				return
			}
			body, _ := io.ReadAll(r.Body)
			if bytes.Contains(body, []byte("slow")) {
				time.Sleep(time.Second)
			}
			w.Header().Set("content-type", "application/json")
			_, _ = w.Write(answer)
		}))
		t.Cleanup(srv.Close)
		addrs = append(addrs, strings.TrimPrefix(srv.URL, "http://"))
	}
	return addrs
}

// gossipPeerSetup is a pool of n once-scraped servers whose picker
// gossips with one peer the test plays (peer), on a free port (to): cfg
// is its filter config, extra merged into its gossip (a key, a window).
type gossipPeerSetup struct {
	addrs []string
	peer  *net.UDPConn
	to    *net.UDPAddr
	cfg   map[string]any
}

func newGossipPeerSetup(t *testing.T, n int, extra map[string]any) gossipPeerSetup {
	t.Helper()
	addrs := onceScrapedServers(t, n)
	peer := udpOn(t, "127.0.0.1")
	listen := udpOn(t, "127.0.0.1") // a free port for the library; closed before it binds
	lp := listen.LocalAddr().String()
	listen.Close()
	to, err := net.ResolveUDPAddr("udp", lp)
	require.NoError(t, err)
	gossip := map[string]any{"listen": lp, "peers": []string{peer.LocalAddr().String()}, "interval": "2ms"}
	for k, v := range extra {
		gossip[k] = v
	}
	cfg := pickerConfig(addrs, map[string]any{"scrape": map[string]any{
		"interval": "50ms", "timeout": "500ms", "staleAfter": "1h", "unhealthyAfter": 1000000,
		"fleet": map[string]any{"gossip": gossip},
	}})
	return gossipPeerSetup{addrs: addrs, peer: peer, to: to, cfg: cfg}
}

// With scrape.fleet.gossip, the library counts the requests another proxy
// of the fleet says it sent since the scrape, and tells that proxy its
// own: through the real library, against a peer played by the test.
func TestPickerGossipCountsThePeersRequests(t *testing.T) {
	g := newGossipPeerSetup(t, 3, nil)
	addrs, peer, to := g.addrs, g.peer, g.to
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(pickerChain(t, g.cfg))
	model := "m"
	waitDestination(t, h, &harness.Request{Headers: jsonCT, Body: chatReq(model, "warm up", 1), Cluster: addrs})

	// The library tells its peer its requests in flight, one entry per endpoint.
	sender, counts := readGossip(t, peer)
	require.Len(t, counts, 3)
	for _, a := range addrs {
		require.Contains(t, counts, xxhash.Sum64String(a))
	}

	// The peer claims 40 requests on the first two ranks, repeatedly (a
	// peer that goes quiet is forgotten).
	claim := func(stop <-chan struct{}, from *net.UDPConn, sender uint64, inFlight map[string]uint32) *sync.WaitGroup {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := uint64(1); ; round++ {
				from.WriteToUDP(gossipDatagram(sender, round, inFlight), to)
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
			}
		}()
		return &wg
	}
	first := func() string {
		t.Helper()
		res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatReq(model, "hello", 1), Cluster: addrs})
		require.NoError(t, err)
		require.Equal(t, 200, res.Client.Status)
		return endpointOf(destination(res))
	}
	stop := make(chan struct{})
	claiming := claim(stop, peer, 77, map[string]uint32{addrs[0]: 40, addrs[1]: 40})
	time.Sleep(50 * time.Millisecond)
	for i := range 8 {
		require.Equal(t, addrs[2], first(), "request %d goes where the fleet has the fewest requests", i)
	}

	// A datagram from a source that is not a peer is not believed.
	stranger := udpOn(t, "127.0.0.2")
	stopStranger := make(chan struct{})
	strangerWG := claim(stopStranger, stranger, 99, map[string]uint32{addrs[2]: 1000})
	time.Sleep(50 * time.Millisecond)
	for range 4 {
		require.Equal(t, addrs[2], first(), "a stranger cannot steer the picker")
	}
	close(stopStranger)
	strangerWG.Wait()

	// Garbage from the peer itself (cut short, another magic, trailing
	// bytes, an empty datagram), each claiming rank 2 full, is refused and
	// changes nothing (the clamp of a huge count: TestGossipWireRefuses).
	good := gossipDatagram(77, 1<<40, map[string]uint32{addrs[2]: 1 << 31})
	for _, bad := range [][]byte{good[:len(good)-3], append([]byte("XPG1"), good[4:]...), append(append([]byte(nil), good...), 0), {}} {
		_, err := peer.WriteToUDP(bad, to)
		require.NoError(t, err)
	}
	time.Sleep(20 * time.Millisecond)
	for range 4 {
		require.Equal(t, addrs[2], first(), "garbage does not steer the picker")
	}

	// The library's own request in flight reaches the peer.
	long := chatReq(model, "a slow answer", 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: long, Cluster: addrs})
	}()
	want := xxhash.Sum64String(addrs[2])
	deadline := time.Now().Add(3 * time.Second)
	for {
		s, c := readGossip(t, peer)
		require.Equal(t, sender, s, "one sender id for the process")
		if c[want] == 1 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the peer never heard of the request in flight: %v", c)
	}
	<-done

	// Envoy's stats show the peer and the stranger's refused datagrams
	// (gauges follow the pools at most once a second, from a passing stream).
	time.Sleep(1100 * time.Millisecond)
	first()
	st := h.MustStats()
	peers, ok := st.Gauge("endpoint_picker.gossip_peers", "pool", "pool")
	require.True(t, ok, st.String())
	require.EqualValues(t, 1, peers)
	received, _ := st.Counter("endpoint_picker.gossip_received", "pool", "pool")
	require.Greater(t, received, uint64(10))
	refused, _ := st.Counter("endpoint_picker.gossip_refused", "pool", "pool")
	require.Greater(t, refused, uint64(5))
	fromStranger, _ := st.Counter("endpoint_picker.gossip_refused", "pool", "pool", "reason", "source")
	require.Greater(t, fromStranger, uint64(5), "the stranger's, by their source")
	malformed, _ := st.Counter("endpoint_picker.gossip_refused", "pool", "pool", "reason", "malformed")
	require.EqualValues(t, 4, malformed, "the peer's garbage")

	// When the peer goes quiet its claim expires and the ranks are used again.
	close(stop)
	claiming.Wait()
	seen := map[string]bool{}
	deadline = time.Now().Add(5 * time.Second)
	for !seen[addrs[0]] && !seen[addrs[1]] {
		require.True(t, time.Now().Before(deadline), "the quiet peer's claim never expired")
		seen[first()] = true
		time.Sleep(20 * time.Millisecond)
	}
}

// endpointOf is the first endpoint of a destination list.
func endpointOf(list string) string {
	for i := range len(list) {
		if list[i] == ',' {
			return list[:i]
		}
	}
	return list
}

func TestPickerGossipConfigRefusedNamingTheField(t *testing.T) {
	h := harness.Start(t, harness.Options{})
	for _, tc := range []struct {
		gossip map[string]any
		field  string
	}{
		{map[string]any{"listen": "127.0.0.1", "peers": []string{"127.0.0.1:9"}}, "scrape.fleet.gossip.listen"},
		{map[string]any{"listen": "127.0.0.1:9", "peers": []string{}}, "scrape.fleet.gossip.peers"},
		{map[string]any{"listen": "127.0.0.1:9", "peers": []string{"x:9"}, "interval": "1h"}, "scrape.fleet.gossip.interval"},
		{map[string]any{"listen": "127.0.0.1:9", "peers": []string{"x:9"}, "key": "short"}, "scrape.fleet.gossip.key"},
		{map[string]any{"listen": "127.0.0.1:9", "peers": []string{"x:9"}, "replayWindow": "1s"}, "scrape.fleet.gossip.replayWindow"},
	} {
		t.Run(tc.field, func(t *testing.T) {
			cfg := pickerConfig([]string{"127.0.0.1:1"}, map[string]any{"scrape": map[string]any{"fleet": map[string]any{"gossip": tc.gossip}}})
			_, err := h.Configure(pickerChain(t, cfg))
			var ce *harness.CommandError
			require.ErrorAs(t, err, &ce)
			require.Contains(t, ce.Msg, fmt.Sprintf("pools[0].%s", tc.field))
		})
	}
}

// A panic in the gossip receiver (a bug; injected by the test build for
// datagrams that start with "PANIC") is recovered inside the library: the
// datagram is refused, Envoy's endpoint_picker.panics counts it, and the
// next datagrams are taken as before. (The two-filter chain in both modes
// of the picker suite: the counter is the picking filter's.)
func TestPickerGossipPanicIsRecoveredAndCounted(t *testing.T) {
	g := newGossipPeerSetup(t, 2, nil)
	addrs, peer, to := g.addrs, g.peer, g.to
	g.cfg["debug"] = map[string]any{"panicIn": "gossip"}
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(harness.EnvoyChain(t).WithJSON("endpoint_picker", g.cfg))
	waitDestination(t, h, &harness.Request{Headers: jsonCT, Body: chatReq("m", "warm up", 1), Cluster: addrs})

	for range 3 {
		_, err := peer.WriteToUDP([]byte("PANIC and nothing else"), to)
		require.NoError(t, err)
	}
	// Then the peer claims the first rank full: the receiver still works.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for round := uint64(1); ; round++ {
			peer.WriteToUDP(gossipDatagram(7, round, map[string]uint32{addrs[0]: 50}), to)
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	time.Sleep(50 * time.Millisecond)
	send := func() string {
		t.Helper()
		res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatReq("m", "hello", 1), Cluster: addrs})
		require.NoError(t, err)
		require.Equal(t, 200, res.Client.Status)
		return endpointOf(destination(res))
	}
	for i := range 6 {
		require.Equal(t, addrs[1], send(), "request %d: the peer's claim after the panics still steers", i)
	}
	time.Sleep(1100 * time.Millisecond) // pool stats reach Envoy at most once a second
	send()
	st := h.MustStats()
	panics, ok := st.Counter("endpoint_picker.panics")
	require.True(t, ok, st.String())
	require.EqualValues(t, 3, panics)
	refused, _ := st.Counter("endpoint_picker.gossip_refused", "pool", "pool")
	require.GreaterOrEqual(t, refused, uint64(3))
}

// With a key, what the peer says steers the picks only while it says it:
// a recording of its datagrams played back after it went quiet, a signed
// datagram whose time is past the replay window, and an unsigned one are
// all refused. Through the real library, the peer and the forger played
// by the test (a forger on the peer's address: UDP sources can be forged).
func TestPickerGossipRefusesPlayback(t *testing.T) {
	key := []byte("0123456789abcdef")
	g := newGossipPeerSetup(t, 3, map[string]any{"key": hex.EncodeToString(key), "replayWindow": "5s"})
	addrs, peer, to := g.addrs, g.peer, g.to
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(pickerChain(t, g.cfg))
	waitDestination(t, h, &harness.Request{Headers: jsonCT, Body: chatReq("m", "warm up", 1), Cluster: addrs})

	// The library signs what it sends, with its time.
	buf := make([]byte, 2048)
	require.NoError(t, peer.SetReadDeadline(time.Now().Add(2*time.Second)))
	n, _, err := peer.ReadFromUDP(buf)
	require.NoError(t, err)
	got := buf[:n]
	require.Equal(t, "IPG2", string(got[:4]))
	mac := hmac.New(sha256.New, key)
	mac.Write(got[:n-16])
	require.Equal(t, mac.Sum(nil)[:16], got[n-16:], "signed under the key")
	require.InDelta(t, time.Now().UnixMilli(), int64(binary.LittleEndian.Uint64(got[20:])), 2000, "sent now")

	first := func() string {
		t.Helper()
		res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatReq("m", "hello", 1), Cluster: addrs})
		require.NoError(t, err)
		require.Equal(t, 200, res.Client.Status)
		return endpointOf(destination(res))
	}
	// sending sends datagrams made by next every 2 ms until stopped.
	sending := func(next func(round uint64) []byte) (stop func()) {
		done, quit := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			for round := uint64(1); ; round++ {
				peer.WriteToUDP(next(round), to)
				select {
				case <-quit:
					return
				case <-time.After(2 * time.Millisecond):
				}
			}
		}()
		return func() { close(quit); <-done }
	}
	claim := map[string]uint32{addrs[0]: 40, addrs[1]: 40}
	var recorded [][]byte // the peer's datagrams, as an eavesdropper keeps them
	var mu sync.Mutex
	stop := sending(func(round uint64) []byte {
		d := harness.GossipDatagram(key, 77, round, time.Now().UnixMilli(), claim)
		mu.Lock()
		recorded = append(recorded, d)
		mu.Unlock()
		return d
	})
	time.Sleep(50 * time.Millisecond)
	for i := range 6 {
		require.Equal(t, addrs[2], first(), "request %d: the signed claim steers", i)
	}
	stop()
	time.Sleep(400 * time.Millisecond) // the quiet peer is forgotten (250 ms)

	// Within the replay window, the recording is played back from the
	// peer's address, with signed datagrams from the past and unsigned ones.
	mu.Lock()
	tape := recorded
	mu.Unlock()
	stop = sending(func(round uint64) []byte {
		switch round % 3 {
		case 0:
			return tape[int(round)%len(tape)]
		case 1:
			return harness.GossipDatagram(key, 1000+round, 1, time.Now().Add(-10*time.Second).UnixMilli(), claim)
		default:
			return gossipDatagram(2000+round, 1, claim)
		}
	})
	defer stop()
	time.Sleep(50 * time.Millisecond)
	seen := map[string]int{}
	for range 12 {
		seen[first()]++
	}
	require.Positive(t, seen[addrs[0]]+seen[addrs[1]], "nothing played back steers the picks: %v", seen)

	time.Sleep(1100 * time.Millisecond) // pool stats reach Envoy at most once a second
	first()
	st := h.MustStats()
	peers, _ := st.Gauge("endpoint_picker.gossip_peers", "pool", "pool")
	require.Zero(t, peers, st.String())
	refused, _ := st.Counter("endpoint_picker.gossip_refused", "pool", "pool")
	require.Greater(t, refused, uint64(100), "every played-back datagram is refused")
	// By reason: the recording by its rounds, the signed ones from the past
	// by their time, the unsigned ones by their missing signature.
	for _, reason := range []string{"round", "time", "signature"} {
		n, _ := st.Counter("endpoint_picker.gossip_refused", "pool", "pool", "reason", reason)
		require.Greater(t, n, uint64(30), "%s: %s", reason, st.String())
	}
}

// The gossip socket outlives a config reload (the new filter config joins
// it before the old one leaves, as Envoy creates the new before draining
// the old), so its counters reach Envoy's once: the new config does not
// report the socket's history again.
func TestPickerGossipCountersSurviveAReload(t *testing.T) {
	g := newGossipPeerSetup(t, 2, nil)
	addrs, peer, to := g.addrs, g.peer, g.to
	g.cfg["debug"] = map[string]any{"panicIn": "gossip"}
	h := harness.Start(t, harness.Options{})
	chain := harness.EnvoyChain(t).WithJSON("endpoint_picker", g.cfg)
	h.MustConfigure(chain)
	req := &harness.Request{Headers: jsonCT, Body: chatReq("m", "hello", 1), Cluster: addrs}
	waitDestination(t, h, req)
	round := uint64(0)
	send := func(n int) {
		for range n {
			round++
			_, err := peer.WriteToUDP(gossipDatagram(5, round, map[string]uint32{addrs[0]: 1}), to)
			require.NoError(t, err)
			time.Sleep(time.Millisecond)
		}
	}
	counters := func() (received, refused, panics uint64) {
		t.Helper()
		time.Sleep(1100 * time.Millisecond) // pool stats reach Envoy at most once a second
		waitDestination(t, h, req)
		st := h.MustStats()
		received, _ = st.Counter("endpoint_picker.gossip_received", "pool", "pool")
		refused, _ = st.Counter("endpoint_picker.gossip_refused", "pool", "pool")
		panics, _ = st.Counter("endpoint_picker.panics")
		return
	}

	for range 3 {
		_, err := peer.WriteToUDP([]byte("PANIC"), to)
		require.NoError(t, err)
	}
	send(40)
	received, refused, panics := counters()
	require.Equal(t, [3]uint64{40, 3, 3}, [3]uint64{received, refused, panics}, "received, refused, panics")

	h.MustConfigure(chain) // a reload: the same socket, a new filter config
	send(20)
	received, refused, panics = counters()
	require.Equal(t, [3]uint64{60, 3, 3}, [3]uint64{received, refused, panics}, "after the reload: only what came since is added")
}
