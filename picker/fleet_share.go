package picker

import (
	"math"
	"sync/atomic"
)

// fleetShare estimates how many requests the pool's servers receive for
// each one this proxy sends: 1 for a lone proxy, about N for one of N
// proxies behind a load balancer. The scraped running and waiting
// requests count every proxy's; this proxy's own requests among them are
// its in-flight count when the scrape was sent. Between two scrapes a
// proxy sees only what it sent itself (Pending); with the estimate it also
// counts what the other proxies sent meanwhile, (share - 1) × its own
// smoothed send rate to the endpoint × the time since the scrape, so N
// proxies do not all pile onto the server that looked emptiest at the last
// scrape. One proxy's estimate stays 1 and changes nothing.
// fleetEstimate is off only in replays that must not depend on the clock
// (TestPickMatchesGolden).
var fleetEstimate = true

type fleetShare struct {
	bits atomic.Uint64 // float64: the smoothed ratio, 0 until observed
}

const (
	fleetMinOwn = 2    // fewer of ours in the servers' counts say too little
	fleetMax    = 64   // an estimate beyond this is noise
	fleetAlpha  = 0.02 // smoothing per pick: a few hundred picks of memory
)

// observe folds one pick's sums (scraped requests of every candidate, and
// ours among them) into the estimate and returns it (>= 1).
func (f *fleetShare) observe(load, own float64) float64 {
	old := math.Float64frombits(f.bits.Load())
	if own < fleetMinOwn {
		return max(old, 1)
	}
	r := min(max(load/own, 1), fleetMax)
	est := r
	if old > 0 {
		est = old + fleetAlpha*(r-old)
	}
	// Racing picks may lose an update: the estimate is smoothed anyway.
	f.bits.Store(math.Float64bits(est))
	return est
}

// value is the current estimate, 1 until observed.
func (f *fleetShare) value() float64 {
	return max(math.Float64frombits(f.bits.Load()), 1)
}
