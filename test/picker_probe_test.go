package test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/test/harness"
)

// probedServer is a model server whose /metrics the test changes between
// the picker's scheduled scrapes, and can make hang.
type probedServer struct {
	addr    string
	waiting atomic.Int64
	scrapes atomic.Int64
	hang    atomic.Pointer[chan struct{}] // set: /metrics waits for it to close
}

func probedServers(t *testing.T, n int) []*probedServer {
	t.Helper()
	answer := []byte(`{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	var out []*probedServer
	for range n {
		s := &probedServer{}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/metrics" {
				s.scrapes.Add(1)
				if g := s.hang.Load(); g != nil {
					select {
					case <-*g: // then answers as usual
					case <-r.Context().Done():
						return
					}
				}
				fmt.Fprintf(w, "vllm:num_requests_waiting %d\nvllm:num_requests_running 1\nvllm:kv_cache_usage_perc 0.1\n", s.waiting.Load())
				return
			}
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("content-type", "application/json")
			_, _ = w.Write(answer)
		}))
		t.Cleanup(srv.Close)
		s.addr = strings.TrimPrefix(srv.URL, "http://")
		out = append(out, s)
	}
	return out
}

func serverAddrs(ss []*probedServer) []string {
	var a []string
	for _, s := range ss {
		a = append(a, s.addr)
	}
	return a
}

func scrapesOf(ss []*probedServer) int64 {
	var n int64
	for _, s := range ss {
		n += s.scrapes.Load()
	}
	return n
}

// probedPoolConfig scrapes once (then an hour later): every scrape after
// the first is a probe's. whenAlone: a lone proxy probes too (the fleet
// estimate of one proxy is 1).
func probedPoolConfig(addrs []string, probe map[string]any) map[string]any {
	return probedFleetConfig(addrs, probe, nil)
}

// probedFleetConfig is probedPoolConfig with a scrape.fleet section (nil:
// left out); probe nil leaves the probe section out (the defaults).
func probedFleetConfig(addrs []string, probe, fleet map[string]any) map[string]any {
	scrape := map[string]any{"interval": "1h", "timeout": "5s", "staleAfter": "2h"}
	if fleet != nil {
		scrape["fleet"] = fleet
	}
	pool := map[string]any{"scrape": scrape}
	if probe != nil {
		pool["probe"] = probe
	}
	return pickerConfig(addrs, pool)
}

func probeOn(timeout string) map[string]any {
	return map[string]any{"enabled": true, "whenAlone": true, "timeout": timeout}
}

// sendChat sends one chat request and requires a 200.
func sendChat(t *testing.T, h *harness.Host, addrs []string, prompt string) *harness.Result {
	t.Helper()
	res, err := h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatReq("m", prompt, 1), Cluster: addrs})
	require.NoError(t, err)
	require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
	return res
}

// A server filled up after the picker's last scheduled scrape: with
// probing the pick scrapes the list now and goes elsewhere; without, the
// pick goes to the stale choice and no probe scrape is made. Runs in both
// deployments (pickerChain), and with endpoint_picker alone, which picks
// in its body hook (the body waits with the stream).
func TestPickerProbesAtPickTime(t *testing.T) {
	for _, tc := range []struct {
		name     string
		probe    map[string]any
		proxies  int  // scrape.fleet.proxies, 0: left out
		gossip   bool // scrape.fleet.gossip with a peer
		alone    bool // endpoint_picker alone in the chain
		off      bool // expect no probing
		trailers bool // the request ends with trailers: picked in the trailers hook
	}{
		{name: "probing", probe: probeOn("1s")},
		{name: "probing, a request with trailers", probe: probeOn("1s"), trailers: true},
		{name: "probing, endpoint_picker alone, a request with trailers", probe: probeOn("1s"), alone: true, trailers: true},
		{name: "probing, endpoint_picker alone", probe: probeOn("1s"), alone: true},
		{name: "off", probe: map[string]any{"enabled": false}, off: true},
		// "enabled" and "whenAlone" left out: on, but a lone proxy does not
		// probe. (The timeout outlasts the probes' 50 ms.)
		{name: "default, one of two proxies", probe: map[string]any{"timeout": "1s"}, proxies: 2},
		{name: "default, one proxy", probe: map[string]any{"timeout": "1s"}, proxies: 1, off: true},
		{name: "default, fleet unknown and not estimated", probe: map[string]any{"timeout": "1s"}, off: true},
		// A pool that gossips does not probe unless asked to (Round 6:
		// the two together measured worse than gossip alone).
		{name: "default, gossip", probe: map[string]any{"timeout": "1s"}, gossip: true, off: true},
		{name: "enabled, gossip", probe: map[string]any{"enabled": true, "timeout": "1s"}, gossip: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ss := probedServers(t, 2)
			ss[1].waiting.Store(1)
			addrs := serverAddrs(ss)
			h := harness.Start(t, harness.Options{})
			var fleet map[string]any
			if tc.proxies > 0 {
				fleet = map[string]any{"proxies": tc.proxies}
			}
			if tc.gossip {
				peer := udpOn(t, "127.0.0.1")
				defer peer.Close()
				listen := udpOn(t, "127.0.0.1") // a free port for the library
				lp := listen.LocalAddr().String()
				listen.Close()
				fleet = map[string]any{"gossip": map[string]any{"listen": lp, "peers": []string{peer.LocalAddr().String()}}}
			}
			cfg := probedFleetConfig(addrs, tc.probe, fleet)
			chain := pickerChain(t, cfg)
			if tc.alone {
				chain = harness.EnvoyChain(t).Only("endpoint_picker").WithJSON("endpoint_picker", cfg)
			}
			h.MustConfigure(chain)
			waitDestination(t, h, &harness.Request{Headers: jsonCT, Body: chatReq("m", "warm up", 1), Cluster: addrs})
			res := sendChat(t, h, addrs, "before")
			require.Equal(t, addrs[0], res.Endpoint, "the emptier server")

			ss[0].waiting.Store(9)            // full since the scrape
			time.Sleep(30 * time.Millisecond) // the samples are older than maxAge (20ms)
			// The probes answer 50 ms late, well after the hook let go: the
			// stream is resumed from the scheduler. (Probes answered before
			// that are picked at once, in the hook, by design.)
			late := make(chan struct{})
			for _, s := range ss {
				s.hang.Store(&late)
			}
			time.AfterFunc(50*time.Millisecond, func() { close(late) })
			before := scrapesOf(ss)
			if tc.trailers {
				var err error
				res, err = h.Send(context.Background(), &harness.Request{Headers: jsonCT, Body: chatReq("m", "after", 1),
					Trailers: harness.Headers{{"x-request-trailer", "1"}}, Cluster: addrs})
				require.NoError(t, err)
				require.Equal(t, 200, res.Client.Status, string(res.Client.Body))
			} else {
				res = sendChat(t, h, addrs, "after")
			}
			st := h.MustStats()
			probes, _ := st.Counter("endpoint_picker.probes", "pool", "pool")
			changed, _ := st.Counter("endpoint_picker.probe_changed", "pool", "pool")
			if tc.off {
				require.Equal(t, addrs[0], res.Endpoint, "the stale choice")
				require.Equal(t, before, scrapesOf(ss), "probing off: no probe scrapes")
				require.Zero(t, probes)
				require.Zero(t, res.State.ScheduledDelivered)
				return
			}
			require.Equal(t, addrs[1], res.Endpoint, "the fresh choice")
			require.Equal(t, addrs[1], strings.Split(destination(res), ",")[0])
			md, ok := res.State.MetadataString("envoy.lb", "x-gateway-destination-endpoint")
			require.True(t, ok)
			require.Equal(t, destination(res), md)
			require.Equal(t, before+2, scrapesOf(ss), "one probe per listed server")
			require.GreaterOrEqual(t, probes, uint64(1))
			require.EqualValues(t, 1, changed, st.String())
			require.Equal(t, 1, res.State.ScheduledDelivered, "resumed from the scheduler")
			require.Empty(t, res.State.Violations)
			require.Zero(t, res.State.ForeignThreadCalls)
			require.JSONEq(t, string(chatReq("m", "after", 1)), string(res.Received.Body), "the body went on whole")
		})
	}
}

// A /metrics that hangs: the request goes on after the probe timeout, on
// what the picker had.
func TestPickerProbeTimeout(t *testing.T) {
	ss := probedServers(t, 2)
	addrs := serverAddrs(ss)
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(pickerChain(t, probedPoolConfig(addrs, probeOn("100ms"))))
	waitDestination(t, h, &harness.Request{Headers: jsonCT, Body: chatReq("m", "warm up", 1), Cluster: addrs})
	gate := make(chan struct{})
	defer close(gate)
	ss[0].hang.Store(&gate)
	time.Sleep(30 * time.Millisecond)
	res := sendChat(t, h, addrs, "hung metrics")
	require.NotEmpty(t, destination(res))
	timeouts, _ := h.MustStats().Counter("endpoint_picker.probe_timeouts", "pool", "pool")
	require.EqualValues(t, 1, timeouts)
	require.Equal(t, 1, res.State.ScheduledDelivered)

	// The scrape still hangs, longer than a pick waits: the next picks do
	// not wait for it (each would time out), and join nothing.
	hung := ss[0].scrapes.Load()
	for i := range 3 {
		res := sendChat(t, h, addrs, fmt.Sprintf("still hung %d", i))
		require.NotEmpty(t, destination(res))
	}
	st := h.MustStats()
	timeouts, _ = st.Counter("endpoint_picker.probe_timeouts", "pool", "pool")
	require.EqualValues(t, 1, timeouts, "no pick waited for the hung server again")
	require.Equal(t, hung, ss[0].scrapes.Load())
	require.Zero(t, st.ABI.Violations)
}

// A client that resets its stream while the probes are out: nothing
// crashes, the late answer resumes nothing (Envoy drops the event of a
// destroyed filter, whose pooled object may serve another stream by then),
// no in-flight count is left, and the next streams go as usual.
func TestPickerProbeStreamReset(t *testing.T) {
	ss := probedServers(t, 2)
	addrs := serverAddrs(ss)
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(pickerChain(t, probedPoolConfig(addrs, probeOn("1s"))))
	waitDestination(t, h, &harness.Request{Headers: jsonCT, Body: chatReq("m", "warm up", 1), Cluster: addrs})
	gate := make(chan struct{})
	for _, s := range ss {
		s.hang.Store(&gate)
	}
	time.Sleep(30 * time.Millisecond)
	hdrs := harness.Headers{{":method", "POST"}, {":path", "/v1/chat/completions"}, {":authority", "localhost"},
		{":scheme", "http"}, {"content-type", "application/json"}}
	before := scrapesOf(ss)
	const streams = 4
	for i := range streams {
		s, err := h.Open(harness.StreamOptions{})
		require.NoError(t, err)
		require.NoError(t, s.RequestHeaders(hdrs, false))
		require.NoError(t, s.RequestData(chatReq("m", fmt.Sprintf("reset %d", i), 1), true))
		st, err := s.State()
		require.NoError(t, err)
		require.False(t, harness.RequestLeft(s.Events()), "held for its probes")
		require.Zero(t, st.LocalReplies)
		_, err = s.Reset()
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return scrapesOf(ss) >= before+2 }, 5*time.Second, time.Millisecond)
	require.Equal(t, before+2, scrapesOf(ss), "the streams joined one probe per server")
	for _, s := range ss {
		s.hang.Store(nil)
	}
	close(gate)                         // the probes answer now, after their streams are gone
	time.Sleep(1100 * time.Millisecond) // and the timers fire; the gauges follow once a second
	sendChat(t, h, addrs, "after")
	st := h.MustStats()
	require.LessOrEqual(t, inFlightGauges(t, st, addrs), uint64(1), "only the passing request is in flight")
	require.Zero(t, st.ABI.Violations)
	require.Zero(t, st.ABI.ForeignThreadCalls)
	require.GreaterOrEqual(t, st.ABI.DroppedScheduledEvents, streams, "the reset streams' resumptions were dropped")
	for i := range 5 {
		res := sendChat(t, h, addrs, fmt.Sprintf("next %d", i))
		require.NotEmpty(t, destination(res))
	}
	panics, _ := st.Counter("endpoint_picker.panics")
	require.Zero(t, panics)
}

// A probe's callback that panics, on the collector's goroutine (the
// test build's debug.panicIn "probe"): the panic is counted as the filter's
// (panics), it reaches neither the collector's loop nor Envoy, and the
// stream is not lost: it goes on at the probe timeout, on what the picker
// had. The next streams go as usual.
func TestPickerProbeCallbackPanic(t *testing.T) {
	ss := probedServers(t, 2)
	addrs := serverAddrs(ss)
	filter := "endpoint_picker"
	if os.Getenv("INFERENCEPOOL_TEST_ONE_FILTER") == "1" {
		filter = "ai_router" // its barrier counts the picker's panics
	}
	h := harness.Start(t, harness.Options{})
	h.MustConfigure(pickerChain(t, probedPoolConfig(addrs, probeOn("200ms"))).
		WithMerged(filter, map[string]any{"debug": map[string]any{"panicIn": "probe"}}))
	waitDestination(t, h, &harness.Request{Headers: jsonCT, Body: chatReq("m", "warm up", 1), Cluster: addrs})
	time.Sleep(1100 * time.Millisecond) // the warm-up's panics, if it probed, are published with the next gauges
	sendChat(t, h, addrs, "publish")
	st := h.MustStats()
	panics0, _ := st.Counter(filter + ".panics")
	timeouts0, _ := st.Counter("endpoint_picker.probe_timeouts", "pool", "pool")

	time.Sleep(30 * time.Millisecond) // the samples are older than maxAge (20ms): the next pick probes
	before := scrapesOf(ss)
	res := sendChat(t, h, addrs, "probed")
	require.NotEmpty(t, destination(res))
	require.Equal(t, before+2, scrapesOf(ss), "both servers probed")
	require.Equal(t, 1, res.State.ScheduledDelivered, "resumed by the timeout: no callback counted down")
	st = h.MustStats()
	timeouts, _ := st.Counter("endpoint_picker.probe_timeouts", "pool", "pool")
	require.Equal(t, timeouts0+1, timeouts)

	time.Sleep(1100 * time.Millisecond) // async panics are published with the gauges, once a second
	for i := range 3 {
		res := sendChat(t, h, addrs, fmt.Sprintf("next %d", i))
		require.NotEmpty(t, destination(res))
	}
	st = h.MustStats()
	panics, _ := st.Counter(filter + ".panics")
	require.GreaterOrEqual(t, panics, panics0+2, "each probe's panic counted")
	require.Zero(t, st.ABI.Violations)
	require.Zero(t, st.ABI.ForeignThreadCalls)
}

// A bad probe config is refused when Envoy loads it, naming the field;
// unknown fields too (a misspelt "enable" must not leave probing off
// silently).
func TestPickerProbeConfigRefusedNamingTheField(t *testing.T) {
	h := harness.Start(t, harness.Options{})
	for _, tc := range []struct {
		probe map[string]any
		field string
	}{
		{map[string]any{"enabled": true, "candidates": 9}, "pools[0].probe.candidates"},
		{map[string]any{"enabled": true, "maxAge": "-1s"}, "pools[0].probe.maxAge"},
		{map[string]any{"enabled": true, "timeout": "5s"}, "pools[0].probe.timeout"},
		{map[string]any{"enabled": true, "timeout": "soon"}, "pools[0].probe.timeout"},
		{map[string]any{"enable": true}, "enable"},
	} {
		t.Run(tc.field, func(t *testing.T) {
			_, err := h.Configure(pickerChain(t, probedPoolConfig([]string{"127.0.0.1:1"}, tc.probe)))
			var ce *harness.CommandError
			require.ErrorAs(t, err, &ce, "%v", tc.probe)
			require.Contains(t, ce.Msg, tc.field)
		})
	}
}

// inFlightGauges sums endpoint_picker.endpoint_in_flight over addrs.
func inFlightGauges(t *testing.T, st *harness.Stats, addrs []string) uint64 {
	t.Helper()
	var n uint64
	for _, a := range addrs {
		v, ok := st.Gauge("endpoint_picker.endpoint_in_flight", "pool", "pool", "endpoint", a)
		require.True(t, ok, st.String())
		n += v
	}
	return n
}
