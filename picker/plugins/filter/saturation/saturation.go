// Package saturation drops endpoints that cannot take more work now.
package saturation

import "github.com/envoy-inferencepool/envoy-inferencepool/picker/framework"

// Type names the plugin in configuration.
const Type = "saturation"

// Thresholds at which an endpoint is saturated.
type Thresholds struct {
	Queue   float64 // queue (scraped waiting + sent since) at or above this
	KVCache float64 // KV-cache utilization at or above this
}

// Defaults are the Inference Extension's.
var Defaults = Thresholds{Queue: 5, KVCache: 0.8}

// Filter is the saturation filter.
type Filter struct{ t Thresholds }

// New returns a filter with thresholds t.
func New(t Thresholds) *Filter { return &Filter{t: t} }

// Name implements framework.Filter.
func (*Filter) Name() string { return Type }

// Saturated reports whether ep is saturated: queue or KV use at a threshold,
// or metrics too old to trust.
func (f *Filter) Saturated(ep *framework.Endpoint) bool {
	return ep.Stale || ep.Queue() >= f.t.Queue || ep.KVUsage >= f.t.KVCache
}

// Filter implements framework.Filter.
func (f *Filter) Filter(_ *framework.Cycle, eps []framework.Endpoint) int {
	k := 0
	for i := range eps {
		if !f.Saturated(&eps[i]) {
			if i != k {
				eps[k], eps[i] = eps[i], eps[k]
			}
			k++
		}
	}
	return k
}
