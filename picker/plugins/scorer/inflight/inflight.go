// Package inflight scores endpoints by the requests this proxy has in flight
// to them, a load signal that is never a scrape old.
package inflight

import "github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"

// Type names the plugin in configuration.
const Type = "in-flight"

// Scorer is the in-flight scorer.
type Scorer struct{}

// New returns the scorer.
func New() *Scorer { return &Scorer{} }

// Name implements framework.Scorer.
func (*Scorer) Name() string { return Type }

// Score implements framework.Scorer: (max-n)/(max-min), 1 when all are equal.
func (s *Scorer) Score(c *framework.Cycle, eps []framework.Endpoint, out []float64) {
	clear(out[:len(eps)])
	s.AddScore(c, eps, 1, out)
}

// AddScore implements framework.WeightedScorer.
func (*Scorer) AddScore(_ *framework.Cycle, eps []framework.Endpoint, weight float64, sum []float64) {
	sum = sum[:len(eps)]
	var lo, hi float64
	for i := range eps {
		n := eps[i].InFlight
		if i == 0 || n < lo {
			lo = n
		}
		if i == 0 || n > hi {
			hi = n
		}
	}
	for i := range eps {
		if hi == lo {
			sum[i] += weight * 1
			continue
		}
		sum[i] += weight * ((hi - eps[i].InFlight) / (hi - lo))
	}
}
