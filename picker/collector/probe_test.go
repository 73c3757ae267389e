package collector

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

// probeServer serves body; while gate is set, answers wait for it to close.
type probeServer struct {
	*httptest.Server
	body     atomic.Pointer[string]
	gate     atomic.Pointer[chan struct{}]
	requests atomic.Int64
}

func newProbeServer(t *testing.T, body string) *probeServer {
	t.Helper()
	s := &probeServer{}
	s.body.Store(&body)
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if g := s.gate.Load(); g != nil {
			select {
			case <-*g:
			case <-r.Context().Done():
				return
			}
		}
		_, _ = w.Write([]byte(*s.body.Load()))
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.Listener = l
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *probeServer) addr() string { return strings.TrimPrefix(s.URL, "http://") }

// probeSpec scrapes rarely: every scrape after the first is a probe's.
func probeSpec(t *testing.T) Spec {
	spec := testSpec(t)
	spec.Interval = time.Hour
	return spec
}

func waitDone(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal(what)
	}
}

// A probe scrapes out of schedule, and only when the sample is older than
// maxAge; its callback runs once the fresh sample is published.
func TestProbeScrapesNow(t *testing.T) {
	for _, p := range scrapePaths() {
		t.Run(p.name, func(t *testing.T) {
			srv := newProbeServer(t, okBody)
			c, tg := scrapedOnce(t, p, srv, probeSpec(t))
			defer c.Release(tg)
			require.Equal(t, 2.0, tg.Sample().Waiting)
			// The first sample may have taken a retry on a loaded machine:
			// count from here.
			base := srv.requests.Load()

			full := strings.Replace(okBody, "waiting 2", "waiting 9", 1)
			srv.body.Store(&full)
			require.False(t, tg.Probe(time.Hour, 0, func() { t.Error("called for a fresh sample") }), "young sample: no probe")
			require.Equal(t, base, srv.requests.Load())

			tg.Start()
			done := make(chan struct{})
			require.True(t, tg.Probe(0, 0, func() { close(done) }))
			waitDone(t, done, "probe never answered")
			require.Equal(t, 9.0, tg.Sample().Waiting, "the probe's sample is published before the callback")
			require.Equal(t, int64(1), tg.Sample().InFlightAtScrape, "in flight at the probe's start, as for a scrape")
			require.Equal(t, base+1, srv.requests.Load())
			require.Equal(t, uint64(1), tg.Stats().Probes)
		})
	}
}

// Probes while a scrape is in flight join it: one scrape, every callback
// once.
func TestProbeJoinsScrapeInFlight(t *testing.T) {
	for _, p := range scrapePaths() {
		t.Run(p.name, func(t *testing.T) {
			srv := newProbeServer(t, okBody)
			c, tg := scrapedOnce(t, p, srv, probeSpec(t))
			defer c.Release(tg)

			base := srv.requests.Load() // the first sample's (a retry included)
			gate := make(chan struct{})
			srv.gate.Store(&gate)
			var calls atomic.Int64
			all := make(chan struct{})
			const n = 10
			cb := func() {
				if calls.Add(1) == n {
					close(all)
				}
			}
			require.True(t, tg.Probe(0, 0, cb))
			require.Eventually(t, func() bool { return srv.requests.Load() == base+1 }, 5*time.Second, time.Millisecond)
			for range n - 1 {
				require.True(t, tg.Probe(0, 0, cb))
			}
			close(gate)
			waitDone(t, all, "not every probe answered")
			time.Sleep(50 * time.Millisecond) // a repeated scrape would arrive now
			require.Equal(t, base+1, srv.requests.Load(), "one probe scrape for all")
			require.Equal(t, int64(n), calls.Load())
		})
	}
}

// A probe whose server hangs is answered when the scrape times out; the
// sample it had stays (one failure is not unhealthy).
func TestProbeTimesOut(t *testing.T) {
	for _, p := range scrapePaths() {
		t.Run(p.name, func(t *testing.T) {
			srv := newProbeServer(t, okBody)
			spec := probeSpec(t)
			spec.Timeout = 100 * time.Millisecond
			c, tg := scrapedOnce(t, p, srv, spec)
			defer c.Release(tg)
			before := tg.Sample()

			gate := make(chan struct{})
			defer close(gate)
			srv.gate.Store(&gate)
			done := make(chan struct{})
			require.True(t, tg.Probe(0, 0, func() { close(done) }))
			waitDone(t, done, "hung probe never answered")
			require.Same(t, before, tg.Sample())
			require.Equal(t, int64(1), tg.Stats().ConsecutiveFailures)
		})
	}
}

// A probe with a wait bound is not made when the server cannot answer in
// time: while its scrape in flight is older than the bound, and after a
// scrape that missed it, until one answers within it again.
func TestProbeSkipsASlowServer(t *testing.T) {
	const wait = 50 * time.Millisecond
	for _, p := range scrapePaths() {
		t.Run(p.name, func(t *testing.T) {
			srv := newProbeServer(t, okBody)
			c, tg := scrapedOnce(t, p, srv, probeSpec(t))
			defer c.Release(tg)
			base := srv.requests.Load()
			gate := make(chan struct{})
			srv.gate.Store(&gate)
			answered := make(chan struct{})
			require.True(t, tg.Probe(0, wait, func() { close(answered) }), "a server never slow yet is probed")
			require.Eventually(t, func() bool { return srv.requests.Load() == base+1 }, 5*time.Second, time.Millisecond)
			require.True(t, tg.Probe(0, wait, func() {}), "joins the scrape in flight while it is younger than the wait")

			time.Sleep(wait + 10*time.Millisecond)
			require.False(t, tg.Probe(0, wait, func() { t.Error("called for a skipped probe") }), "in flight longer than a pick waits")
			require.Equal(t, uint64(1), tg.Stats().ProbesSkipped)

			srv.gate.Store(nil)
			close(gate)
			waitDone(t, answered, "the slow scrape never answered")
			require.False(t, tg.Probe(0, wait, func() { t.Error("called for a skipped probe") }), "its last scrape missed the wait")
			require.Equal(t, uint64(2), tg.Stats().ProbesSkipped)
			require.Equal(t, base+1, srv.requests.Load(), "a skipped probe scrapes nothing")

			// A scrape that answers in time (here one without a bound; in
			// service the next scheduled one) makes it worth waiting for again.
			quick := make(chan struct{})
			require.True(t, tg.Probe(0, 0, func() { close(quick) }))
			waitDone(t, quick, "the quick scrape never answered")
			fresh := make(chan struct{})
			require.True(t, tg.Probe(0, wait, func() { close(fresh) }), "quick again: probed")
			waitDone(t, fresh, "the probe never answered")
			require.Equal(t, uint64(2), tg.Stats().ProbesSkipped)
		})
	}
}

// scrapeTimed's verdict: a failed scrape or one slower than the wait
// bound makes the server not worth waiting for; only the scrape in flight
// clears the in-flight mark.
func TestScrapeTimed(t *testing.T) {
	spec := testSpec(t)
	for _, tc := range []struct {
		name     string
		wait     time.Duration
		took     time.Duration
		err      error
		wantSlow bool
	}{
		{"no bound asked yet", 0, time.Hour, errTimeout, false},
		{"in time", time.Second, 0, nil, false},
		{"failed in time", time.Second, 0, errTimeout, true},
		{"slower than the bound", time.Millisecond, time.Second, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := detached(New(nil), "127.0.0.1:1", spec)
			tg.probeWait.Store(int64(tc.wait))
			start := Now() - int64(tc.took)
			tg.begin(start)
			tg.begin(start + 1) // a later scrape, still in flight
			tg.scrapeTimed(start, tc.err)
			require.Equal(t, tc.wantSlow, tg.probeSlow.Load())
			require.Equal(t, start+1, tg.scrapingSince.Load(), "another scrape's mark stays")
			tg.scrapeTimed(start+1, nil)
			require.Zero(t, tg.scrapingSince.Load())
		})
	}
}

// Releasing a target answers its probes waiting; a released target
// refuses new ones.
func TestProbeReleased(t *testing.T) {
	for _, p := range scrapePaths() {
		t.Run(p.name, func(t *testing.T) {
			srv := newProbeServer(t, okBody)
			c, tg := scrapedOnce(t, p, srv, probeSpec(t))
			gate := make(chan struct{})
			defer close(gate)
			srv.gate.Store(&gate)
			done := make(chan struct{})
			require.True(t, tg.Probe(0, 0, func() { close(done) }))
			c.Release(tg)
			waitDone(t, done, "released target left its probe waiting")
			<-tg.Done()
			require.False(t, tg.Probe(0, 0, func() { t.Error("called on a released target") }))
		})
	}
}

// A manual collector's targets are never scraped: nothing to probe.
func TestProbeManual(t *testing.T) {
	c := NewManual()
	tg := c.Acquire("127.0.0.1:1", testSpec(t))
	defer c.Release(tg)
	require.False(t, tg.Probe(0, 0, func() { t.Error("called") }))
}

// A scrape that started before the sample published last never replaces
// it: a scheduled scrape overtaken by a probe is dropped.
func TestPublishDropsOlderScrape(t *testing.T) {
	spec := testSpec(t)
	tg := detached(New(nil), "127.0.0.1:1", spec)
	fresh := sampleOf(t, "vllm:num_requests_waiting 9\nvllm:num_requests_running 1\nvllm:kv_cache_usage_perc 0.5\n")
	stale := sampleOf(t, okBody)
	tg.publish(&spec, 0, 200, fresh, nil)
	tg.publish(&spec, 0, 100, stale, nil)
	require.Equal(t, 9.0, tg.Sample().Waiting)
	tg.publish(&spec, 0, 150, nil, errTimeout)
	require.Equal(t, int64(0), tg.Stats().ConsecutiveFailures, "an older scrape's error is dropped too")
	tg.publish(&spec, 0, 300, stale, nil)
	require.Equal(t, 2.0, tg.Sample().Waiting)
}

func sampleOf(t *testing.T, body string) *metrics.Sample {
	t.Helper()
	spec := testSpec(t)
	s, err := metrics.NewParser().Parse([]byte(body), &spec.Names)
	require.NoError(t, err)
	return &s
}

// scrapedOnce is a target of srv on p's scrape path, after its first
// sample; the caller releases it.
func scrapedOnce(t *testing.T, p scrapePath, srv *probeServer, spec Spec) (*Collector, *Target) {
	t.Helper()
	c := p.collector()
	tg := c.Acquire(srv.addr(), spec)
	require.Eventually(t, func() bool { return tg.Sample() != nil }, 5*time.Second, time.Millisecond)
	// On a loaded machine the first sample may be followed by another
	// scrape that was already under way (a retry, the schedule's first):
	// let it land, so what a test sees next is its own doing.
	require.Eventually(t, func() bool {
		s, n := tg.Sample(), srv.requests.Load()
		time.Sleep(30 * time.Millisecond)
		return tg.Sample() == s && srv.requests.Load() == n
	}, 10*time.Second, time.Millisecond)
	return c, tg
}
