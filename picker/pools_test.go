package picker

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/collector"
	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

func TestOpenSharesRuntimes(t *testing.T) {
	col := collector.NewManual()
	cfg := staticConfig([]string{epA, epB}, "")
	ps1, err := OpenJSON([]byte(cfg), WithCollector(col))
	require.NoError(t, err)
	ps2, err := OpenJSON([]byte(cfg), WithCollector(col))
	require.NoError(t, err)
	require.Same(t, ps1.Pool("p"), ps2.Pool("p"), "the same pool config loaded twice is one runtime")
	require.Equal(t, 2, col.Stats().Targets)

	// Another profile over the same endpoints: its own runtime, the same
	// scrape targets.
	ps3, err := OpenJSON([]byte(staticConfig([]string{epA, epB}, `"scheduler":{"maxEndpoints":1}`)), WithCollector(col))
	require.NoError(t, err)
	require.NotSame(t, ps1.Pool("p"), ps3.Pool("p"))
	require.Equal(t, 2, col.Stats().Targets)
	require.Nil(t, ps3.Pool("nope"))

	ps1.Close()
	ps1.Close() // idempotent
	publish(t, ps2.Pool("p"), epA, metrics.Sample{})
	var res Result
	ps2.Pool("p").Pick(&Request{}, &res)
	require.Equal(t, StatusOK, res.Status, "still running for its other holder")
	res.Done(OutcomeOK)

	ps2.Close()
	require.Equal(t, 2, col.Stats().Targets, "ps3 still holds the targets")
	ps3.Close()
	require.Zero(t, col.Stats().Targets, "no scraping once nothing refers to the pools")
}

func TestOpenErrors(t *testing.T) {
	_, err := OpenJSON([]byte(`{"pools":[]}`))
	require.ErrorContains(t, err, "pools: at least one pool is required")
}

func TestFileSourceUpdatesMembers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "eps.json")
	write := func(eps ...string) {
		require.NoError(t, os.WriteFile(path, fmt.Appendf(nil, `["%s"]`, strings.Join(eps, `","`)), 0o600))
	}
	write(epA, epB)
	col := collector.NewManual()
	ps, err := OpenJSON(fmt.Appendf(nil, `{"pools":[{"name":"f","endpoints":{"file":{"path":%q,"interval":"10ms"}}}]}`, path), WithCollector(col))
	require.NoError(t, err)
	defer ps.Close()
	p := ps.Pool("f")
	require.Equal(t, 2, p.Stats().Endpoints)
	publish(t, p, epA, metrics.Sample{})

	write(epB, epC)
	require.Eventually(t, func() bool { return p.Stats().Endpoints == 2 && p.view.Load().byAddr[epC] >= 0 && !has(p, epA) },
		5*time.Second, 5*time.Millisecond)
	require.Equal(t, 2, col.Stats().Targets, "the removed endpoint's target is released")
	var res Result
	p.Pick(&Request{}, &res)
	require.Equal(t, StatusNoMetrics, res.Status, "A left with its metrics; B and C have none yet")
	require.Equal(t, uint64(2), p.Stats().Source.Updates)
}

func has(p *Pool, addr string) bool {
	_, ok := p.view.Load().byAddr[addr]
	return ok
}

// fakeServer serves a vLLM exposition whose numbers the test sets.
type fakeServer struct {
	srv      *httptest.Server
	waiting  atomic.Int64
	fail     atomic.Bool
	requests atomic.Int64
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	f := &fakeServer{}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		if f.fail.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "vllm:num_requests_waiting %d\nvllm:num_requests_running 1\nvllm:kv_cache_usage_perc 0.1\n", f.waiting.Load())
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f.srv.Listener = l
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeServer) addr() string { return strings.TrimPrefix(f.srv.URL, "http://") }

// TestScrapedEndToEnd runs real scraping against local servers: the busy
// one is avoided, a failing one is dropped, and picks follow the numbers.
func TestScrapedEndToEnd(t *testing.T) {
	busy, idle := newFakeServer(t), newFakeServer(t)
	busy.waiting.Store(3) // with 1 running (its learned capacity) a new request would wait behind 4: not saturated
	col := collector.New(nil)
	ps, err := OpenJSON([]byte(staticConfig([]string{busy.addr(), idle.addr()},
		`"scrape":{"interval":"10ms","staleAfter":"1s"}`)), WithCollector(col))
	require.NoError(t, err)
	defer ps.Close()
	p := ps.List()[0]
	require.NoError(t, p.WaitReady(5*time.Second))
	require.Eventually(t, func() bool { return p.Stats().Ready == 2 }, 5*time.Second, 5*time.Millisecond)

	var res Result
	p.Pick(&Request{}, &res)
	require.Equal(t, []string{idle.addr(), busy.addr()}, res.Endpoints())
	res.Done(OutcomeOK)

	idle.fail.Store(true)
	require.Eventually(t, func() bool { return p.Stats().Unhealthy == 1 }, 5*time.Second, 5*time.Millisecond)
	p.Pick(&Request{}, &res)
	require.Equal(t, []string{busy.addr()}, res.Endpoints(), "an endpoint whose scrapes fail is dropped, not kept with old numbers")
	res.Done(OutcomeOK)
	require.Positive(t, p.Stats().ScrapeErrors)

	idle.fail.Store(false)
	require.Eventually(t, func() bool {
		p.Pick(&Request{}, &res)
		defer res.Done(OutcomeOK)
		return res.Endpoints()[0] == idle.addr()
	}, 5*time.Second, 5*time.Millisecond, "it is picked again once it recovers")
	ps.Close()
	require.Zero(t, col.Stats().Targets)
}

func TestConcurrentPicks(t *testing.T) {
	eps := addrs(20)
	p := openManual(t, staticConfig(eps, `"scrape":{"interval":"1h"}`))
	for i, a := range eps {
		publish(t, p, a, metrics.Sample{Waiting: float64(i % 3), KVUsage: 0.1, LoRA: metrics.NewLoRA([]string{"a"}, nil, 2)})
	}
	prompt := chatPrompt("shared", "q", 2048)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			var res Result
			for i := range 300 {
				p.Pick(&Request{Model: "a", Prompt: prompt, Objective: fmt.Sprint(g)}, &res)
				if res.Status != StatusOK {
					t.Errorf("status %v", res.Status)
					return
				}
				if i%7 == 0 {
					res.Served(eps[i%len(eps)])
				}
				res.Done(OutcomeOK)
			}
		})
	}
	// Membership changes and stats while picking.
	wg.Go(func() {
		for i := range 50 {
			p.setEndpoints(eps[:10+i%10])
			_ = p.Stats()
		}
		p.setEndpoints(eps)
	})
	wg.Wait()
	for _, a := range eps {
		require.Zero(t, target(t, p, a).InFlight(), a)
	}
}
