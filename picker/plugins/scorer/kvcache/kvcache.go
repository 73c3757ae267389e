// Package kvcache scores endpoints by free KV cache: 1 - utilization.
package kvcache

import "github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"

// Type names the plugin in configuration.
const Type = "kv-cache-utilization"

// Scorer is the KV-cache utilization scorer.
type Scorer struct{}

// New returns the scorer.
func New() *Scorer { return &Scorer{} }

// Name implements framework.Scorer.
func (*Scorer) Name() string { return Type }

// Score implements framework.Scorer.
func (s *Scorer) Score(c *framework.Cycle, eps []framework.Endpoint, out []float64) {
	clear(out[:len(eps)])
	s.AddScore(c, eps, 1, out)
}

// AddScore implements framework.WeightedScorer.
func (*Scorer) AddScore(_ *framework.Cycle, eps []framework.Endpoint, weight float64, sum []float64) {
	sum = sum[:len(eps)]
	for i := range eps {
		sum[i] += weight * (1 - eps[i].KVUsage)
	}
}
