package collector

import (
	"time"

	"github.com/envoy-inferencepool/envoy-inferencepool/picker/metrics"
)

// relearnSpan is how long a server must keep showing a queue while running
// fewer requests than its learned slot count before that count comes down.
const relearnSpan = 10 * time.Second

// minRelearnScrapes bounds the evidence below for long scrape intervals.
const minRelearnScrapes = 20

// slotLearner learns a server's slot count: the most requests it runs while
// others wait (requests wait only when every slot is taken). Owned by the
// target's scrape goroutine.
//
// The count must also come down: a server restarted with fewer slots (a
// smaller --max-num-seqs, less KV cache) would otherwise count as having
// room it has not. So it is forgotten when
//   - the endpoint stopped answering long enough to lose its metrics (it
//     may come back as another server), or its cache geometry changed (a
//     restart with another configuration), and
//   - re-learned lower when, for relearnSpan of queued scrapes (at least
//     minRelearnScrapes), the server never again ran as many: the new count
//     is the most it ran while queueing in that span.
//
// Without a queue a scrape says nothing about the slots, so it neither
// raises nor lowers the count.
type slotLearner struct {
	peak float64

	// Queued scrapes since the server last ran peak requests.
	below     int
	belowMax  float64
	blockSize int // cache geometry of the last sample, 0 when unknown
	numBlocks int
}

// observe folds one scrape in and returns the slot count (0: unknown).
// relearnAfter is the number of queued scrapes below the peak that lowers it.
func (l *slotLearner) observe(s *metrics.Sample, relearnAfter int) float64 {
	if l.geometryChanged(s) {
		l.forget()
	}
	l.blockSize, l.numBlocks = s.BlockSize, s.NumGPUBlocks
	if s.Waiting <= 0 {
		return l.peak
	}
	if s.Running >= l.peak {
		l.peak, l.below, l.belowMax = s.Running, 0, 0
		return l.peak
	}
	l.below++
	l.belowMax = max(l.belowMax, s.Running)
	if l.below >= relearnAfter {
		l.peak, l.below, l.belowMax = l.belowMax, 0, 0
	}
	return l.peak
}

func (l *slotLearner) geometryChanged(s *metrics.Sample) bool {
	return (l.blockSize != 0 && s.BlockSize != 0 && l.blockSize != s.BlockSize) ||
		(l.numBlocks != 0 && s.NumGPUBlocks != 0 && l.numBlocks != s.NumGPUBlocks)
}

// forget drops what was learned: the endpoint may be another server now.
func (l *slotLearner) forget() { *l = slotLearner{} }

// relearnScrapes is the number of queued scrapes spanning relearnSpan at
// the given scrape interval.
func relearnScrapes(interval time.Duration) int {
	if interval <= 0 {
		return minRelearnScrapes
	}
	return max(minRelearnScrapes, int((relearnSpan+interval-1)/interval))
}
