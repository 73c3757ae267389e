package picker

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/collector"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

func TestProbeConfig(t *testing.T) {
	for _, tc := range []struct {
		name, probe, err string
	}{
		{"defaults", `{}`, ""},
		{"off", `{"enabled":false}`, ""},
		{"limits", `{"enabled":true,"candidates":8,"maxAge":"0s","timeout":"1s"}`, ""},
		{"too many candidates", `{"candidates":9}`, "pools[0].probe.candidates: must be in 1..8"},
		{"negative candidates", `{"candidates":-1}`, "pools[0].probe.candidates: must be in 1..8"},
		{"timeout too short", `{"timeout":"500us"}`, "pools[0].probe.timeout: must be in 1ms..1s"},
		{"timeout too long", `{"timeout":"2s"}`, "pools[0].probe.timeout: must be in 1ms..1s"},
		{"negative maxAge", `{"maxAge":"-1ms"}`, "pools[0].probe.maxAge: must be in 0s..10s"},
		{"unknown field", `{"enable":true}`, "enable"},
		{"wrong type", `{"enabled":"yes"}`, "enabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(staticConfig([]string{"10.0.0.1:8000"}, `"probe":`+tc.probe)))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			p := cfg.Pools[0].Probe
			require.Equal(t, tc.name != "off", newProbing(&p, false).enabled)
			if tc.name == "defaults" {
				require.Equal(t, DefaultProbeCandidates, p.Candidates)
				require.Equal(t, DefaultProbeMaxAge, p.MaxAge.D())
				require.Equal(t, DefaultProbeTimeout, p.Timeout.D())
				require.False(t, p.WhenAlone)
			}
		})
	}
	cfg, err := Parse([]byte(staticConfig([]string{"10.0.0.1:8000"}, "")))
	require.NoError(t, err)
	require.Nil(t, cfg.Pools[0].Probe.Enabled, "left unset: the pool decides")
	require.True(t, newProbing(&cfg.Pools[0].Probe, false).enabled, "on unless turned off")
	on := newProbing(&ProbeConfig{}, false)
	require.Equal(t, probing{enabled: true, candidates: DefaultProbeCandidates, maxAge: DefaultProbeMaxAge, timeout: DefaultProbeTimeout}, on, "an undefaulted section gets the defaults")

	// A gossiping pool does not probe unless asked to.
	yes, no := true, false
	for _, tc := range []struct {
		enabled *bool
		gossip  bool
		want    bool
	}{
		{nil, false, true},
		{nil, true, false},
		{&yes, true, true},
		{&no, false, false},
	} {
		require.Equal(t, tc.want, newProbing(&ProbeConfig{Enabled: tc.enabled}, tc.gossip).enabled, "enabled %v, gossip %v", tc.enabled, tc.gossip)
	}
}

// replaySeeds makes tie breaks and draws the same from here on.
func replaySeeds(t *testing.T) {
	prev := cycleSeed
	var seq uint64
	cycleSeed = func() uint64 { seq += 0x9e3779b97f4a7c15; return seq }
	t.Cleanup(func() { cycleSeed = prev })
}

// The dry first pick of a probed request leaves no trace: no in-flight
// count, no pick counted, no fleet estimate, no learned prefix, no
// rendezvous key marked seen.
func TestDryPickLeavesNoTrace(t *testing.T) {
	eps := []string{"10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"}
	fill := func(p *Pool) {
		for i, a := range eps {
			kv := 0.5
			if i == 0 {
				kv = 0.1 // the best by load
			}
			// 2 of ours among 8 running: a pick that observed it would
			// move the fleet estimate to 4.
			target(t, p, a).Publish(&metrics.Sample{At: collector.Now(), Running: 8, KVUsage: kv, InFlightAtScrape: 2})
		}
	}
	for _, mode := range []string{"rendezvous", "learned"} {
		t.Run(mode, func(t *testing.T) {
			extra := fmt.Sprintf(`"prefix":{"mode":%q},"scheduler":{"filters":[]}`, mode)
			p := openManual(t, staticConfig(eps, extra))
			fill(p)
			req := &Request{Model: "m", Prompt: chatPrompt("a shared system prompt that is long enough for several blocks of sixty-four bytes each, and then some more", "q", 2048)}
			var res Result
			for range 3 {
				p.pick(req, &res, true)
				require.Equal(t, StatusOK, res.Status)
				require.Len(t, res.Endpoints(), 3)
			}
			flushPrefixIndex(p)
			st := p.Stats()
			require.Zero(t, st.Picks)
			require.Zero(t, st.PrefixEntries)
			for _, a := range eps {
				require.Zero(t, target(t, p, a).InFlight(), a)
				require.Zero(t, target(t, p, a).Stats().Picks, a)
			}
			require.Equal(t, 1.0, p.fleet.value(), "the fleet estimate is untouched")
		})
	}

	// A rendezvous key's first request goes by load alone; dry picks
	// before it must not make it look seen. Find a prompt whose
	// preferred endpoint is not the best by load (its second request goes
	// elsewhere than its first), then check its first request after dry
	// picks still goes by load.
	replaySeeds(t)
	for i := range 50 {
		req := &Request{Model: "m", Prompt: chatPrompt(fmt.Sprintf("tenant %d system prompt, long enough to make a rendezvous key of several blocks", i), "q", 1024)}
		plain := openManual(t, staticConfig(eps, `"scheduler":{"filters":[]}`))
		fill(plain)
		var res Result
		plain.Pick(req, &res)
		first := res.Endpoints()[0]
		res.Done(OutcomeOK)
		plain.Pick(req, &res)
		second := res.Endpoints()[0]
		res.Done(OutcomeOK)
		if first == second {
			continue
		}
		require.Equal(t, eps[0], first, "a first request goes by load")
		probed := openManual(t, staticConfig(eps, `"scheduler":{"filters":[]}`))
		fill(probed)
		probed.pick(req, &res, true)
		probed.Pick(req, &res)
		require.Equal(t, first, res.Endpoints()[0], "the dry pick marked the key seen")
		res.Done(OutcomeOK)
		return
	}
	t.Fatal("no prompt whose rendezvous preference differs from the best by load")
}

// probedPool is a pool of two local servers scraped once an hour: every
// scrape after the first is a probe's.
func probedPool(t *testing.T, a, b *fakeServer, probe string) *Pool {
	ps, err := OpenJSON([]byte(staticConfig([]string{a.addr(), b.addr()},
		`"scrape":{"interval":"1h","staleAfter":"2h"},"probe":`+probe)), WithCollector(collector.New(nil)))
	require.NoError(t, err)
	t.Cleanup(ps.Close)
	p := ps.List()[0]
	require.Eventually(t, func() bool { return p.Stats().Ready == 2 }, 5*time.Second, 5*time.Millisecond)
	// A scrape already under way when the first samples landed (a retry
	// on a loaded machine) lands first: the tests count from here.
	require.Eventually(t, func() bool {
		n := a.requests.Load() + b.requests.Load()
		time.Sleep(DefaultProbeMaxAge + 5*time.Millisecond) // also: older than maxAge, worth a probe
		return a.requests.Load()+b.requests.Load() == n
	}, 10*time.Second, time.Millisecond)
	return p
}

// probeAndWait runs Probe and waits for its callbacks.
func probeAndWait(t *testing.T, p *Pool, req *Request) (int, string) {
	var calls atomic.Int64
	done := make(chan struct{}, 16)
	n, first := p.Probe(req, func() { calls.Add(1); done <- struct{}{} })
	for range n {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("a probe never answered")
		}
	}
	time.Sleep(20 * time.Millisecond) // a callback too many would land now
	require.Equal(t, int64(n), calls.Load(), "each probe calls back exactly once")
	return n, first
}

// With probing, the pick after the probes sees a server that filled up
// since its last scrape and goes elsewhere; the stale pick does not.
func TestProbeRepicksOnFreshMetrics(t *testing.T) {
	for _, probe := range []string{`{"enabled":true,"whenAlone":true}`, `{"enabled":false}`} {
		t.Run(probe, func(t *testing.T) {
			a, b := newFakeServer(t), newFakeServer(t)
			b.waiting.Store(1)
			p := probedPool(t, a, b, probe)
			req := &Request{Model: "m"}
			var res Result
			p.Pick(req, &res)
			require.Equal(t, a.addr(), res.Endpoints()[0])
			res.Done(OutcomeOK)

			a.waiting.Store(9) // full since the scrape
			scrapes := a.requests.Load() + b.requests.Load()
			n, first := probeAndWait(t, p, req)
			p.Pick(req, &res)
			defer res.Done(OutcomeOK)
			if probe == `{"enabled":false}` {
				require.Zero(t, n)
				require.Equal(t, scrapes, a.requests.Load()+b.requests.Load(), "probing off: no probe scrapes")
				require.Equal(t, a.addr(), res.Endpoints()[0], "the stale choice")
				return
			}
			require.Equal(t, 2, n)
			require.Equal(t, a.addr(), first)
			require.Equal(t, scrapes+2, a.requests.Load()+b.requests.Load())
			require.Equal(t, b.addr(), res.Endpoints()[0], "the fresh choice")
			require.Equal(t, uint64(2), p.Stats().Picks, "the dry pick is not counted")
			require.Equal(t, uint64(1), p.Stats().Probes)
		})
	}
}

// A lone proxy does not probe, unless told to; scrape.fleet.proxies says
// it is not alone.
func TestProbeSkippedWhenAlone(t *testing.T) {
	for _, tc := range []struct {
		name, extra string
		probes      bool
	}{
		{"alone", `{"enabled":true}`, false},
		{"alone, told to", `{"enabled":true,"whenAlone":true}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newFakeServer(t), newFakeServer(t)
			p := probedPool(t, a, b, tc.extra)
			n, _ := probeAndWait(t, p, &Request{Model: "m"})
			require.Equal(t, tc.probes, n > 0)
		})
	}
	t.Run("configured fleet", func(t *testing.T) {
		a, b := newFakeServer(t), newFakeServer(t)
		ps, err := OpenJSON([]byte(staticConfig([]string{a.addr(), b.addr()},
			`"scrape":{"interval":"1h","staleAfter":"2h","fleet":{"proxies":4}},"probe":{"enabled":true}`)), WithCollector(collector.New(nil)))
		require.NoError(t, err)
		t.Cleanup(ps.Close)
		p := ps.List()[0]
		require.Eventually(t, func() bool { return p.Stats().Ready == 2 }, 5*time.Second, 5*time.Millisecond)
		time.Sleep(DefaultProbeMaxAge + 5*time.Millisecond)
		n, _ := probeAndWait(t, p, &Request{Model: "m"})
		require.Equal(t, 2, n)
	})
}
