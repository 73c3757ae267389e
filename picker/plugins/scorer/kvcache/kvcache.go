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
func (*Scorer) Score(_ *framework.Cycle, eps []framework.Endpoint, out []float64) {
	for i := range eps {
		out[i] = 1 - eps[i].KVUsage
	}
}
