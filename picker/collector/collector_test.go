package collector

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

const okBody = "vllm:num_requests_waiting 2\nvllm:num_requests_running 3\nvllm:kv_cache_usage_perc 0.25\n"

func testSpec(t *testing.T) Spec {
	t.Helper()
	names, err := metrics.ForEngine(metrics.EngineVLLM)
	require.NoError(t, err)
	return Spec{
		Path:           "/metrics",
		Interval:       10 * time.Millisecond,
		Timeout:        10 * time.Second, // generous: -race on a busy 2-core machine is slow, and a timeout is not what these tests test
		Concurrency:    4,
		UnhealthyAfter: 3,
		MaxBytes:       1 << 20,
		Names:          names,
	}
}

// server serves whatever body currently holds, on 127.0.0.1 only.
type server struct {
	*httptest.Server
	body     atomic.Pointer[string]
	status   atomic.Int32
	requests atomic.Int64
}

func newServer(t *testing.T, body string) *server {
	t.Helper()
	s := &server{}
	s.body.Store(&body)
	s.status.Store(http.StatusOK)
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(s.status.Load()))
		_, _ = w.Write([]byte(*s.body.Load()))
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.Listener = l
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *server) addr() string { return strings.TrimPrefix(s.URL, "http://") }

// detached returns a target that is never run, so a test drives its scrapes.
func detached(c *Collector, addr string, spec Spec) *Target {
	return newTarget(c, targetKey{addr: addr, spec: spec}, &group{sem: make(chan struct{}, 1), bufs: make(chan []byte, 1)})
}

func TestScrapePublishesSample(t *testing.T) {
	for _, p := range scrapePaths() {
		t.Run(p.name, func(t *testing.T) {
			srv := newServer(t, okBody)
			spec := testSpec(t)
			tg := detached(p.collector(), srv.addr(), spec)
			tg.Start()
			tg.Start()
			before := Now()
			tg.scrapeOnce(&spec)
			s := tg.Sample()
			require.NotNil(t, s)
			require.Equal(t, 2.0, s.Waiting)
			require.Equal(t, 3.0, s.Running)
			require.Equal(t, 0.25, s.KVUsage)
			require.Equal(t, int64(2), s.InFlightAtScrape)
			require.GreaterOrEqual(t, s.At, before)
			require.Equal(t, 3.0, s.PeakRunning)
			require.Equal(t, uint64(1), tg.Stats().Scrapes)

			// The peak of running requests is remembered across scrapes: it is the
			// server's slot count as far as anyone has seen.
			for _, running := range []string{"5", "1"} {
				b := strings.Replace(okBody, "running 3", "running "+running, 1)
				srv.body.Store(&b)
				tg.scrapeOnce(&spec)
			}
			require.Equal(t, 1.0, tg.Sample().Running)
			require.Equal(t, 5.0, tg.Sample().PeakRunning)

			// Running without a queue tells nothing of the slots: no learning.
			b := strings.Replace(strings.Replace(okBody, "running 3", "running 9", 1), "waiting 2", "waiting 0", 1)
			require.NotEqual(t, okBody, b)
			srv.body.Store(&b)
			tg.scrapeOnce(&spec)
			require.Equal(t, 9.0, tg.Sample().Running)
			require.Equal(t, 5.0, tg.Sample().PeakRunning)
		})
	}
}

func TestScrapeFailures(t *testing.T) {
	for _, p := range scrapePaths() {
		t.Run(p.name, func(t *testing.T) {
			fixture, err := os.ReadFile("../testdata/vllm_metrics_sim_main.txt")
			require.NoError(t, err)
			for _, tc := range []struct {
				name string
				// break makes the server misbehave after one good scrape.
				brk func(s *server)
				// scrapes after which the old sample must be gone.
				dropAfter int
				wantErr   string
			}{
				{name: "garbage drops at once", brk: func(s *server) { b := "vllm:num_requests_waiting{ 1\n"; s.body.Store(&b) }, dropAfter: 1, wantErr: "parse exposition"},
				{name: "NaN drops at once", brk: func(s *server) {
					b := strings.Replace(okBody, "2\n", "NaN\n", 1)
					s.body.Store(&b)
				}, dropAfter: 1, wantErr: "has value NaN"},
				{name: "empty drops at once", brk: func(s *server) { b := ""; s.body.Store(&b) }, dropAfter: 1, wantErr: "missing metric"},
				{name: "huge drops at once", brk: func(s *server) {
					b := okBody + strings.Repeat("x", 2<<20)
					s.body.Store(&b)
				}, dropAfter: 1, wantErr: "larger than"},
				{name: "HTTP 500 drops after UnhealthyAfter", brk: func(s *server) { s.status.Store(http.StatusInternalServerError) }, dropAfter: 3, wantErr: "HTTP status 500"},
				{name: "connection refused drops after UnhealthyAfter", brk: func(s *server) { s.Close() }, dropAfter: 3, wantErr: "connection refused"},
				{name: "fixture then recovery is healthy", brk: func(s *server) { b := string(fixture); s.body.Store(&b) }, dropAfter: 0},
			} {
				t.Run(tc.name, func(t *testing.T) {
					srv := newServer(t, okBody)
					spec := testSpec(t)
					tg := detached(p.collector(), srv.addr(), spec)
					tg.scrapeOnce(&spec)
					require.NotNil(t, tg.Sample())
					tc.brk(srv)
					for i := 1; i <= 4; i++ {
						tg.scrapeOnce(&spec)
						if tc.dropAfter == 0 || i < tc.dropAfter {
							require.NotNil(t, tg.Sample(), "scrape %d", i)
						} else {
							require.Nil(t, tg.Sample(), "scrape %d", i)
						}
					}
					st := tg.Stats()
					if tc.wantErr == "" {
						require.Zero(t, st.ScrapeErrors)
						return
					}
					require.Equal(t, uint64(4), st.ScrapeErrors)
					require.Equal(t, int64(4), st.ConsecutiveFailures)
					require.Contains(t, st.LastError, tc.wantErr)
				})
			}
		})
	}
}

func TestScrapeTimeout(t *testing.T) {
	for _, p := range scrapePaths() {
		t.Run(p.name, func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}))
			defer srv.Close()
			spec := testSpec(t)
			spec.Timeout = 20 * time.Millisecond
			tg := detached(p.collector(), strings.TrimPrefix(srv.URL, "http://"), spec)
			tg.scrapeOnce(&spec)
			require.Nil(t, tg.Sample())
			require.Contains(t, tg.Stats().LastError, "deadline exceeded")
		})
	}
}

func TestAcquireSharesOneScraper(t *testing.T) {
	for _, p := range scrapePaths() {
		t.Run(p.name, func(t *testing.T) {
			srv := newServer(t, okBody)
			c := p.collector()
			spec := testSpec(t)

			a := c.Acquire(srv.addr(), spec)
			b := c.Acquire(srv.addr(), spec)
			require.Same(t, a, b, "same address and spec must share a target")
			other := spec
			other.Path = "/other"
			d := c.Acquire(srv.addr(), other)
			require.NotSame(t, a, d)
			require.Equal(t, 2, c.Stats().Targets)

			require.Eventually(t, func() bool { return a.Sample() != nil }, 5*time.Second, time.Millisecond)

			c.Release(a)
			require.Equal(t, 2, c.Stats().Targets, "released once, still held once")
			select {
			case <-a.Done():
				t.Fatal("scraper stopped while still referenced")
			default:
			}
			c.Release(b)
			c.Release(d)
			<-a.Done()
			<-d.Done()
			require.Zero(t, c.Stats().Targets)

			// A scrape already on the wire when the target was released may still
			// reach the server's handler after Done: let it land before counting.
			time.Sleep(100 * time.Millisecond)
			n := srv.requests.Load()
			time.Sleep(10 * spec.Interval)
			require.Equal(t, n, srv.requests.Load(), "released targets keep scraping")

			e := c.Acquire(srv.addr(), spec)
			require.NotSame(t, a, e, "a released target is not reused")
			c.Release(e)
		})
	}
}

func TestConcurrencyBound(t *testing.T) {
	for _, p := range scrapePaths() {
		t.Run(p.name, func(t *testing.T) {
			var inFlight, peak atomic.Int64
			release := make(chan struct{})
			handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := inFlight.Add(1)
				defer inFlight.Add(-1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				select {
				case <-release:
				case <-r.Context().Done():
				}
				_, _ = w.Write([]byte(okBody))
			})
			c := p.collector()
			spec := testSpec(t)
			spec.Concurrency = 2
			var targets []*Target
			for range 5 {
				srv := httptest.NewServer(handler)
				defer srv.Close()
				targets = append(targets, c.Acquire(strings.TrimPrefix(srv.URL, "http://"), spec))
			}
			require.Eventually(t, func() bool { return inFlight.Load() == 2 }, 5*time.Second, time.Millisecond)
			time.Sleep(50 * time.Millisecond) // give a broken limit the chance to show
			require.Equal(t, int64(2), peak.Load())
			close(release)
			for _, tg := range targets {
				c.Release(tg)
				<-tg.Done()
			}
		})
	}
}

func TestLiveCounts(t *testing.T) {
	a := detached(New(nil), "10.0.0.1:8000", testSpec(t))
	b := detached(New(nil), "10.0.0.2:8000", testSpec(t))
	a.Start()
	a.Start()
	a.Move(b)
	require.Equal(t, int64(1), a.InFlight())
	require.Equal(t, int64(1), b.InFlight())
	now := Now()
	require.False(t, b.FailedWithin(now, time.Second))
	b.Finish(true)
	require.Equal(t, int64(0), b.InFlight())
	require.True(t, b.FailedWithin(Now(), time.Hour))
	require.False(t, b.FailedWithin(Now()+int64(2*time.Hour), time.Hour))
	a.Finish(false)
	require.Equal(t, TargetStats{Picks: 2, Failures: 0}, a.Stats())
	require.Equal(t, uint64(1), b.Stats().Failures)
}

func TestConcurrentUse(t *testing.T) {
	for _, p := range scrapePaths() {
		t.Run(p.name, func(t *testing.T) {
			srv := newServer(t, okBody)
			c := p.collector()
			spec := testSpec(t)
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for range 50 {
						tg := c.Acquire(srv.addr(), spec)
						tg.Start()
						_ = tg.Sample()
						tg.Finish(false)
						c.Release(tg)
					}
				})
			}
			wg.Wait()
			require.Zero(t, c.Stats().Targets)
		})
	}
}

// A released target's scraper stops at once, not at its next scrape: the
// release fires the timer the loop waits on, whether it came while the
// scraper waited or while a scrape was on the wire (whose timer Reset after
// it must not undo the release).
func TestReleaseStopsScraperAtOnce(t *testing.T) {
	for _, p := range scrapePaths() {
		t.Run(p.name, func(t *testing.T) {
			for _, tc := range []struct {
				name     string
				interval time.Duration
				hold     bool // the second scrape hangs until the collector gives up
			}{
				{"waiting", time.Minute, false},
				{"scraping", 2 * time.Second, true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					var scrapes atomic.Int64
					held := make(chan struct{}, 1)
					srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						if scrapes.Add(1) == 2 && tc.hold {
							held <- struct{}{}
							<-r.Context().Done()
							return
						}
						_, _ = w.Write([]byte(okBody))
					}))
					defer srv.Close()
					c := p.collector()
					spec := testSpec(t)
					spec.Interval = tc.interval
					tg := c.Acquire(strings.TrimPrefix(srv.URL, "http://"), spec)
					require.Eventually(t, func() bool { return tg.Sample() != nil }, 5*time.Second, time.Millisecond)
					if tc.hold {
						select {
						case <-held:
						case <-time.After(10 * time.Second):
							t.Fatal("no second scrape")
						}
					}
					c.Release(tg)
					select {
					case <-tg.Done():
					case <-time.After(time.Second):
						t.Fatal("released scraper still waiting for its next scrape")
					}
				})
			}
		})
	}
}
