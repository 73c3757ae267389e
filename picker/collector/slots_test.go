package collector

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

func TestSlotLearner(t *testing.T) {
	type scrape struct {
		waiting, running  float64
		blockSize, blocks int
		want              float64
	}
	for _, tc := range []struct {
		name    string
		scrapes []scrape
	}{
		{name: "learned while queueing", scrapes: []scrape{{waiting: 0, running: 9, want: 0}, {waiting: 2, running: 4, want: 4}, {waiting: 1, running: 6, want: 6}}},
		{name: "no queue says nothing", scrapes: []scrape{{waiting: 2, running: 6, want: 6}, {waiting: 0, running: 1, want: 6}, {waiting: 0, running: 2, want: 6}, {waiting: 0, running: 1, want: 6}}},
		{name: "a dip under a queue is not enough", scrapes: []scrape{{waiting: 2, running: 6, want: 6}, {waiting: 3, running: 2, want: 6}, {waiting: 3, running: 3, want: 6}}},
		{name: "re-learned lower after relearnAfter queued scrapes below", scrapes: []scrape{
			{waiting: 2, running: 6, want: 6}, {waiting: 3, running: 2, want: 6}, {waiting: 0, running: 1, want: 6},
			{waiting: 3, running: 3, want: 6}, {waiting: 3, running: 3, want: 3}}},
		{name: "reaching the peak again restarts the count", scrapes: []scrape{
			{waiting: 2, running: 6, want: 6}, {waiting: 3, running: 2, want: 6}, {waiting: 3, running: 6, want: 6},
			{waiting: 3, running: 2, want: 6}, {waiting: 3, running: 2, want: 6}, {waiting: 3, running: 2, want: 2}}},
		{name: "new cache geometry forgets", scrapes: []scrape{
			{waiting: 2, running: 6, blockSize: 16, blocks: 1000, want: 6}, {waiting: 0, running: 1, blockSize: 16, blocks: 1000, want: 6},
			{waiting: 0, running: 1, blockSize: 16, blocks: 400, want: 0}, {waiting: 1, running: 2, blockSize: 16, blocks: 400, want: 2}}},
		{name: "geometry appearing is no change", scrapes: []scrape{{waiting: 2, running: 6, want: 6}, {waiting: 0, running: 1, blockSize: 16, blocks: 1000, want: 6}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l slotLearner
			for i, s := range tc.scrapes {
				got := l.observe(&metrics.Sample{Waiting: s.waiting, Running: s.running, BlockSize: s.blockSize, NumGPUBlocks: s.blocks}, 3)
				require.Equal(t, s.want, got, "scrape %d", i)
			}
		})
	}
}

func TestRelearnScrapes(t *testing.T) {
	require.Equal(t, 100, relearnScrapes(100*time.Millisecond), "10 s at the default interval")
	require.Equal(t, minRelearnScrapes, relearnScrapes(5*time.Second))
	require.Equal(t, minRelearnScrapes, relearnScrapes(0))
}

// A server restarted with fewer slots is re-learned from its scrapes; one
// that was down long enough to lose its metrics starts from unknown.
func TestScrapeSlotsComeDown(t *testing.T) {
	for _, p := range scrapePaths() {
		t.Run(p.name, func(t *testing.T) {
			body := func(waiting, running int) string {
				return fmt.Sprintf("vllm:num_requests_waiting %d\nvllm:num_requests_running %d\nvllm:kv_cache_usage_perc 0.5\n", waiting, running)
			}
			srv := newServer(t, body(4, 8))
			spec := testSpec(t)
			spec.Interval = time.Second // relearnScrapes: minRelearnScrapes
			tg := detached(p.collector(), srv.addr(), spec)
			tg.scrapeOnce(&spec)
			require.Equal(t, 8.0, tg.Sample().PeakRunning)

			// Restarted with 4 slots, busy: a queue, never 8 running again.
			b := body(3, 4)
			srv.body.Store(&b)
			for i := 1; i < minRelearnScrapes; i++ {
				tg.scrapeOnce(&spec)
				require.Equal(t, 8.0, tg.Sample().PeakRunning, "scrape %d", i)
			}
			tg.scrapeOnce(&spec)
			require.Equal(t, 4.0, tg.Sample().PeakRunning)

			// Down for UnhealthyAfter scrapes: forgotten.
			srv.status.Store(http.StatusServiceUnavailable)
			for i := 0; i < spec.UnhealthyAfter; i++ {
				tg.scrapeOnce(&spec)
			}
			require.Nil(t, tg.Sample())
			srv.status.Store(http.StatusOK)
			up := body(0, 2) // a new string: the server may still read b (a socket is no happens-before for -race)
			srv.body.Store(&up)
			tg.scrapeOnce(&spec)
			require.Zero(t, tg.Sample().PeakRunning, "unknown until it queues again")
		})
	}
}
